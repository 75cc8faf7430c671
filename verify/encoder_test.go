package verify

import (
	"strings"
	"testing"

	"github.com/facegate/facegate/internal/onnx"
)

func TestEncoderSpecFor(t *testing.T) {
	out := func(d int64) []onnx.Tensor { return []onnx.Tensor{{Name: "emb", Shape: []int64{-1, d}}} }
	for _, tc := range []struct {
		name    string
		in      []int64
		outs    []onnx.Tensor
		want    EncoderSpec
		wantErr string
	}{
		{"bundled NCHW", []int64{1, 3, 112, 112}, out(512), EncoderSpec{Input: "x", Output: "emb", Size: 112, Dim: 512}, ""},
		{"tf2onnx NHWC, free batch", []int64{-1, 160, 160, 3}, out(128), EncoderSpec{Input: "x", Output: "emb", Size: 160, NHWC: true, Dim: 128}, ""},
		{"free sides default to 112", []int64{-1, 3, -1, -1}, out(512), EncoderSpec{Input: "x", Output: "emb", Size: 112, Dim: 512}, ""},
		{"one free side follows the other", []int64{1, -1, 96, 3}, out(256), EncoderSpec{Input: "x", Output: "emb", Size: 96, NHWC: true, Dim: 256}, ""},
		{"grey input", []int64{1, 1, 64, 64}, out(136), EncoderSpec{}, "no 3-channel axis"},
		{"not square", []int64{1, 3, 112, 96}, out(512), EncoderSpec{}, "square"},
		{"not an image", []int64{1, 512}, out(512), EncoderSpec{}, "want an image"},
		{"free embedding length", []int64{1, 3, 112, 112}, out(-1), EncoderSpec{}, "fixed D"},
		{"two outputs", []int64{1, 3, 112, 112}, append(out(512), out(2)...), EncoderSpec{}, "one of each"},
	} {
		got, err := encoderSpecFor([]onnx.Tensor{{Name: "x", Shape: tc.in}}, tc.outs)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: err = %v, want one saying %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: spec = %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

func TestEncoderSpecFill(t *testing.T) {
	// A 2×2 BGR crop: pixel i has B = 10i+1, G = 10i+2, R = 10i+3.
	px := []uint8{1, 2, 3, 11, 12, 13, 21, 22, 23, 31, 32, 33}
	for _, tc := range []struct {
		name string
		spec EncoderSpec
		want []float32
	}{
		{"NCHW BGR", EncoderSpec{Size: 2, Mean: 0, Std: 1},
			[]float32{1, 11, 21, 31, 2, 12, 22, 32, 3, 13, 23, 33}},
		{"NCHW RGB", EncoderSpec{Size: 2, Mean: 0, Std: 1, RGB: true},
			[]float32{3, 13, 23, 33, 2, 12, 22, 32, 1, 11, 21, 31}},
		{"NHWC RGB", EncoderSpec{Size: 2, Mean: 0, Std: 1, RGB: true, NHWC: true},
			[]float32{3, 2, 1, 13, 12, 11, 23, 22, 21, 33, 32, 31}},
		{"NHWC BGR scaled", EncoderSpec{Size: 2, Mean: 1, Std: 2, NHWC: true},
			[]float32{0, 0.5, 1, 5, 5.5, 6, 10, 10.5, 11, 15, 15.5, 16}},
	} {
		got := make([]float32, 12)
		tc.spec.fill(got, px)
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: tensor %v, want %v", tc.name, got, tc.want)
				break
			}
		}
	}
}
