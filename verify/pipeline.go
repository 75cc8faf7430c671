package verify

import (
	"cmp"
	"errors"
	"fmt"
	"image"
	"slices"
	"time"

	"github.com/facegate/facegate/detect"
	"github.com/facegate/facegate/internal/onnx"
	"gocv.io/x/gocv"
)

// ModelFiles names the four model files and the encoder's identity and
// input.
type ModelFiles struct {
	Detector, Landmarks, Liveness, Encoder string
	EncoderID                              string // sha256 of the encoder file, and its preprocessing when not the default
	EncoderSpec                            EncoderSpec
}

// Face is one face found in a frame, measured step by step: Find fills the
// box, points and quality; Liveness and Embed fill the rest.
type Face struct {
	Box       detect.Box
	Score     float32
	Square    image.Rectangle // the square box landmarks and liveness crop
	Points    [5]detect.Point
	Quality   detect.Quality
	Liveness  float32 // probability the face is live; valid when HasLive
	HasLive   bool
	Embedding Embedding // Vector is nil until Embed; it aliases the pipeline's buffer
}

// Timings are the time spent in each stage of one frame, summed over its
// faces. The *Run fields are the models' pure inference time.
type Timings struct {
	Detect, Landmarks, Liveness, Align, Encode      time.Duration
	DetectRun, LandmarksRun, LivenessRun, EncodeRun time.Duration
}

// Pipeline runs the chain image → faces → landmarks → quality → liveness →
// aligned crop → embedding with one set of model sessions. Its buffers are
// reused from frame to frame, so after the first frame it allocates nothing.
// Not safe for concurrent use; results are valid until the next Find.
type Pipeline struct {
	det  *detect.Detector
	lm   *detect.Landmarker
	live *detect.Liveness
	enc  *Encoder

	dets  []detect.Detection
	faces []Face
	vecs  []float32
	lms   detect.Landmarks
}

// Open loads the four models. threads bounds each model's intra-op thread
// pool (0: the runtime's choice).
func Open(rt *onnx.Runtime, files ModelFiles, threads int) (p *Pipeline, err error) {
	p = &Pipeline{
		dets:  make([]detect.Detection, 0, detect.MaxFaces),
		faces: make([]Face, 0, detect.MaxFaces),
	}
	defer func() {
		if err != nil {
			p.Close()
			p = nil
		}
	}()
	if p.det, err = detect.NewDetector(rt, files.Detector, threads); err != nil {
		return nil, err
	}
	if p.lm, err = detect.NewLandmarker(rt, files.Landmarks, threads); err != nil {
		return nil, err
	}
	if p.live, err = detect.NewLiveness(rt, files.Liveness, threads); err != nil {
		return nil, err
	}
	spec := files.EncoderSpec
	if spec == (EncoderSpec{}) {
		spec = DefaultEncoderSpec()
	}
	if p.enc, err = NewEncoder(rt, files.Encoder, files.EncoderID, spec, threads); err != nil {
		return nil, err
	}
	p.vecs = make([]float32, detect.MaxFaces*p.enc.Dim())
	return p, nil
}

// Dim is the length of the pipeline's embeddings.
func (p *Pipeline) Dim() int { return p.enc.Dim() }

// EncoderID is the identity carried by the pipeline's embeddings.
func (p *Pipeline) EncoderID() string { return p.enc.Model() }

// Find detects the faces in frame (BGR), places their landmarks and measures
// their quality. Faces come largest first. t may be nil.
func (p *Pipeline) Find(frame gocv.Mat, t *Timings) ([]Face, error) {
	start := time.Now()
	var err error
	p.dets, err = p.det.Detect(frame, p.dets)
	if err != nil {
		return nil, err
	}
	if t != nil {
		t.Detect += time.Since(start)
		t.DetectRun += p.det.Session().LastRun()
	}
	p.faces = p.faces[:0]
	w, h := frame.Cols(), frame.Rows()
	for _, d := range p.dets {
		sq := d.Box.Square(w, h)
		if sq.Dx() < 8 || sq.Dy() < 8 {
			continue // a sliver at the frame's edge: nothing to measure
		}
		start = time.Now()
		bright, sharp, err := p.lm.Landmarks(frame, sq, &p.lms)
		if err != nil {
			return nil, err
		}
		pts := p.lms.FivePoints()
		p.faces = append(p.faces, Face{
			Box:    d.Box,
			Score:  d.Score,
			Square: sq,
			Points: pts,
			Quality: detect.Quality{
				Size:       float32(sq.Dy()),
				Sharpness:  sharp,
				Brightness: bright,
				Yaw:        detect.Yaw(pts),
			},
		})
		if t != nil {
			t.Landmarks += time.Since(start)
			t.LandmarksRun += p.lm.Session().LastRun()
		}
	}
	slices.SortStableFunc(p.faces, func(a, b Face) int { return cmp.Compare(b.Box.Area(), a.Box.Area()) })
	return p.faces, nil
}

// Liveness scores face (one returned by the last Find on this frame).
func (p *Pipeline) Liveness(frame gocv.Mat, f *Face, t *Timings) error {
	start := time.Now()
	s, err := p.live.Score(frame, f.Square)
	if err != nil {
		return err
	}
	f.Liveness, f.HasLive = s, true
	if t != nil {
		t.Liveness += time.Since(start)
		t.LivenessRun += p.live.Session().LastRun()
	}
	return nil
}

// Embed aligns and encodes face (one returned by the last Find on this
// frame). The vector is kept in the pipeline's buffer until the next Find;
// copy it to keep it.
func (p *Pipeline) Embed(frame gocv.Mat, f *Face, t *Timings) error {
	i := p.index(f)
	if i < 0 {
		return errors.New("embed: face is not from the pipeline's last Find")
	}
	start := time.Now()
	p.enc.Align(frame, f.Points)
	aligned := time.Now()
	d := p.enc.Dim()
	v := p.vecs[i*d : (i+1)*d]
	if err := p.enc.Encode(v); err != nil {
		return fmt.Errorf("face %d: %w", i, err)
	}
	f.Embedding = Embedding{Model: p.enc.Model(), Vector: v}
	if t != nil {
		t.Align += aligned.Sub(start)
		t.Encode += time.Since(aligned)
		t.EncodeRun += p.enc.Session().LastRun()
	}
	return nil
}

func (p *Pipeline) index(f *Face) int {
	for i := range p.faces {
		if &p.faces[i] == f {
			return i
		}
	}
	return -1
}

// Aligned is the crop made by the last Embed, valid until the next.
func (p *Pipeline) Aligned() gocv.Mat { return p.enc.aligned }

// Close frees every model session.
func (p *Pipeline) Close() error {
	var errs []error
	if p.det != nil {
		errs = append(errs, p.det.Close())
	}
	if p.lm != nil {
		errs = append(errs, p.lm.Close())
	}
	if p.live != nil {
		errs = append(errs, p.live.Close())
	}
	if p.enc != nil {
		errs = append(errs, p.enc.Close())
	}
	return errors.Join(errs...)
}

// ErrNoFace is returned when a photo holds no face.
var ErrNoFace = errors.New("no face found")

// Choice says which face of a photo holding several is the one meant.
type Choice int

const (
	// Largest is the face nearest the camera: the one at a door, or in a
	// portrait taken for enrollment.
	Largest Choice = iota
	// Central is the face nearest the image's centre: the subject of a
	// photo cropped around one face, as every LFW image is.
	Central
)

// EmbedOne embeds the chosen face in frame and returns a copy of its
// embedding (safe to keep) and the number of faces found; ErrNoFace when
// there is none.
func (p *Pipeline) EmbedOne(frame gocv.Mat, choice Choice) (Embedding, int, error) {
	faces, err := p.Find(frame, nil)
	if err != nil {
		return Embedding{}, 0, err
	}
	if len(faces) == 0 {
		return Embedding{}, 0, ErrNoFace
	}
	f := &faces[0] // largest first
	if choice == Central {
		cx, cy := float32(frame.Cols())/2, float32(frame.Rows())/2
		best := float32(-1)
		for i := range faces {
			b := faces[i].Box
			dx, dy := (b.X1+b.X2)/2-cx, (b.Y1+b.Y2)/2-cy
			if d := dx*dx + dy*dy; best < 0 || d < best {
				best, f = d, &faces[i]
			}
		}
	}
	if err := p.Embed(frame, f, nil); err != nil {
		return Embedding{}, len(faces), err
	}
	e := Embedding{Model: f.Embedding.Model, Vector: append([]float32(nil), f.Embedding.Vector...)}
	return e, len(faces), nil
}

// EnrollmentEmbedding checks that frame is a usable enrollment photo and
// embeds its face. Exactly one face must pass the quality gates: a sliver
// of a bystander that fails them does not count, two people do. The error
// says why a photo is refused.
func (p *Pipeline) EnrollmentEmbedding(frame gocv.Mat, gates detect.Gates) (Embedding, detect.Quality, error) {
	faces, err := p.Find(frame, nil)
	if err != nil {
		return Embedding{}, detect.Quality{}, err
	}
	if len(faces) == 0 {
		return Embedding{}, detect.Quality{}, ErrNoFace
	}
	var good *Face
	passing := 0
	for i := range faces {
		if gates.Check(faces[i].Quality) == nil {
			passing++
			if good == nil {
				good = &faces[i]
			}
		}
	}
	switch {
	case passing == 0:
		return Embedding{}, faces[0].Quality, fmt.Errorf("no usable face: %w", gates.Check(faces[0].Quality))
	case passing > 1:
		return Embedding{}, good.Quality, fmt.Errorf("%d faces: an enrollment photo must show one person", passing)
	}
	if err := p.Embed(frame, good, nil); err != nil {
		return Embedding{}, good.Quality, err
	}
	e := Embedding{Model: good.Embedding.Model, Vector: append([]float32(nil), good.Embedding.Vector...)}
	return e, good.Quality, nil
}
