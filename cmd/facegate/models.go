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
}

func (f *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.dir, "models", os.Getenv("FACEGATE_MODELS"), "folder holding the .onnx models (env FACEGATE_MODELS; default: where make setup put them)")
	fs.StringVar(&f.ortLib, "ort-lib", os.Getenv("FACEGATE_ORT_LIB"), "path of libonnxruntime.so.1 (env FACEGATE_ORT_LIB; default: where make setup put it)")
	threads, _ := strconv.Atoi(os.Getenv("FACEGATE_THREADS"))
	fs.IntVar(&f.threads, "threads", threads, "threads per model, 0 for all cores (env FACEGATE_THREADS)")
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
	files, err := modelFiles(models.Default(), dir)
	if err != nil {
		return nil, files, 0, err
	}
	rt, err := onnx.Load(lib)
	if err != nil {
		return nil, files, 0, err
	}
	threads := f.threads
	if threads == 0 {
		threads = max(1, runtime.NumCPU()/max(1, workers))
	}
	return rt, files, threads, nil
}

// modelFiles checks the four models in dir against the manifest.
func modelFiles(m models.Manifest, dir string) (verify.ModelFiles, error) {
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
