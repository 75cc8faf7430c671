package verify

import (
	"fmt"
	"image"

	"github.com/facegate/facegate/detect"
	"github.com/facegate/facegate/internal/onnx"
	"gocv.io/x/gocv"
)

// EmbeddingDim is the length of the encoder's output.
const EmbeddingDim = 512

// Encoder aligns a face onto the template and embeds it. Not safe for
// concurrent use.
type Encoder struct {
	sess    *onnx.Session
	model   string
	m       gocv.Mat // 2×3 CV_64F similarity
	aligned gocv.Mat
}

// NewEncoder loads the encoder at path; model is its identity (the file's
// sha256), carried by every Embedding it makes.
func NewEncoder(rt *onnx.Runtime, path, model string, threads int) (*Encoder, error) {
	s, err := rt.NewSession(path,
		[]onnx.Tensor{{Name: "input", Shape: []int64{1, 3, AlignSize, AlignSize}}},
		[]onnx.Tensor{{Name: "output", Shape: []int64{1, EmbeddingDim}}},
		threads)
	if err != nil {
		return nil, err
	}
	return &Encoder{
		sess:    s,
		model:   model,
		m:       gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F),
		aligned: gocv.NewMat(),
	}, nil
}

// Model is the encoder's identity.
func (e *Encoder) Model() string { return e.model }

// Session is the encoder's model session, for timing its inference.
func (e *Encoder) Session() *onnx.Session { return e.sess }

// Align warps the face with the five points onto the 112×112 template
// (bilinear, black border) and returns the crop, valid until the next call.
func (e *Encoder) Align(frame gocv.Mat, points [5]detect.Point) gocv.Mat {
	sim := FitSimilarity(points, Template())
	for r := 0; r < 2; r++ {
		for c := 0; c < 3; c++ {
			e.m.SetDoubleAt(r, c, sim[r][c])
		}
	}
	gocv.WarpAffine(frame, &e.aligned, e.m, image.Pt(AlignSize, AlignSize))
	return e.aligned
}

// Encode embeds the crop last made by Align into dst (EmbeddingDim floats),
// L2-normalised. The crop is fed in BGR order, scaled (v − 127.5) / 128.
func (e *Encoder) Encode(dst []float32) error {
	px, err := e.aligned.DataPtrUint8()
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	in := e.sess.Input(0)
	const plane = AlignSize * AlignSize
	for i := 0; i < plane; i++ {
		in[i] = (float32(px[3*i]) - 127.5) / 128
		in[plane+i] = (float32(px[3*i+1]) - 127.5) / 128
		in[2*plane+i] = (float32(px[3*i+2]) - 127.5) / 128
	}
	if err := e.sess.Run(); err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	copy(dst, e.sess.Output(0))
	return normalize(dst[:EmbeddingDim])
}

// Close frees the model session and buffers.
func (e *Encoder) Close() error {
	e.m.Close()
	e.aligned.Close()
	return e.sess.Close()
}
