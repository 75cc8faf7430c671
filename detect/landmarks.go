package detect

import (
	"fmt"
	"image"

	"github.com/facegate/facegate/internal/onnx"
	"gocv.io/x/gocv"
)

const lmSize = 64

// Landmarks is the 68-point model's output in frame pixels.
type Landmarks [68]Point

// FivePoints reduces 68 landmarks to the five the alignment template uses:
// left eye, right eye, nose tip, left and right mouth corners (0-based
// indices of the iBUG 68-point scheme).
func (l *Landmarks) FivePoints() [5]Point {
	return [5]Point{
		mean(l[37], l[38], l[40], l[41]),
		mean(l[43], l[44], l[46], l[47]),
		l[30],
		mean(l[48], l[60]),
		mean(l[54], l[64]),
	}
}

func mean(ps ...Point) Point {
	var x, y float32
	for _, p := range ps {
		x += p.X
		y += p.Y
	}
	n := float32(len(ps))
	return Point{x / n, y / n}
}

// Landmarker places 68 landmarks in a face's square box and measures the
// face's quality on the same grey crop. Not safe for concurrent use.
type Landmarker struct {
	sess  *onnx.Session
	grey  gocv.Mat
	small gocv.Mat
}

// NewLandmarker loads the 68-point landmark model at path.
func NewLandmarker(rt *onnx.Runtime, path string, threads int) (*Landmarker, error) {
	s, err := rt.NewSession(path,
		[]onnx.Tensor{{Name: "input", Shape: []int64{1, 1, lmSize, lmSize}}},
		[]onnx.Tensor{{Name: "output", Shape: []int64{1, 136}}},
		threads)
	if err != nil {
		return nil, err
	}
	return &Landmarker{sess: s, grey: gocv.NewMat(), small: gocv.NewMat()}, nil
}

// Session is the landmark model's session, for timing its inference.
func (l *Landmarker) Session() *onnx.Session { return l.sess }

// Landmarks finds the 68 points of the face in square (see Box.Square) and
// the face's brightness and sharpness, measured on the 64×64 grey crop the
// model sees.
func (l *Landmarker) Landmarks(frame gocv.Mat, square image.Rectangle, dst *Landmarks) (brightness, sharpness float32, err error) {
	if square.Dx() < 2 || square.Dy() < 2 {
		return 0, 0, fmt.Errorf("landmarks: face box %v is too small", square)
	}
	crop := frame.Region(square)
	gocv.CvtColor(crop, &l.grey, gocv.ColorBGRToGray)
	crop.Close()
	gocv.Resize(l.grey, &l.small, image.Pt(lmSize, lmSize), 0, 0, gocv.InterpolationLinear)
	px, err := l.small.DataPtrUint8()
	if err != nil {
		return 0, 0, fmt.Errorf("landmarks: %w", err)
	}
	in := l.sess.Input(0)
	for i, v := range px {
		in[i] = float32(v) / 256
	}
	if err := l.sess.Run(); err != nil {
		return 0, 0, fmt.Errorf("landmarks: %w", err)
	}
	out := l.sess.Output(0)
	w, h := float32(square.Dx()), float32(square.Dy())
	x0, y0 := float32(square.Min.X), float32(square.Min.Y)
	for i := range dst {
		dst[i] = Point{out[2*i]*w + x0, out[2*i+1]*h + y0}
	}
	brightness, sharpness = greyStats(px, lmSize)
	return brightness, sharpness, nil
}

// Close frees the model session and buffers.
func (l *Landmarker) Close() error {
	l.grey.Close()
	l.small.Close()
	return l.sess.Close()
}
