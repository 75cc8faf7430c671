package learn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// A head is serialised as:
//
//	"FGHD", format version (1 byte), method (1 byte),
//	input dimension (uint32), threshold (float32),
//	the method's parameters (below), CRC-32 (IEEE) of everything before it.
//
// Numbers are little-endian; parameters are float32 (training is float64,
// scoring float32). Parameters: cosine, none; triplet, the output dimension
// (uint32) and the projection W, row-major; logistic and chi2, a flag byte
// (1 when a projection precedes the head, then its output dimension and W),
// the number of weights (uint32), the weights, the bias and ε.
const (
	magic         = "FGHD"
	formatVersion = 1
	// MaxDim bounds the dimensions a blob may declare, so that a corrupt
	// one cannot ask for gigabytes.
	MaxDim = 16384
)

// methodCode and methodOf map methods to their byte in a blob.
func methodCode(m Method) byte {
	switch m {
	case Cosine:
		return 0
	case Triplet:
		return 1
	case Logistic:
		return 2
	case Chi2:
		return 3
	}
	panic("learn: unknown method " + string(m))
}

func methodOf(code byte) (Method, bool) {
	switch code {
	case 0:
		return Cosine, true
	case 1:
		return Triplet, true
	case 2:
		return Logistic, true
	case 3:
		return Chi2, true
	}
	return "", false
}

type encoder struct{ b []byte }

func newEncoder(m Method, dim int, threshold float32) *encoder {
	e := &encoder{b: make([]byte, 0, 64)}
	e.b = append(e.b, magic...)
	e.b = append(e.b, formatVersion, methodCode(m))
	e.u32(dim)
	e.f32(threshold)
	return e
}

func (e *encoder) u32(n int) { e.b = binary.LittleEndian.AppendUint32(e.b, uint32(n)) }
func (e *encoder) f32(x float32) {
	e.b = binary.LittleEndian.AppendUint32(e.b, math.Float32bits(x))
}
func (e *encoder) floats(xs []float32) {
	for _, x := range xs {
		e.f32(x)
	}
}

func (e *encoder) finish() []byte {
	return binary.LittleEndian.AppendUint32(e.b, crc32.ChecksumIEEE(e.b))
}

// ErrCorrupt is wrapped by every error Decode returns for a blob that is
// not a well-formed head.
var ErrCorrupt = errors.New("not a valid learned head")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, a ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, a...))
	}
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.fail("truncated")
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) byte1() byte {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) u32() int {
	if b := d.take(4); b != nil {
		return int(binary.LittleEndian.Uint32(b))
	}
	return 0
}

func (d *decoder) dim(what string, max int) int {
	n := d.u32()
	if d.err == nil && (n < 1 || n > max) {
		d.fail("%s %d out of range 1..%d", what, n, max)
	}
	return n
}

func (d *decoder) f32(what string) float32 {
	b := d.take(4)
	if b == nil {
		return 0
	}
	x := math.Float32frombits(binary.LittleEndian.Uint32(b))
	if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
		d.fail("%s is %v", what, x)
	}
	return x
}

func (d *decoder) floats(what string, n int) []float32 {
	if d.err != nil {
		return nil
	}
	if n > len(d.b)/4 {
		d.fail("truncated")
		return nil
	}
	xs := make([]float32, n)
	for i := range xs {
		xs[i] = d.f32(what)
	}
	return xs
}

func (d *decoder) projection(in int) *projection {
	out := d.dim("projection dimension", in)
	w := d.floats("projection weight", out*in)
	if d.err != nil {
		return nil
	}
	return newProjection32(in, out, w)
}

// Decode reads a head serialised by MarshalBinary. It refuses, wrapping
// ErrCorrupt, a blob that is truncated, has trailing bytes, fails its
// checksum, declares an unknown method or an implausible dimension, or
// holds a NaN or infinite parameter.
func Decode(blob []byte) (Head, error) {
	if len(blob) < len(magic)+2+4+4+4 || string(blob[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: no head header", ErrCorrupt)
	}
	body, sum := blob[:len(blob)-4], binary.LittleEndian.Uint32(blob[len(blob)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	d := &decoder{b: body[len(magic):]}
	if v := d.byte1(); v != formatVersion {
		return nil, fmt.Errorf("%w: format version %d, this facegate reads %d", ErrCorrupt, v, formatVersion)
	}
	code := d.byte1()
	method, ok := methodOf(code)
	if !ok {
		return nil, fmt.Errorf("%w: unknown method %d", ErrCorrupt, code)
	}
	dim := d.dim("input dimension", MaxDim)
	threshold := d.f32("threshold")
	var h Head
	switch method {
	case Cosine:
		h = &cosineHead{dim: dim, threshold: threshold}
	case Triplet:
		p := d.projection(dim)
		if d.err == nil {
			h = &projectionHead{p: p, threshold: threshold}
		}
	case Logistic, Chi2:
		var p *projection
		switch flag := d.byte1(); flag {
		case 0:
		case 1:
			p = d.projection(dim)
		default:
			d.fail("projection flag %d", flag)
		}
		want := dim
		if p != nil {
			want = p.out
		}
		n := d.dim("weight count", MaxDim)
		if d.err == nil && n != want {
			d.fail("%d weights for %d features", n, want)
		}
		w := d.floats("weight", n)
		b := d.f32("bias")
		eps := d.f32("epsilon")
		if d.err == nil && method == Chi2 && !(eps > 0) {
			d.fail("chi2 epsilon %v is not positive", eps)
		}
		if d.err == nil {
			h = &pairHead{method: method, dim: dim, proj: p, w: w, b: b, eps: eps, threshold: threshold}
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	return h, nil
}
