package detect

import (
	"fmt"
	"image"

	"github.com/facegate/facegate/internal/onnx"
	"gocv.io/x/gocv"
)

// The Ultra-Light RFB-320 detector's fixed input and its 4,420 priors.
const (
	detW, detH  = 320, 240
	detPriors   = 4420
	detMinScore = 0.7
	detNMSIoU   = 0.3
	// MaxFaces bounds the faces reported per frame; a door sees a few.
	MaxFaces = 32
)

// Detector finds faces with the Ultra-Light-Fast-Generic-Face-Detector. It
// reuses its buffers between frames and is not safe for concurrent use.
type Detector struct {
	sess    *onnx.Session
	resized gocv.Mat
	rgb     gocv.Mat
	cands   []Detection
}

// NewDetector loads the detector model at path.
func NewDetector(rt *onnx.Runtime, path string, threads int) (*Detector, error) {
	s, err := rt.NewSession(path,
		[]onnx.Tensor{{Name: "input", Shape: []int64{1, 3, detH, detW}}},
		[]onnx.Tensor{{Name: "scores", Shape: []int64{1, detPriors, 2}}, {Name: "boxes", Shape: []int64{1, detPriors, 4}}},
		threads)
	if err != nil {
		return nil, err
	}
	return &Detector{
		sess:    s,
		resized: gocv.NewMat(),
		rgb:     gocv.NewMat(),
		cands:   make([]Detection, 0, detPriors),
	}, nil
}

// Session is the detector's model session, for timing its inference.
func (d *Detector) Session() *onnx.Session { return d.sess }

// Detect appends the faces in frame (BGR) to dst[:0], best score first, at
// most MaxFaces of them, in frame pixels.
func (d *Detector) Detect(frame gocv.Mat, dst []Detection) ([]Detection, error) {
	dst = dst[:0]
	if frame.Empty() {
		return dst, fmt.Errorf("detect: empty frame")
	}
	gocv.Resize(frame, &d.resized, image.Pt(detW, detH), 0, 0, gocv.InterpolationLinear)
	gocv.CvtColor(d.resized, &d.rgb, gocv.ColorBGRToRGB)
	px, err := d.rgb.DataPtrUint8()
	if err != nil {
		return dst, fmt.Errorf("detect: %w", err)
	}
	in := d.sess.Input(0)
	const plane = detW * detH
	for i := 0; i < plane; i++ {
		in[i] = (float32(px[3*i]) - 127) / 128
		in[plane+i] = (float32(px[3*i+1]) - 127) / 128
		in[2*plane+i] = (float32(px[3*i+2]) - 127) / 128
	}
	if err := d.sess.Run(); err != nil {
		return dst, fmt.Errorf("detect: %w", err)
	}
	scores, boxes := d.sess.Output(0), d.sess.Output(1)
	w, h := float32(frame.Cols()), float32(frame.Rows())
	cands := d.cands[:0]
	for i := 0; i < detPriors; i++ {
		s := scores[2*i+1]
		if s < detMinScore {
			continue
		}
		b := boxes[4*i : 4*i+4]
		cands = append(cands, Detection{
			Box:   Box{clamp(b[0], 0, 1) * w, clamp(b[1], 0, 1) * h, clamp(b[2], 0, 1) * w, clamp(b[3], 0, 1) * h},
			Score: s,
		})
	}
	for _, c := range NMS(cands, detNMSIoU) {
		if len(dst) == MaxFaces {
			break
		}
		if c.Box.Area() > 0 {
			dst = append(dst, c)
		}
	}
	return dst, nil
}

// Close frees the model session and buffers.
func (d *Detector) Close() error {
	d.resized.Close()
	d.rgb.Close()
	return d.sess.Close()
}

func clamp(v, lo, hi float32) float32 { return min(max(v, lo), hi) }
