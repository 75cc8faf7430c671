package learn

import (
	"math"

	"github.com/facegate/facegate/verify"
)

// projection is g(x) = Wx/‖Wx‖ for scoring, in float32: W has out rows of
// in elements.
type projection struct {
	in, out int
	w       []float32
}

func newProjection32(in, out int, w []float32) *projection {
	return &projection{in: in, out: out, w: w}
}

// projectionFrom64 rounds a trained projection to float32.
func projectionFrom64(in, out int, w []float64) *projection {
	w32 := make([]float32, len(w))
	for i, x := range w {
		w32[i] = float32(x)
	}
	return newProjection32(in, out, w32)
}

// apply writes g(x) to dst (grown to out elements) and returns it. A
// projection that maps x to zero gives the zero vector, whose cosine with
// anything is 0.
func (p *projection) apply(dst, x []float32) []float32 {
	if cap(dst) < p.out {
		dst = make([]float32, p.out)
	}
	dst = dst[:p.out]
	x = x[:p.in]
	var ss float64
	for r := range dst {
		y := verify.Dot(p.w[r*p.in:(r+1)*p.in], x)
		dst[r] = y
		ss += float64(y) * float64(y)
	}
	if ss > 0 {
		inv := float32(1 / math.Sqrt(ss))
		for r := range dst {
			dst[r] *= inv
		}
	}
	return dst
}

func (p *projection) encode(e *encoder) {
	e.u32(p.out)
	e.floats(p.w)
}

// projectionHead scores a pair by the cosine of their projections: the
// head a triplet-trained projection makes.
type projectionHead struct {
	p         *projection
	threshold float32
}

func (h *projectionHead) Method() Method     { return Triplet }
func (h *projectionHead) Dim() int           { return h.p.in }
func (h *projectionHead) Threshold() float32 { return h.threshold }

func (h *projectionHead) Score(a, b []float32) float32 {
	ga := h.p.apply(nil, a)
	gb := h.p.apply(nil, b)
	return verify.Dot(ga, gb)
}

func (h *projectionHead) Prepare(dst, x []float32) []float32   { return h.p.apply(dst, x) }
func (h *projectionHead) PreparedDim() int                     { return h.p.out }
func (h *projectionHead) ScorePrepared(u, v []float32) float32 { return verify.Dot(u, v) }
func (h *projectionHead) ByCosine() bool                       { return true }

func (h *projectionHead) WithThreshold(t float32) Head {
	c := *h
	c.threshold = t
	return &c
}

func (h *projectionHead) MarshalBinary() ([]byte, error) {
	e := newEncoder(Triplet, h.p.in, h.threshold)
	h.p.encode(e)
	return e.finish(), nil
}
