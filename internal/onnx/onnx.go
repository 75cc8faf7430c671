// Package onnx starts ONNX Runtime and runs models with fixed-shape float32
// tensors that are allocated once, so a session can run on every frame
// without allocating.
package onnx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

// Runtime is the loaded ONNX Runtime library. The library keeps one
// environment per process, so only one Runtime may be open at a time.
type Runtime struct {
	lib string
}

// Load opens the shared library at lib and starts the ONNX Runtime environment.
func Load(lib string) (*Runtime, error) {
	st, err := os.Stat(lib)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("onnx runtime library %s: no such file (run make setup, or set --ort-lib)", lib)
	case err != nil:
		return nil, fmt.Errorf("onnx runtime library: %w", err)
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("onnx runtime library %s: not a regular file", lib)
	}
	if ort.IsInitialized() {
		return nil, errors.New("onnx runtime: already loaded in this process")
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return nil, fmt.Errorf("onnx runtime library %s: %w", lib, err)
	}
	return &Runtime{lib: lib}, nil
}

// Close stops the environment. Every Session must be closed first.
func (r *Runtime) Close() error {
	if err := ort.DestroyEnvironment(); err != nil {
		return fmt.Errorf("onnx runtime: %w", err)
	}
	return nil
}

// Version reports the library's version string.
func (r *Runtime) Version() string { return ort.GetVersion() }

// Tensor names one input or output of a model and its fixed shape.
type Tensor struct {
	Name  string
	Shape []int64
}

// Session runs one model on tensors it owns. It is not safe for concurrent
// use: each goroutine that runs a model needs its own Session.
type Session struct {
	path    string
	sess    *ort.AdvancedSession
	inputs  []*ort.Tensor[float32]
	outputs []*ort.Tensor[float32]
	last    time.Duration
}

// NewSession loads the model at path and checks that its inputs and outputs
// have the names and shapes given, so a wrong or corrupt model file is
// refused at start rather than misread at the first frame. threads bounds
// the intra-op thread pool; 0 lets the runtime choose.
func (r *Runtime) NewSession(path string, inputs, outputs []Tensor, threads int) (*Session, error) {
	if err := checkModel(path, inputs, outputs); err != nil {
		return nil, err
	}
	s := &Session{path: path}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	var inVals, outVals []ort.Value
	var inNames, outNames []string
	for _, t := range inputs {
		v, err := ort.NewEmptyTensor[float32](ort.NewShape(t.Shape...))
		if err != nil {
			return nil, fmt.Errorf("model %s: input %s: %w", path, t.Name, err)
		}
		s.inputs = append(s.inputs, v)
		inVals = append(inVals, v)
		inNames = append(inNames, t.Name)
	}
	for _, t := range outputs {
		v, err := ort.NewEmptyTensor[float32](ort.NewShape(t.Shape...))
		if err != nil {
			return nil, fmt.Errorf("model %s: output %s: %w", path, t.Name, err)
		}
		s.outputs = append(s.outputs, v)
		outVals = append(outVals, v)
		outNames = append(outNames, t.Name)
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("model %s: session options: %w", path, err)
	}
	defer opts.Destroy()
	if threads > 0 {
		if err := opts.SetIntraOpNumThreads(threads); err != nil {
			return nil, fmt.Errorf("model %s: threads: %w", path, err)
		}
		if err := opts.SetInterOpNumThreads(1); err != nil {
			return nil, fmt.Errorf("model %s: threads: %w", path, err)
		}
	}
	// Spinning workers would take a door controller's spare core away from
	// the camera decoder between frames.
	if err := opts.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	s.sess, err = ort.NewAdvancedSession(path, inNames, outNames, inVals, outVals, opts)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	ok = true
	return s, nil
}

// Describe reads a model's declared inputs and outputs; a dimension the
// model leaves free is -1. Only float32 tensors are described: a model with
// another input or output type is refused.
func (r *Runtime) Describe(path string) (inputs, outputs []Tensor, err error) {
	ins, outs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return nil, nil, fmt.Errorf("model %s: cannot be read as ONNX (corrupt or wrong file): %w", path, err)
	}
	conv := func(kind string, infos []ort.InputOutputInfo) ([]Tensor, error) {
		var ts []Tensor
		for _, i := range infos {
			if i.DataType != ort.TensorElementDataTypeFloat {
				return nil, fmt.Errorf("model %s: %s %q is %v, want float32", path, kind, i.Name, i.DataType)
			}
			ts = append(ts, Tensor{Name: i.Name, Shape: append([]int64(nil), i.Dimensions...)})
		}
		return ts, nil
	}
	if inputs, err = conv("input", ins); err != nil {
		return nil, nil, err
	}
	if outputs, err = conv("output", outs); err != nil {
		return nil, nil, err
	}
	return inputs, outputs, nil
}

// checkModel compares the model's declared inputs and outputs with the ones
// the caller will feed. A dimension the model leaves free (-1) matches any.
func checkModel(path string, inputs, outputs []Tensor) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("model %s: no such file", path)
	}
	ins, outs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return fmt.Errorf("model %s: cannot be read as ONNX (corrupt or wrong file): %w", path, err)
	}
	if err := matchTensors(path, "input", ins, inputs); err != nil {
		return err
	}
	return matchTensors(path, "output", outs, outputs)
}

func matchTensors(path, kind string, have []ort.InputOutputInfo, want []Tensor) error {
	for _, w := range want {
		var found *ort.InputOutputInfo
		for i := range have {
			if have[i].Name == w.Name {
				found = &have[i]
			}
		}
		if found == nil {
			return fmt.Errorf("model %s: no %s named %q (wrong model file?)", path, kind, w.Name)
		}
		if found.DataType != ort.TensorElementDataTypeFloat {
			return fmt.Errorf("model %s: %s %q is %v, want float32 (wrong model file?)", path, kind, w.Name, found.DataType)
		}
		if !shapeFits(found.Dimensions, w.Shape) {
			return fmt.Errorf("model %s: %s %q has shape %v, want %v (wrong model file?)", path, kind, w.Name, found.Dimensions, w.Shape)
		}
	}
	return nil
}

func shapeFits(model ort.Shape, want []int64) bool {
	if len(model) != len(want) {
		return false
	}
	for i, d := range model {
		if d >= 0 && d != want[i] {
			return false
		}
	}
	return true
}

// Input returns the data of input i; write the model's input here before Run.
func (s *Session) Input(i int) []float32 { return s.inputs[i].GetData() }

// Output returns the data of output i, valid after Run until the next Run.
func (s *Session) Output(i int) []float32 { return s.outputs[i].GetData() }

// Run runs the model on the current inputs.
func (s *Session) Run() error {
	start := time.Now()
	err := s.sess.Run()
	s.last = time.Since(start)
	if err != nil {
		return fmt.Errorf("model %s: %w", s.path, err)
	}
	return nil
}

// LastRun is how long the last Run spent inside the runtime: the model's pure
// inference time, without pre- or post-processing.
func (s *Session) LastRun() time.Duration { return s.last }

// Close frees the session and its tensors. It is safe to call twice.
func (s *Session) Close() error {
	var errs []error
	if s.sess != nil {
		errs = append(errs, s.sess.Destroy())
		s.sess = nil
	}
	for _, t := range s.inputs {
		errs = append(errs, t.Destroy())
	}
	for _, t := range s.outputs {
		errs = append(errs, t.Destroy())
	}
	s.inputs, s.outputs = nil, nil
	return errors.Join(errs...)
}
