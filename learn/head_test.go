package learn

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/facegate/facegate/verify"
)

// trainedHeads trains one small head of each method on synthetic faces.
func trainedHeads(t *testing.T) ([]Head, Set) {
	t.Helper()
	rng := rand.New(rand.NewPCG(61, 62))
	train := clusteredSet(rng, 20, 4, 16, 0.5, 4, 1, "t")
	val := clusteredSet(rng, 10, 4, 16, 0.5, 4, 1, "v")
	heads := []Head{NewCosine(16, 0.3)}
	for _, cfg := range []Config{{Method: Triplet}, {Method: Triplet, Dim: 5}, {Method: Logistic}, {Method: Chi2}} {
		cfg.Epochs, cfg.Seed = 3, 1
		res, err := Train(context.Background(), cfg, train, val, nil)
		if err != nil {
			t.Fatal(err)
		}
		heads = append(heads, res.Head)
	}
	return heads, val
}

func TestHeadRoundTrip(t *testing.T) {
	heads, val := trainedHeads(t)
	for _, h := range heads {
		blob, err := h.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(blob)
		if err != nil {
			t.Fatalf("%s: %v", h.Method(), err)
		}
		if got.Method() != h.Method() || got.Dim() != h.Dim() || got.Threshold() != h.Threshold() {
			t.Errorf("%s: decoded %s dim %d threshold %v, want dim %d threshold %v", h.Method(), got.Method(), got.Dim(), got.Threshold(), h.Dim(), h.Threshold())
		}
		for i := range 10 {
			a, b := val.Vectors[i], val.Vectors[len(val.Vectors)-1-i]
			if s, want := got.Score(a, b), h.Score(a, b); s != want {
				t.Errorf("%s: decoded head scores %v, the original %v", h.Method(), s, want)
			}
		}
		// Symmetric, and the same face scores highest with itself.
		a, b := val.Vectors[0], val.Vectors[5]
		if h.Score(a, b) != h.Score(b, a) {
			t.Errorf("%s: Score is not symmetric", h.Method())
		}
		if h.Score(a, a) < h.Score(a, b) {
			t.Errorf("%s: a face is less like itself than like another", h.Method())
		}
		moved := h.WithThreshold(0.75)
		if moved.Threshold() != 0.75 || h.Threshold() == 0.75 {
			t.Errorf("%s: WithThreshold changed the original or not the copy", h.Method())
		}
		u, v := h.Prepare(nil, a), h.Prepare(nil, b)
		var n float64
		for _, x := range u {
			n += float64(x) * float64(x)
		}
		if len(u) != h.PreparedDim() || math.Abs(n-1) > 1e-5 {
			t.Errorf("%s: prepared vector of %d elements (want %d), norm² %v", h.Method(), len(u), h.PreparedDim(), n)
		}
		if got, want := h.ScorePrepared(u, v), h.Score(a, b); got != want {
			t.Errorf("%s: ScorePrepared of the prepared pair %v, Score %v", h.Method(), got, want)
		}
		if h.ByCosine() && h.ScorePrepared(u, v) != verify.Dot(u, v) {
			t.Errorf("%s: ByCosine but ScorePrepared is not the dot product", h.Method())
		}
		buf := make([]float32, h.PreparedDim())
		if allocs := testing.AllocsPerRun(20, func() {
			h.ScorePrepared(h.Prepare(buf, a), v)
		}); allocs != 0 {
			t.Errorf("%s: preparing into a buffer and scoring allocates %v times", h.Method(), allocs)
		}
	}
}

func TestDecodeRefusesCorruptBlobs(t *testing.T) {
	heads, _ := trainedHeads(t)
	for _, h := range heads {
		blob, _ := h.MarshalBinary()
		for name, bad := range map[string][]byte{
			"empty":     nil,
			"truncated": blob[:len(blob)-5],
			"flipped":   flip(blob, len(blob)/2),
			"trailing":  append(append([]byte(nil), blob...), 0),
			"not ours":  []byte("SQLite format 3\x00 and more bytes"),
		} {
			if _, err := Decode(bad); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s, %s blob: %v, want ErrCorrupt", h.Method(), name, err)
			}
		}
	}
	// A well-formed blob with a NaN parameter (checksum recomputed).
	e := newEncoder(Triplet, 2, 0.5)
	e.u32(1)
	e.floats([]float32{1, float32(math.NaN())})
	if _, err := Decode(e.finish()); !errors.Is(err, ErrCorrupt) {
		t.Errorf("NaN weight: %v, want ErrCorrupt", err)
	}
	// One declaring a huge dimension.
	e = newEncoder(Cosine, 1<<30, 0.5)
	if _, err := Decode(e.finish()); !errors.Is(err, ErrCorrupt) {
		t.Errorf("dimension 2³⁰: %v, want ErrCorrupt", err)
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x40
	return c
}

func TestCalibrate(t *testing.T) {
	// 1,000 impostor scores 0.000 … 0.999 and 100 genuine 0.900 … 0.999.
	imp := make([]float32, 1000)
	for i := range imp {
		imp[i] = float32(i) / 1000
	}
	gen := make([]float32, 100)
	for i := range gen {
		gen[i] = 0.9 + float32(i)/1000
	}
	c, err := Calibrate(gen, imp, 1e-2)
	if err != nil {
		t.Fatal(err)
	}
	// 10 false accepts allowed: 0.990 … 0.999 pass, 0.989 does not.
	if !(c.Threshold > 0.989 && c.Threshold <= 0.990) || c.FAR != 0.01 || !c.Resolved {
		t.Errorf("FAR 1e-2: threshold %v, FAR %v, resolved %v; want in (0.989, 0.990], 0.01, true", c.Threshold, c.FAR, c.Resolved)
	}
	if want := 90.0 / 100; c.FRR != want {
		t.Errorf("FRR %v, want %v", c.FRR, want)
	}
	// 1e-4 cannot be resolved with 1,000 impostors: nothing gets in.
	c, _ = Calibrate(gen, imp, 1e-4)
	if c.Resolved || c.FAR != 0 || c.Threshold <= 0.999 {
		t.Errorf("FAR 1e-4 on 1,000 impostors: %+v, want unresolved, FAR 0, threshold above 0.999", c)
	}
	// Ties at the threshold are rejected together.
	c, _ = Calibrate([]float32{1}, []float32{0.5, 0.5, 0.5, 0.1}, 0.5)
	if c.FAR != 0 || c.Threshold <= 0.5 {
		t.Errorf("tied impostors: %+v", c)
	}
	for _, far := range []float64{0, 1, -1, math.NaN()} {
		if _, err := Calibrate(gen, imp, far); err == nil {
			t.Errorf("FAR %v accepted", far)
		}
	}
	if _, err := Calibrate(nil, imp, 0.1); err == nil {
		t.Error("calibrated without genuine pairs")
	}
}

func TestPairScores(t *testing.T) {
	rng := rand.New(rand.NewPCG(71, 72))
	s := clusteredSet(rng, 5, 4, 8, 0.5, 0, 0, "p")
	h := NewCosine(8, 0.3)
	g, i, err := PairScores(h, s, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(g) != 5*6 || len(i) != 20*19/2-30 {
		t.Errorf("%d genuine and %d impostor pairs, want 30 and 160", len(g), len(i))
	}
	_, i, _ = PairScores(h, s, 50, 1)
	if len(i) != 50 {
		t.Errorf("%d impostor pairs sampled, want 50", len(i))
	}
	if _, _, err := PairScores(NewCosine(9, 0), s, 0, 1); err == nil {
		t.Error("scored 8-d embeddings with a 9-d head")
	}
}

// BenchmarkHeadSearch is a door's 1:N search with each head, as
// daemon.Roster does it: the face prepared once, then the gallery of
// prepared templates searched by the kernel (cosine, triplet) or by the
// pair head's ScorePrepared in Go (logistic, chi2). 512-d embeddings,
// one template per person.
func BenchmarkHeadSearch(b *testing.B) {
	const dim = 512
	rng := rand.New(rand.NewPCG(5, 6))
	unit := func() []float32 {
		v := make([]float32, dim)
		var ss float64
		for i := range v {
			x := rng.NormFloat64()
			v[i], ss = float32(x), ss+x*x
		}
		for i := range v {
			v[i] /= float32(math.Sqrt(ss))
		}
		return v
	}
	w := make([]float32, dim)
	for i := range w {
		w[i] = -float32(rng.Float64())
	}
	proj := make([]float32, dim*dim)
	for i := range dim {
		proj[i*dim+i] = 1
	}
	heads := []Head{
		NewCosine(dim, 0.5),
		&projectionHead{p: newProjection32(dim, dim, proj), threshold: 0.5},
		&pairHead{method: Logistic, dim: dim, w: w, b: 3, threshold: 0.5},
		&pairHead{method: Chi2, dim: dim, w: w, b: 3, eps: Chi2Epsilon, threshold: 0.5},
	}
	for _, people := range []int{1000, 10000} {
		raw := make([][]float32, people)
		for i := range raw {
			raw[i] = unit()
		}
		q := unit()
		for _, h := range heads {
			enrolled := make([]verify.Enrolled, people)
			for i, v := range raw {
				enrolled[i] = verify.Enrolled{ID: fmt.Sprint(i), Templates: [][]float32{h.Prepare(nil, v)}}
			}
			g, err := verify.NewGallery("m", h.PreparedDim(), enrolled, verify.MeanTemplate, 1)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]float32, h.PreparedDim())
			score := h.ScorePrepared
			b.Run(fmt.Sprintf("%s/people=%d", h.Method(), people), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					e := verify.Embedding{Model: "m", Vector: h.Prepare(buf, q)}
					if h.ByCosine() {
						g.Search(e)
					} else {
						g.SearchFunc(e, score)
					}
				}
			})
		}
	}
}
