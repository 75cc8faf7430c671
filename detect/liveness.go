package detect

import (
	"fmt"
	"image"
	"math"

	"github.com/facegate/facegate/internal/onnx"
	"gocv.io/x/gocv"
)

const (
	liveSize  = 128
	liveScale = 2.7
	// DefaultLivenessThreshold is the live-class probability a face needs.
	// At 0.5 the model separated live faces from printed photos completely on
	// spoof-dev (see README for the measured rates).
	DefaultLivenessThreshold = 0.5
)

// Liveness scores a face as live or as a presentation attack (a printed
// photo or a screen) with a MiniFASNet-family model on a single frame. Not
// safe for concurrent use.
type Liveness struct {
	sess *onnx.Session
	crop gocv.Mat
}

// NewLiveness loads the liveness model at path.
func NewLiveness(rt *onnx.Runtime, path string, threads int) (*Liveness, error) {
	s, err := rt.NewSession(path,
		[]onnx.Tensor{{Name: "input", Shape: []int64{1, 3, liveSize, liveSize}}},
		[]onnx.Tensor{{Name: "output", Shape: []int64{1, 3}}},
		threads)
	if err != nil {
		return nil, err
	}
	return &Liveness{sess: s, crop: gocv.NewMat()}, nil
}

// Session is the liveness model's session, for timing its inference.
func (l *Liveness) Session() *onnx.Session { return l.sess }

// LivenessCrop is the context box the liveness model sees: the square face
// box scaled 2.7× about its centre, or less where the frame is too small,
// then shifted (not shrunk) to lie inside a w×h frame.
func LivenessCrop(square image.Rectangle, w, h int) image.Rectangle {
	bw, bh := float64(square.Dx()), float64(square.Dy())
	scale := math.Min(liveScale, math.Min(float64(h-1)/bh, float64(w-1)/bw))
	nw, nh := bw*scale, bh*scale
	cx := float64(square.Min.X) + bw/2
	cy := float64(square.Min.Y) + bh/2
	x1, y1 := cx-nw/2, cy-nh/2
	x2, y2 := cx+nw/2, cy+nh/2
	if x1 < 0 {
		x2 -= x1
		x1 = 0
	}
	if y1 < 0 {
		y2 -= y1
		y1 = 0
	}
	if x2 > float64(w-1) {
		x1 -= x2 - float64(w-1)
		x2 = float64(w - 1)
	}
	if y2 > float64(h-1) {
		y1 -= y2 - float64(h-1)
		y2 = float64(h - 1)
	}
	return image.Rect(int(x1), int(y1), int(x2)+1, int(y2)+1).Intersect(image.Rect(0, 0, w, h))
}

// Score returns the probability that the face in square is live: the
// softmax of the model's three logits, class 0 (classes 1 and 2 are attacks).
// The crop is fed in BGR order, which separated attacks better than RGB.
func (l *Liveness) Score(frame gocv.Mat, square image.Rectangle) (float32, error) {
	r := LivenessCrop(square, frame.Cols(), frame.Rows())
	if r.Dx() < 2 || r.Dy() < 2 {
		return 0, fmt.Errorf("liveness: face box %v is too small", square)
	}
	region := frame.Region(r)
	gocv.Resize(region, &l.crop, image.Pt(liveSize, liveSize), 0, 0, gocv.InterpolationLinear)
	region.Close()
	px, err := l.crop.DataPtrUint8()
	if err != nil {
		return 0, fmt.Errorf("liveness: %w", err)
	}
	in := l.sess.Input(0)
	const plane = liveSize * liveSize
	for i := 0; i < plane; i++ {
		in[i] = float32(px[3*i])
		in[plane+i] = float32(px[3*i+1])
		in[2*plane+i] = float32(px[3*i+2])
	}
	if err := l.sess.Run(); err != nil {
		return 0, fmt.Errorf("liveness: %w", err)
	}
	return softmax0(l.sess.Output(0)), nil
}

// softmax0 is the softmax probability of class 0.
func softmax0(logits []float32) float32 {
	m := logits[0]
	for _, v := range logits[1:] {
		m = max(m, v)
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v - m))
	}
	return float32(math.Exp(float64(logits[0]-m)) / sum)
}

// Close frees the model session and buffers.
func (l *Liveness) Close() error {
	l.crop.Close()
	return l.sess.Close()
}
