package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/facegate/facegate/internal/models"
)

// These tests build the real binary once and run it as a user would.
var (
	binPath   string // the facegate binary built by TestMain
	libDir    string // lib/facegate with models/ and libonnxruntime.so.1
	lfwDir    string // ../shared/data/lfw-view1/images
	sharedDir string // ../shared/data
	cliEnv    []string
	twoFaces  string // a 500×250 PNG with Aaron_Eckhart_0001 left and Zico_0001 right
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var err error
	if libDir, err = models.FindRepoDir(); err != nil {
		fmt.Fprintln(os.Stderr, "cli tests:", err)
		return 1
	}
	data, err := sharedData()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cli tests:", err)
		return 1
	}
	lfwDir = filepath.Join(data, "lfw-view1", "images")
	sharedDir = data
	tmp, err := os.MkdirTemp("", "facegate-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cli tests:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	binPath = filepath.Join(tmp, "facegate")
	// Under go test -race the binary is built with the race detector too,
	// so the daemon's goroutines are checked in the end-to-end tests; a
	// race makes it exit 66.
	build := []string{"build", "-o", binPath}
	if raceEnabled {
		build = append(build, "-race")
	}
	if out, err := exec.Command("go", append(build, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "cli tests: go build: %v\n%s", err, out)
		return 1
	}
	twoFaces = filepath.Join(tmp, "two_faces.png")
	if err := writeTwoFaces(twoFaces); err != nil {
		fmt.Fprintln(os.Stderr, "cli tests:", err)
		return 1
	}
	cliEnv = append(os.Environ(),
		"GORACE=halt_on_error=1 exitcode=66",
		"FACEGATE_MODELS="+filepath.Join(libDir, "models"),
		"FACEGATE_ORT_LIB="+filepath.Join(libDir, "libonnxruntime.so.1"))
	return m.Run()
}

// sharedData is ../shared/data next to the repository root (the folder with
// go.mod above the working directory).
func sharedData() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			data := filepath.Join(dir, "..", "shared", "data")
			if _, err := os.Stat(data); err != nil {
				return "", fmt.Errorf("test data: %v", err)
			}
			return data, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod in %s or any parent directory", wd)
		}
		dir = parent
	}
}

func lfw(name string) string {
	person := name[:strings.LastIndex(name, "_")]
	return filepath.Join(lfwDir, person, name+".jpg")
}

func decodeJPEG(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return jpeg.Decode(f)
}

func writePNG(path string, img image.Image) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func writeTwoFaces(path string) error {
	canvas := image.NewRGBA(image.Rect(0, 0, 500, 250))
	for i, name := range []string{"Aaron_Eckhart_0001", "Zico_0001"} {
		img, err := decodeJPEG(lfw(name))
		if err != nil {
			return err
		}
		r := image.Rect(250*i, 0, 250*i+250, 250)
		draw.Draw(canvas, r, img, img.Bounds().Min, draw.Src)
	}
	return writePNG(path, canvas)
}

// forgedPNG is an 8×8 PNG whose IHDR (with a valid CRC) claims w×h pixels.
func forgedPNG(w, h uint32) ([]byte, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 8, 8))); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	const ihdr = 8 // the IHDR chunk follows the 8-byte signature
	if string(b[ihdr+4:ihdr+8]) != "IHDR" {
		return nil, errors.New("png.Encode wrote no IHDR first")
	}
	binary.BigEndian.PutUint32(b[ihdr+8:], w)
	binary.BigEndian.PutUint32(b[ihdr+12:], h)
	binary.BigEndian.PutUint32(b[ihdr+8+13:], crc32.ChecksumIEEE(b[ihdr+4:ihdr+8+13]))
	return b, nil
}

type result struct {
	code           int
	stdout, stderr string
}

// facegate runs the binary with the test environment.
func facegate(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = cliEnv
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("facegate %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("facegate %s: timed out", strings.Join(args, " "))
	}
	return result{code, stdout.String(), stderr.String()}
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// copyModels copies the installed models to a fresh folder and returns it.
func copyModels(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "models")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"fr_detect.onnx", "fr_landmark.onnx", "fr_liveness.onnx", "fr_feature.onnx"} {
		b, err := os.ReadFile(filepath.Join(libDir, "models", name))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dst, name), b)
	}
	return dst
}

// lines splits output into its lines, without the final newline.
func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestBadInput(t *testing.T) {
	aaron := lfw("Aaron_Eckhart_0001")
	jpg, err := os.ReadFile(aaron)
	if err != nil {
		t.Fatal(err)
	}
	huge, err := forgedPNG(30000, 30000)
	if err != nil {
		t.Fatal(err)
	}
	grey := image.NewRGBA(image.Rect(0, 0, 200, 200))
	draw.Draw(grey, grey.Bounds(), image.NewUniform(color.Gray{Y: 128}), image.Point{}, draw.Src)

	cases := []struct {
		name string
		// args builds the command line in dir, a fresh temporary folder.
		args func(t *testing.T, dir string) []string
		code int
		want []string // each must appear in the one stderr line; "$DIR" is dir
	}{
		{"missing image", func(t *testing.T, dir string) []string {
			return []string{"embed", filepath.Join(dir, "nobody.jpg")}
		}, 1, []string{"$DIR/nobody.jpg", "no such file"}},
		{"text file", func(t *testing.T, dir string) []string {
			return []string{"embed", writeFile(t, filepath.Join(dir, "notes.jpg"), []byte("hello\n"))}
		}, 1, []string{"$DIR/notes.jpg", "not an image"}},
		{"truncated JPEG", func(t *testing.T, dir string) []string {
			return []string{"embed", writeFile(t, filepath.Join(dir, "cut.jpg"), jpg[:len(jpg)*6/10])}
		}, 1, []string{"$DIR/cut.jpg", "truncated"}},
		{"forged PNG over the pixel limit", func(t *testing.T, dir string) []string {
			return []string{"embed", writeFile(t, filepath.Join(dir, "huge.png"), huge)}
		}, 1, []string{"$DIR/huge.png", "30000x30000", "megapixels", "limit of 40.0 megapixels"}},
		{"--max-pixels 1000 on an LFW photo", func(t *testing.T, dir string) []string {
			return []string{"embed", "--max-pixels", "1000", aaron}
		}, 1, []string{aaron, "250x250", "megapixels", "limit of 0.001 megapixels"}},
		{"no face", func(t *testing.T, dir string) []string {
			p := filepath.Join(dir, "grey.png")
			if err := writePNG(p, grey); err != nil {
				t.Fatal(err)
			}
			return []string{"embed", p}
		}, 1, []string{"$DIR/grey.png", "no face"}},
		{"one bad image among good ones", func(t *testing.T, dir string) []string {
			return []string{"embed", aaron, writeFile(t, filepath.Join(dir, "notes.png"), []byte("hello\n")), lfw("Zico_0001")}
		}, 1, []string{"$DIR/notes.png", "not an image"}},
		{"compare: no face", func(t *testing.T, dir string) []string {
			p := filepath.Join(dir, "grey.png")
			if err := writePNG(p, grey); err != nil {
				t.Fatal(err)
			}
			return []string{"compare", aaron, p}
		}, 1, []string{"$DIR/grey.png", "no face"}},
		{"compare: missing image", func(t *testing.T, dir string) []string {
			return []string{"compare", filepath.Join(dir, "nobody.jpg"), aaron}
		}, 1, []string{"$DIR/nobody.jpg", "no such file"}},
		{"corrupt model", func(t *testing.T, dir string) []string {
			m := copyModels(t)
			f, err := os.OpenFile(filepath.Join(m, "fr_detect.onnx"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte{0}); err != nil {
				t.Fatal(err)
			}
			f.Close()
			return []string{"embed", "--models", m, aaron}
		}, 1, []string{"fr_detect.onnx", "sha256"}},
		{"wrong model file", func(t *testing.T, dir string) []string {
			m := copyModels(t)
			b, err := os.ReadFile(filepath.Join(m, "fr_landmark.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(m, "fr_detect.onnx"), b)
			return []string{"embed", "--models", m, aaron}
		}, 1, []string{"fr_detect.onnx", "sha256"}},
		{"missing model", func(t *testing.T, dir string) []string {
			m := copyModels(t)
			if err := os.Remove(filepath.Join(m, "fr_feature.onnx")); err != nil {
				t.Fatal(err)
			}
			return []string{"compare", "--models", m, aaron, aaron}
		}, 1, []string{"fr_feature.onnx", "no such file"}},
		{"missing runtime library", func(t *testing.T, dir string) []string {
			return []string{"embed", "--ort-lib", "/nonexistent/libonnxruntime.so.1", aaron}
		}, 1, []string{"/nonexistent/libonnxruntime.so.1", "no such file"}},
		{"unknown subcommand", func(t *testing.T, dir string) []string {
			return []string{"frobnicate", aaron}
		}, 2, []string{`"frobnicate"`, "unknown command"}},
		{"unknown flag", func(t *testing.T, dir string) []string {
			return []string{"embed", "--frobnicate", aaron}
		}, 2, []string{"-frobnicate", "not defined"}},
		{"embed without an image", func(t *testing.T, dir string) []string {
			return []string{"embed"}
		}, 2, []string{"no image"}},
		{"compare with one image", func(t *testing.T, dir string) []string {
			return []string{"compare", aaron}
		}, 2, []string{"two images", "got 1"}},
		{"compare --threshold 3", func(t *testing.T, dir string) []string {
			return []string{"compare", "--threshold", "3", aaron, aaron}
		}, 2, []string{"--threshold"}},
		{"eval without --pairs", func(t *testing.T, dir string) []string {
			return []string{"eval", "--images", lfwDir}
		}, 2, []string{"--pairs"}},
		{"eval with an image not in --images", func(t *testing.T, dir string) []string {
			p := writeFile(t, filepath.Join(dir, "pairs.txt"),
				[]byte("1\nNo_Such_Person\t1\t2\nAaron_Eckhart\t1\tZico\t1\n"))
			return []string{"eval", "--pairs", p, "--images", lfwDir}
		}, 1, []string{"$DIR/pairs.txt", "No_Such_Person/No_Such_Person_0001.jpg", lfwDir}},
		{"eval --min-accuracy 2", func(t *testing.T, dir string) []string {
			p := writeFile(t, filepath.Join(dir, "pairs.txt"),
				[]byte("1\nZico\t1\t2\nAaron_Eckhart\t1\tZico\t1\n"))
			return []string{"eval", "--pairs", p, "--images", lfwDir, "--min-accuracy", "2"}
		}, 2, []string{"--min-accuracy 2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			args := tc.args(t, dir)
			r := facegate(t, args...)
			cmdline := "facegate " + strings.Join(args, " ")
			if r.code != tc.code {
				t.Errorf("%s: exit status %d, want %d", cmdline, r.code, tc.code)
			}
			ls := lines(r.stderr)
			if len(ls) != 1 || strings.TrimSpace(ls[0]) == "" {
				t.Fatalf("%s: stderr is %d lines, want exactly one non-empty line:\n%s", cmdline, len(ls), r.stderr)
			}
			for _, w := range tc.want {
				w = strings.ReplaceAll(w, "$DIR", dir)
				if !strings.Contains(ls[0], w) {
					t.Errorf("%s: stderr %q does not mention %q", cmdline, ls[0], w)
				}
			}
		})
	}
}

// embedLine is one line of embed --json.
type embedLine struct {
	File  string            `json:"file"`
	Faces []json.RawMessage `json:"faces"`
	Error string            `json:"error"`
}

type embedFace struct {
	Box       []float64   `json:"box"`
	Score     float64     `json:"score"`
	Points    [][]float64 `json:"points"`
	Embedding []float64   `json:"embedding"`
	Liveness  struct {
		Score     *float64 `json:"score"`
		Threshold *float64 `json:"threshold"`
		Live      *bool    `json:"live"`
	} `json:"liveness"`
}

func TestEmbedJSONReportsEveryFace(t *testing.T) {
	t.Parallel()
	r := facegate(t, "embed", "--json", twoFaces)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit status %d, stderr %q; want 0 and nothing", r.code, r.stderr)
	}
	out := lines(r.stdout)
	if len(out) != 1 {
		t.Fatalf("stdout has %d lines, want one JSON line:\n%s", len(out), r.stdout)
	}
	var line embedLine
	if err := json.Unmarshal([]byte(out[0]), &line); err != nil {
		t.Fatal(err)
	}
	if line.File != twoFaces || line.Error != "" {
		t.Errorf("file %q error %q, want %q and no error", line.File, line.Error, twoFaces)
	}
	if len(line.Faces) != 2 {
		t.Fatalf("%d faces, want 2", len(line.Faces))
	}
	prevArea := math.Inf(1)
	var centres []float64
	for i, raw := range line.Faces {
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(raw, &keys); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"box", "score", "points", "quality", "liveness", "embedding"} {
			if _, ok := keys[k]; !ok {
				t.Errorf("face %d has no %q", i, k)
			}
		}
		var f embedFace
		if err := json.Unmarshal(raw, &f); err != nil {
			t.Fatal(err)
		}
		if len(f.Box) != 4 {
			t.Fatalf("face %d: box %v, want 4 numbers", i, f.Box)
		}
		x1, y1, x2, y2 := f.Box[0], f.Box[1], f.Box[2], f.Box[3]
		if !(x1 < x2 && y1 < y2 && x1 >= -10 && y1 >= -10 && x2 <= 510 && y2 <= 260) {
			t.Errorf("face %d: box %v is not a box inside the 500x250 image", i, f.Box)
		}
		area := (x2 - x1) * (y2 - y1)
		if area > prevArea {
			t.Errorf("face %d: box area %.0f after %.0f: not largest first", i, area, prevArea)
		}
		prevArea = area
		centres = append(centres, (x1+x2)/2)
		if f.Score <= 0 || f.Score > 1 {
			t.Errorf("face %d: score %v", i, f.Score)
		}
		if len(f.Points) != 5 {
			t.Errorf("face %d: %d points, want 5", i, len(f.Points))
		}
		for k, p := range f.Points {
			if len(p) != 2 || p[0] < x1-5 || p[0] > x2+5 || p[1] < y1-5 || p[1] > y2+5 {
				t.Errorf("face %d: point %d %v is not inside its box %v", i, k, p, f.Box)
			}
		}
		lv := f.Liveness
		if lv.Score == nil || lv.Threshold == nil || lv.Live == nil {
			t.Errorf("face %d: liveness %s lacks score, threshold or live", i, keys["liveness"])
		} else {
			if *lv.Score < 0 || *lv.Score > 1 || *lv.Threshold <= 0 || *lv.Threshold >= 1 {
				t.Errorf("face %d: liveness score %v threshold %v", i, *lv.Score, *lv.Threshold)
			}
			if *lv.Live != (*lv.Score >= *lv.Threshold) {
				t.Errorf("face %d: live=%v with score %v and threshold %v", i, *lv.Live, *lv.Score, *lv.Threshold)
			}
		}
		if len(f.Embedding) != 512 {
			t.Errorf("face %d: embedding has %d floats, want 512", i, len(f.Embedding))
		}
		var sq float64
		for _, v := range f.Embedding {
			sq += v * v
		}
		if math.Abs(math.Sqrt(sq)-1) > 1e-3 {
			t.Errorf("face %d: embedding length %v, want 1", i, math.Sqrt(sq))
		}
	}
	// One face on each half: both were found, not one twice.
	if len(centres) == 2 && (centres[0] < 250) == (centres[1] < 250) {
		t.Errorf("box centres at x=%.0f and x=%.0f, want one in each half", centres[0], centres[1])
	}
}

type compareJSON struct {
	Similarity float64 `json:"similarity"`
	Threshold  float64 `json:"threshold"`
	Same       bool    `json:"same"`
}

// compare runs facegate compare and returns its JSON line and stderr.
func compare(t *testing.T, a, b string) (compareJSON, string) {
	t.Helper()
	r := facegate(t, "compare", a, b)
	if r.code != 0 {
		t.Fatalf("compare %s %s: exit status %d, stderr:\n%s", a, b, r.code, r.stderr)
	}
	out := lines(r.stdout)
	if len(out) == 0 {
		t.Fatalf("compare %s %s: no stdout", a, b)
	}
	last := out[len(out)-1]
	var keys map[string]json.RawMessage
	if err := json.Unmarshal([]byte(last), &keys); err != nil {
		t.Fatalf("last stdout line %q: %v", last, err)
	}
	if len(keys) != 3 || keys["similarity"] == nil || keys["threshold"] == nil || keys["same"] == nil {
		t.Errorf("last stdout line %s, want exactly similarity, threshold and same", last)
	}
	var c compareJSON
	if err := json.Unmarshal([]byte(last), &c); err != nil {
		t.Fatal(err)
	}
	if c.Same != (c.Similarity >= c.Threshold) {
		t.Errorf("same=%v with similarity %v and threshold %v", c.Same, c.Similarity, c.Threshold)
	}
	if c.Similarity < -1 || c.Similarity > 1 {
		t.Errorf("similarity %v outside [-1, 1]", c.Similarity)
	}
	return c, r.stderr
}

func TestCompareSaysWhenThereAreSeveralFaces(t *testing.T) {
	t.Parallel()
	_, stderr := compare(t, twoFaces, lfw("Aaron_Eckhart_0001"))
	want := twoFaces + ": 2 faces, comparing the largest"
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr does not say %q:\n%s", want, stderr)
	}
	if strings.Contains(stderr, "Aaron_Eckhart_0001.jpg:") {
		t.Errorf("stderr speaks of several faces in the one-face photo:\n%s", stderr)
	}
}

func TestCompareVerdicts(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b string
		same bool
	}{
		{"same person", lfw("George_W_Bush_0001"), lfw("George_W_Bush_0002"), true},
		{"different people", lfw("Aaron_Eckhart_0001"), lfw("Zico_0001"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, stderr := compare(t, tc.a, tc.b)
			if c.Same != tc.same {
				t.Errorf("same=%v (similarity %.4f, threshold %.4f), want %v", c.Same, c.Similarity, c.Threshold, tc.same)
			}
			verdict := "different people"
			if tc.same {
				verdict = "same person"
			}
			if ls := lines(stderr); len(ls) != 1 || !strings.Contains(ls[0], verdict) {
				t.Errorf("stderr %q, want one line saying %q", stderr, verdict)
			}
		})
	}
}

func TestEmbedGoodImageIsQuiet(t *testing.T) {
	t.Parallel()
	r := facegate(t, "embed", lfw("Aaron_Eckhart_0001"))
	if r.code != 0 {
		t.Errorf("exit status %d, want 0", r.code)
	}
	if r.stderr != "" {
		t.Errorf("stderr %q, want nothing", r.stderr)
	}
	if !strings.Contains(r.stdout, "Aaron_Eckhart_0001.jpg: 1 face(s)") {
		t.Errorf("stdout %q does not report one face", r.stdout)
	}
}

func TestUsageAndHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage:"},
		{[]string{"-h"}, 0, "Usage:"},
		{[]string{"embed", "-h"}, 0, "Usage: facegate embed"},
		{[]string{"compare", "--help"}, 0, "Usage: facegate compare"},
	} {
		t.Run(strings.Join(append([]string{"facegate"}, tc.args...), " "), func(t *testing.T) {
			t.Parallel()
			r := facegate(t, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit status %d, stderr %q; want %d and %q", r.code, r.stderr, tc.code, tc.want)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing (help goes to stderr)", r.stdout)
			}
		})
	}
}
