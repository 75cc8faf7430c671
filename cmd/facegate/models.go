package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/facegate/facegate/internal/models"
	"github.com/facegate/facegate/internal/onnx"
	"github.com/facegate/facegate/verify"
)

// modelFlags are the flags every command that runs the models shares; each
// defaults to an environment variable, then to where make setup put things.
type modelFlags struct {
	dir     string
	ortLib  string
	threads int
	// A user's own encoder instead of the bundled one.
	encoder       string
	encoderMean   float64
	encoderStd    float64
	encoderColour string
}

func (f *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.dir, "models", os.Getenv("FACEGATE_MODELS"), "folder holding the .onnx models (env FACEGATE_MODELS; default: where make setup put them)")
	fs.StringVar(&f.ortLib, "ort-lib", os.Getenv("FACEGATE_ORT_LIB"), "path of libonnxruntime.so.1 (env FACEGATE_ORT_LIB; default: where make setup put it)")
	threads, _ := strconv.Atoi(os.Getenv("FACEGATE_THREADS"))
	fs.IntVar(&f.threads, "threads", threads, "threads per model, 0 for all cores (env FACEGATE_THREADS)")
	def := defaultEncoderFlags()
	fs.StringVar(&f.encoder, "encoder", os.Getenv("FACEGATE_ENCODER"), "your own ONNX face encoder instead of the bundled one, e.g. converted from TensorFlow with tf2onnx (env FACEGATE_ENCODER)")
	fs.Float64Var(&f.encoderMean, "encoder-mean", def.encoderMean, "with --encoder: pixel value v is fed as (v - mean) / std")
	fs.Float64Var(&f.encoderStd, "encoder-std", def.encoderStd, "with --encoder: see --encoder-mean")
	fs.StringVar(&f.encoderColour, "encoder-channels", def.encoderColour, "with --encoder: channel order it was trained on, bgr or rgb")
}

// defaultEncoderFlags are the bundled encoder's preprocessing.
func defaultEncoderFlags() modelFlags {
	d := verify.DefaultEncoderSpec()
	return modelFlags{encoderMean: float64(d.Mean), encoderStd: float64(d.Std), encoderColour: "bgr"}
}

// open loads the runtime and one pipeline; see load.
func (f *modelFlags) open() (*onnx.Runtime, *verify.Pipeline, error) {
	rt, files, threads, err := f.load(1)
	if err != nil {
		return nil, nil, err
	}
	p, err := verify.Open(rt, files, threads)
	if err != nil {
		rt.Close()
		return nil, nil, err
	}
	return rt, p, nil
}

// load checks the four model files against the manifest's sha256 and loads
// the runtime. It returns the threads each of workers pipelines should use
// so that together they fill the cores (or what --threads says). The caller
// closes the runtime.
func (f *modelFlags) load(workers int) (*onnx.Runtime, verify.ModelFiles, int, error) {
	if f.threads < 0 {
		return nil, verify.ModelFiles{}, 0, usagef("--threads %d: must be 0 or more", f.threads)
	}
	dir, lib := f.dir, f.ortLib
	if dir == "" || lib == "" {
		home, err := models.DefaultDir()
		if err != nil {
			return nil, verify.ModelFiles{}, 0, err
		}
		if dir == "" {
			dir = filepath.Join(home, "models")
		}
		if lib == "" {
			lib = filepath.Join(home, "libonnxruntime.so.1")
		}
	}
	files, err := modelFiles(models.Default(), dir, f.encoder == "")
	if err != nil {
		return nil, files, 0, err
	}
	rt, err := onnx.Load(lib)
	if err != nil {
		return nil, files, 0, err
	}
	if f.encoder != "" {
		if err := f.customEncoder(rt, &files); err != nil {
			rt.Close()
			return nil, files, 0, err
		}
	}
	threads := f.threads
	if threads == 0 {
		threads = max(1, runtime.NumCPU()/max(1, workers))
	}
	return rt, files, threads, nil
}

// customEncoder points files at the user's own encoder: its input layout and
// size come from the model, its scaling and channel order from the flags,
// and its identity is the file's sha256 (with the preprocessing, when that is
// not the default, since it changes the embeddings too).
func (f *modelFlags) customEncoder(rt *onnx.Runtime, files *verify.ModelFiles) error {
	pre := verify.EncoderSpec{Mean: float32(f.encoderMean), Std: float32(f.encoderStd)}
	switch f.encoderColour {
	case "bgr":
	case "rgb":
		pre.RGB = true
	default:
		return usagef("--encoder-channels %q: want bgr or rgb", f.encoderColour)
	}
	if pre.Std == 0 {
		return usagef("--encoder-std 0: would divide by zero")
	}
	if _, err := os.Stat(f.encoder); err != nil {
		return fmt.Errorf("--encoder %s: no such file", f.encoder)
	}
	spec, err := verify.InspectEncoder(rt, f.encoder, pre)
	if err != nil {
		return err
	}
	id, err := f.encoderID()
	if err != nil {
		return err
	}
	files.Encoder, files.EncoderSpec, files.EncoderID = f.encoder, spec, id
	return nil
}

// encoderID is the identity of the encoder the flags select, without
// loading it: the bundled model's manifest sha256, or the sha256 of the
// user's file, with its preprocessing when that is not the default (it
// changes the embeddings too).
func (f *modelFlags) encoderID() (string, error) {
	if f.encoder == "" {
		m, ok := models.Default().Model("fr_feature.onnx")
		if !ok {
			return "", fmt.Errorf("model fr_feature.onnx: not in the manifest")
		}
		return m.SHA256, nil
	}
	sum, err := models.FileSHA256(f.encoder)
	if err != nil {
		return "", fmt.Errorf("--encoder %s: %w", f.encoder, unwrapPath(err))
	}
	def := verify.DefaultEncoderSpec()
	if float32(f.encoderMean) != def.Mean || float32(f.encoderStd) != def.Std || f.encoderColour != "bgr" {
		return fmt.Sprintf("%s/mean=%g/std=%g/%s", sum, f.encoderMean, f.encoderStd, f.encoderColour), nil
	}
	return sum, nil
}

// modelFiles checks the model files in dir against the manifest; the
// encoder only when the bundled one is used.
func modelFiles(m models.Manifest, dir string, bundledEncoder bool) (verify.ModelFiles, error) {
	var files verify.ModelFiles
	for _, x := range []struct {
		name string
		path *string
	}{
		{"fr_detect.onnx", &files.Detector},
		{"fr_landmark.onnx", &files.Landmarks},
		{"fr_liveness.onnx", &files.Liveness},
		{"fr_feature.onnx", &files.Encoder},
	} {
		if x.name == "fr_feature.onnx" && !bundledEncoder {
			continue
		}
		f, ok := m.Model(x.name)
		if !ok {
			return files, fmt.Errorf("model %s: not in the manifest", x.name)
		}
		p := filepath.Join(dir, x.name)
		if err := models.VerifyFile(f, p); err != nil {
			return files, err
		}
		*x.path = p
		if x.name == "fr_feature.onnx" {
			files.EncoderID = f.SHA256
		}
	}
	return files, nil
}
