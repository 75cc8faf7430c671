package verify

import (
	"fmt"
	"image"

	"github.com/facegate/facegate/detect"
	"github.com/facegate/facegate/internal/onnx"
	"gocv.io/x/gocv"
)

// EmbeddingDim is the length of the bundled encoder's output.
const EmbeddingDim = 512

// EncoderSpec says how an encoder wants its aligned crop: the tensor names,
// the crop's side, the memory layout, the channel order and the scaling
// value = (v − Mean) / Std. The bundled encoder's is DefaultEncoderSpec; a
// user's own model (for example a TensorFlow SavedModel converted with
// tf2onnx, which keeps TensorFlow's NHWC layout) gets one from InspectEncoder.
type EncoderSpec struct {
	Input, Output string
	Size          int  // side of the square aligned crop, pixels
	NHWC          bool // channels last, as TensorFlow lays images out
	Dim           int  // length of the embedding
	Mean, Std     float32
	RGB           bool // feed R, G, B; false feeds B, G, R
}

// DefaultEncoderSpec is the bundled fr_feature.onnx: 112×112 BGR, NCHW,
// (v − 127.5) / 128, 512 floats. BGR measured better than RGB on LFW.
func DefaultEncoderSpec() EncoderSpec {
	return EncoderSpec{Input: "input", Output: "output", Size: AlignSize, Dim: EmbeddingDim, Mean: 127.5, Std: 128}
}

// InspectEncoder reads the input layout, crop size and embedding length of
// the encoder at path from the model itself. The scaling and channel order
// cannot be read from a model; they are taken from pre.
func InspectEncoder(rt *onnx.Runtime, path string, pre EncoderSpec) (EncoderSpec, error) {
	ins, outs, err := rt.Describe(path)
	if err != nil {
		return EncoderSpec{}, err
	}
	spec, err := encoderSpecFor(ins, outs)
	if err != nil {
		return EncoderSpec{}, fmt.Errorf("encoder %s: %w", path, err)
	}
	spec.Mean, spec.Std, spec.RGB = pre.Mean, pre.Std, pre.RGB
	return spec, nil
}

// encoderSpecFor accepts one image input, [N,3,H,W] or [N,H,W,3] with H = W
// (a free side defaults to 112), and one output [N,D].
func encoderSpecFor(ins, outs []onnx.Tensor) (EncoderSpec, error) {
	if len(ins) != 1 || len(outs) != 1 {
		return EncoderSpec{}, fmt.Errorf("has %d inputs and %d outputs, want one of each", len(ins), len(outs))
	}
	in, out := ins[0], outs[0]
	if len(in.Shape) != 4 {
		return EncoderSpec{}, fmt.Errorf("input %q has shape %v, want an image [N,3,H,W] or [N,H,W,3]", in.Name, in.Shape)
	}
	spec := EncoderSpec{Input: in.Name, Output: out.Name}
	var h, w int64
	switch {
	case in.Shape[1] == 3 && in.Shape[3] != 3:
		h, w = in.Shape[2], in.Shape[3]
	case in.Shape[3] == 3:
		spec.NHWC = true
		h, w = in.Shape[1], in.Shape[2]
	default:
		return EncoderSpec{}, fmt.Errorf("input %q has shape %v: no 3-channel axis", in.Name, in.Shape)
	}
	switch {
	case h < 0 && w < 0:
		h, w = AlignSize, AlignSize
	case h < 0:
		h = w
	case w < 0:
		w = h
	}
	if h != w || h < 32 || h > 1024 {
		return EncoderSpec{}, fmt.Errorf("input %q wants %dx%d crops; facegate aligns square crops of 32 to 1024 pixels", in.Name, w, h)
	}
	spec.Size = int(h)
	if len(out.Shape) != 2 || out.Shape[1] < 1 {
		return EncoderSpec{}, fmt.Errorf("output %q has shape %v, want [N,D] with a fixed D", out.Name, out.Shape)
	}
	spec.Dim = int(out.Shape[1])
	return spec, nil
}

func (s EncoderSpec) inputShape() []int64 {
	n := int64(s.Size)
	if s.NHWC {
		return []int64{1, n, n, 3}
	}
	return []int64{1, 3, n, n}
}

// fill writes the size×size BGR pixels px into the input tensor dst in the
// spec's layout, channel order and scaling.
func (s EncoderSpec) fill(dst []float32, px []uint8) {
	plane := s.Size * s.Size
	c0, c2 := 0, 2 // source channel fed first and last: B, R
	if s.RGB {
		c0, c2 = 2, 0
	}
	inv := 1 / s.Std
	if s.NHWC {
		for i := 0; i < plane; i++ {
			dst[3*i] = (float32(px[3*i+c0]) - s.Mean) * inv
			dst[3*i+1] = (float32(px[3*i+1]) - s.Mean) * inv
			dst[3*i+2] = (float32(px[3*i+c2]) - s.Mean) * inv
		}
		return
	}
	for i := 0; i < plane; i++ {
		dst[i] = (float32(px[3*i+c0]) - s.Mean) * inv
		dst[plane+i] = (float32(px[3*i+1]) - s.Mean) * inv
		dst[2*plane+i] = (float32(px[3*i+c2]) - s.Mean) * inv
	}
}

// Encoder aligns a face onto the template and embeds it. Not safe for
// concurrent use.
type Encoder struct {
	sess    *onnx.Session
	spec    EncoderSpec
	model   string
	tpl     [5]detect.Point // the template scaled to the spec's crop
	m       gocv.Mat        // 2×3 CV_64F similarity
	aligned gocv.Mat
}

// NewEncoder loads the encoder at path; model is its identity, carried by
// every Embedding it makes.
func NewEncoder(rt *onnx.Runtime, path, model string, spec EncoderSpec, threads int) (*Encoder, error) {
	if spec.Std == 0 {
		return nil, fmt.Errorf("encoder %s: scaling divides by zero (std 0)", path)
	}
	s, err := rt.NewSession(path,
		[]onnx.Tensor{{Name: spec.Input, Shape: spec.inputShape()}},
		[]onnx.Tensor{{Name: spec.Output, Shape: []int64{1, int64(spec.Dim)}}},
		threads)
	if err != nil {
		return nil, err
	}
	tpl := Template()
	k := float32(spec.Size) / AlignSize
	for i := range tpl {
		tpl[i].X *= k
		tpl[i].Y *= k
	}
	return &Encoder{
		sess:    s,
		spec:    spec,
		model:   model,
		tpl:     tpl,
		m:       gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F),
		aligned: gocv.NewMat(),
	}, nil
}

// Model is the encoder's identity.
func (e *Encoder) Model() string { return e.model }

// Dim is the length of the encoder's embeddings.
func (e *Encoder) Dim() int { return e.spec.Dim }

// Session is the encoder's model session, for timing its inference.
func (e *Encoder) Session() *onnx.Session { return e.sess }

// Align warps the face with the five points onto the template (bilinear,
// black border) and returns the crop, valid until the next call.
func (e *Encoder) Align(frame gocv.Mat, points [5]detect.Point) gocv.Mat {
	sim := FitSimilarity(points, e.tpl)
	for r := 0; r < 2; r++ {
		for c := 0; c < 3; c++ {
			e.m.SetDoubleAt(r, c, sim[r][c])
		}
	}
	gocv.WarpAffine(frame, &e.aligned, e.m, image.Pt(e.spec.Size, e.spec.Size))
	return e.aligned
}

// Encode embeds the crop last made by Align into dst (Dim floats),
// L2-normalised.
func (e *Encoder) Encode(dst []float32) error {
	px, err := e.aligned.DataPtrUint8()
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	e.spec.fill(e.sess.Input(0), px)
	if err := e.sess.Run(); err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	copy(dst, e.sess.Output(0))
	return normalize(dst[:e.spec.Dim])
}

// Close frees the model session and buffers.
func (e *Encoder) Close() error {
	e.m.Close()
	e.aligned.Close()
	return e.sess.Close()
}
