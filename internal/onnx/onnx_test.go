package onnx

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/facegate/facegate/internal/models"
)

// The ONNX Runtime environment is one per process. Tests that need it call
// runtimeFor, which loads it on first use; TestLoad closes it and loads it
// again, so tests must not run in parallel with each other (none does).
// TestMain closes whatever is open at the end.
var (
	libDir   string
	sharedMu sync.Mutex
	shared   *Runtime
)

func TestMain(m *testing.M) {
	dir, err := models.FindRepoDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, "onnx tests:", err)
		os.Exit(1)
	}
	libDir = dir
	code := m.Run()
	sharedMu.Lock()
	if shared != nil {
		if err := shared.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "onnx tests: closing the runtime:", err)
			code = 1
		}
		shared = nil
	}
	sharedMu.Unlock()
	os.Exit(code)
}

func ortLib() string        { return filepath.Join(libDir, "libonnxruntime.so.1") }
func model(n string) string { return filepath.Join(libDir, "models", n) }

func runtimeFor(t *testing.T) *Runtime {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil {
		rt, err := Load(ortLib())
		if err != nil {
			t.Fatal(err)
		}
		shared = rt
	}
	return shared
}

// The detector's declared tensors (detect/detector.go).
var (
	detIn  = []Tensor{{Name: "input", Shape: []int64{1, 3, 240, 320}}}
	detOut = []Tensor{{Name: "scores", Shape: []int64{1, 4420, 2}}, {Name: "boxes", Shape: []int64{1, 4420, 4}}}
)

func TestLoad(t *testing.T) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil { // another test loaded it: start from no runtime
		if err := shared.Close(); err != nil {
			t.Fatal(err)
		}
		shared = nil
	}
	dir := t.TempDir()
	text := filepath.Join(dir, "libonnxruntime.so.1")
	if err := os.WriteFile(text, []byte("this is not a shared library\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "nope", "libonnxruntime.so.1")
	for _, tc := range []struct {
		name, lib string
		want      []string
	}{
		{"missing", missing, []string{missing, "no such file", "make setup"}},
		{"text file", text, []string{text}},
		{"folder", dir, []string{dir, "not a regular file"}},
		{"missing again after a failed dlopen", missing, []string{missing, "make setup"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, err := Load(tc.lib)
			if err == nil {
				rt.Close()
				t.Fatalf("Load(%s) succeeded", tc.lib)
			}
			msg := err.Error()
			t.Log(msg)
			if strings.Contains(msg, "\n") {
				t.Errorf("error is more than one line: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("Load(%s) error %q does not mention %q", tc.lib, msg, w)
				}
			}
		})
	}

	// The failures above leave the package usable.
	rt, err := Load(ortLib())
	if err != nil {
		t.Fatalf("Load after failed loads: %v", err)
	}
	if v := rt.Version(); !strings.HasPrefix(v, "1.") {
		t.Errorf("Version() = %q, want 1.x", v)
	}
	if rt2, err := Load(ortLib()); err == nil {
		rt2.Close()
		t.Error("a second Load while the first is open succeeded")
	} else if !strings.Contains(err.Error(), "already loaded") {
		t.Errorf("second Load: %v, want 'already loaded'", err)
	}
	// Close and load again: a daemon restarting its pipeline does this.
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	if rt, err = Load(ortLib()); err != nil {
		t.Fatalf("Load after Close: %v", err)
	}
	s, err := rt.NewSession(model("fr_detect.onnx"), detIn, detOut, 1)
	if err != nil {
		rt.Close()
		t.Fatalf("NewSession after a reload: %v", err)
	}
	if err := s.Run(); err != nil {
		t.Errorf("Run after a reload: %v", err)
	}
	s.Close()
	shared = rt // TestMain closes it
}

func TestNewSessionRefuses(t *testing.T) {
	rt := runtimeFor(t)
	dir := t.TempDir()
	det, err := os.ReadFile(model("fr_detect.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.onnx")
	if err := os.WriteFile(truncated, det[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	random := filepath.Join(dir, "random.onnx")
	rnd := make([]byte, 64<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range rnd {
		rnd[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(random, rnd, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.onnx")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		path     string
		in, out  []Tensor
		want     []string
		notFound bool
	}{
		{"landmark model as detector", model("fr_landmark.onnx"), detIn, detOut, []string{"fr_landmark.onnx", "wrong model file"}, false},
		{"detector with a wrong input name", model("fr_detect.onnx"),
			[]Tensor{{Name: "image", Shape: []int64{1, 3, 240, 320}}}, detOut, []string{"fr_detect.onnx", `no input named "image"`, "wrong model file"}, false},
		{"detector with a wrong output shape", model("fr_detect.onnx"),
			detIn, []Tensor{{Name: "scores", Shape: []int64{1, 4420, 3}}}, []string{"fr_detect.onnx", `output "scores"`, "wrong model file"}, false},
		{"detector with a wrong rank", model("fr_detect.onnx"),
			[]Tensor{{Name: "input", Shape: []int64{3, 240, 320}}}, detOut, []string{"fr_detect.onnx", `input "input"`, "wrong model file"}, false},
		{"truncated detector", truncated, detIn, detOut, []string{truncated, "cannot be read as ONNX"}, false},
		{"random bytes", random, detIn, detOut, []string{random, "cannot be read as ONNX"}, false},
		{"empty file", empty, detIn, detOut, []string{empty, "cannot be read as ONNX"}, false},
		{"missing file", filepath.Join(dir, "nope.onnx"), detIn, detOut, []string{"nope.onnx"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := rt.NewSession(tc.path, tc.in, tc.out, 1)
			if err == nil {
				s.Close()
				t.Fatalf("NewSession(%s) succeeded", tc.path)
			}
			if s != nil {
				t.Errorf("NewSession(%s) returned a Session with its error", tc.path)
			}
			msg := err.Error()
			t.Log(msg)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

func TestSessionRun(t *testing.T) {
	rt := runtimeFor(t)
	s, err := rt.NewSession(model("fr_detect.onnx"), detIn, detOut, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := len(s.Input(0)); got != 3*240*320 {
		t.Errorf("len(Input(0)) = %d, want %d", got, 3*240*320)
	}
	if s.LastRun() != 0 {
		t.Errorf("LastRun() before any Run = %v, want 0", s.LastRun())
	}
	in := s.Input(0)
	for i := range in {
		in[i] = float32(i%255)/128 - 1
	}
	if err := s.Run(); err != nil {
		t.Fatal(err)
	}
	if s.LastRun() <= 0 {
		t.Errorf("LastRun() = %v after a Run, want > 0", s.LastRun())
	}
	scores, boxes := s.Output(0), s.Output(1)
	if len(scores) != 4420*2 || len(boxes) != 4420*4 {
		t.Fatalf("outputs have %d and %d floats, want %d and %d", len(scores), len(boxes), 4420*2, 4420*4)
	}
	// The detector ends in a softmax: every prior's two scores are
	// probabilities that sum to 1 (the output tensors start zeroed, so this
	// also shows Run wrote them).
	for i := 0; i < len(scores); i += 2 {
		a, b := scores[i], scores[i+1]
		if a < 0 || b < 0 || math.Abs(float64(a+b)-1) > 1e-4 {
			t.Fatalf("prior %d: scores %v, %v are not a softmax pair", i/2, a, b)
		}
	}
	for i, v := range boxes {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("boxes[%d] = %v", i, v)
		}
	}
	// The same input gives the same output.
	first := append([]float32(nil), scores...)
	if err := s.Run(); err != nil {
		t.Fatal(err)
	}
	for i := range first {
		if first[i] != s.Output(0)[i] {
			t.Fatalf("second Run on the same input: scores[%d] = %v, was %v", i, s.Output(0)[i], first[i])
		}
	}

	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// shapeFits is tested directly: the bundled models declare no free (-1)
// dimension, so NewSession cannot show that a free one matches anything.
func TestShapeFits(t *testing.T) {
	for _, tc := range []struct {
		model, want []int64
		fits        bool
	}{
		{[]int64{1, 3, 240, 320}, []int64{1, 3, 240, 320}, true},
		{[]int64{-1, 3, 240, 320}, []int64{4, 3, 240, 320}, true},
		{[]int64{-1, 3, 240, 320}, []int64{4, 1, 240, 320}, false},
		{[]int64{1, 3, 240, 320}, []int64{1, 3, 320, 240}, false},
		{[]int64{1, 3}, []int64{1, 3, 1}, false},
		{nil, nil, true},
	} {
		if got := shapeFits(tc.model, tc.want); got != tc.fits {
			t.Errorf("shapeFits(%v, %v) = %v, want %v", tc.model, tc.want, got, tc.fits)
		}
	}
}

func TestSessionRunAllocatesNothing(t *testing.T) {
	rt := runtimeFor(t)
	s, err := rt.NewSession(model("fr_landmark.onnx"),
		[]Tensor{{Name: "input", Shape: []int64{1, 1, 64, 64}}},
		[]Tensor{{Name: "output", Shape: []int64{1, 136}}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 3; i++ { // warm-up
		if err := s.Run(); err != nil {
			t.Fatal(err)
		}
	}
	var runErr error
	allocs := testing.AllocsPerRun(20, func() {
		if err := s.Run(); err != nil {
			runErr = err
		}
		_ = s.Output(0)
		_ = s.Input(0)
	})
	if runErr != nil {
		t.Fatal(runErr)
	}
	if allocs != 0 {
		t.Errorf("Session.Run allocates %v times per call in Go, want 0", allocs)
	}
}
