package learn

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// clusteredSet is synthetic faces: each person is a random direction in
// the first dim−nuisanceDims components; each embedding of them adds
// isotropic noise of the given scale and, in the last nuisanceDims
// components, a large nuisance shared by nobody (the light, the camera) of
// scale nuisance, and is then normalised. Plain cosine suffers from the
// nuisance; a learned projection or weighting can ignore it.
func clusteredSet(rng *rand.Rand, people, per, dim int, noise float64, nuisanceDims int, nuisance float64, prefix string) Set {
	var s Set
	id := dim - nuisanceDims
	for p := range people {
		centre := make([]float64, id)
		var ss float64
		for k := range centre {
			centre[k] = rng.NormFloat64()
			ss += centre[k] * centre[k]
		}
		for k := range centre {
			centre[k] /= math.Sqrt(ss)
		}
		for range per {
			v := make([]float32, dim)
			var n float64
			for k := range v {
				x := noise * rng.NormFloat64() / math.Sqrt(float64(dim))
				if k < id {
					x += centre[k]
				} else {
					x += nuisance * rng.NormFloat64() / math.Sqrt(float64(nuisanceDims))
				}
				v[k] = float32(x)
				n += x * x
			}
			for k := range v {
				v[k] /= float32(math.Sqrt(n))
			}
			s.Add(fmt.Sprintf("%s%03d", prefix, p), v)
		}
	}
	return s
}

func clusteredData(t *testing.T, rng *rand.Rand, people, per, dim int, noise float64, nuisanceDims int, nuisance float64) *data {
	t.Helper()
	d, err := newData(clusteredSet(rng, people, per, dim, noise, nuisanceDims, nuisance, "p"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// separation is the distance between the means of the genuine and the
// impostor scores in units of their pooled standard deviation (d′).
func separation(genuine, impostor []float32) float64 {
	mean := func(xs []float32) (m, v float64) {
		for _, x := range xs {
			m += float64(x)
		}
		m /= float64(len(xs))
		for _, x := range xs {
			v += (float64(x) - m) * (float64(x) - m)
		}
		return m, v / float64(len(xs))
	}
	mg, vg := mean(genuine)
	mi, vi := mean(impostor)
	return (mg - mi) / math.Sqrt((vg+vi)/2)
}

func TestTrainingImprovesSeparation(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const dim = 32
	train := clusteredSet(rng, 80, 6, dim, 0.6, 8, 2, "t")
	val := clusteredSet(rng, 40, 6, dim, 0.6, 8, 2, "v")
	cosG, cosI, err := PairScores(NewCosine(dim, 0), val, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	before := separation(cosG, cosI)
	for _, cfg := range []Config{
		{Method: Triplet, Epochs: 30, LR: 1e-2, Seed: 1},
		{Method: Triplet, Epochs: 30, LR: 1e-2, Seed: 1, Dim: 16, Mining: Hardest},
		{Method: Logistic, Epochs: 30, Seed: 1},
		{Method: Chi2, Epochs: 30, Seed: 1},
	} {
		name := string(cfg.Method)
		if cfg.Dim > 0 {
			name += fmt.Sprintf(" to %d-d, %s", cfg.Dim, cfg.Mining)
		}
		t.Run(name, func(t *testing.T) {
			var first, last Epoch
			res, err := Train(context.Background(), cfg, train, val, func(e Epoch) {
				if e.Epoch == 1 {
					first = e
				}
				last = e
			})
			if err != nil {
				t.Fatal(err)
			}
			g, i, err := PairScores(res.Head, val, 0, 1)
			if err != nil {
				t.Fatal(err)
			}
			after := separation(g, i)
			c, s, v := res.CosineValidation, res.StartValidation, res.Validation
			t.Logf("held-out people: d′ %.2f (cosine) → %.2f; EER %.1f%% (cosine), %.1f%% (untrained start) → %.1f%%; accuracy %.1f%%, %.1f%% → %.1f%% (epoch %d kept); training loss %.4f → %.4f, active/wrong %.0f%% → %.0f%%",
				before, after, 100*c.EER, 100*s.EER, 100*v.EER, 100*c.Accuracy, 100*s.Accuracy, 100*v.Accuracy, res.BestEpoch,
				first.Loss, last.Loss, 100*first.Active, 100*last.Active)
			if after < before+0.5 || v.EER > c.EER*0.7 || v.EER > s.EER*0.7 || res.BestEpoch == 0 {
				t.Errorf("no clear improvement over cosine and the start: d′ %.2f → %.2f, EER %.3f, %.3f → %.3f", before, after, c.EER, s.EER, v.EER)
			}
			if last.Loss >= first.Loss {
				t.Errorf("training loss did not fall: %.4f → %.4f", first.Loss, last.Loss)
			}
		})
	}
}

func TestTrainIsDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	train := clusteredSet(rng, 20, 4, 16, 0.5, 4, 1, "t")
	for _, m := range []Method{Triplet, Chi2} {
		var blobs [2][]byte
		for k := range blobs {
			res, err := Train(context.Background(), Config{Method: m, Epochs: 3, Seed: 7, Workers: k + 1}, train, Set{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if blobs[k], err = res.Head.MarshalBinary(); err != nil {
				t.Fatal(err)
			}
		}
		if string(blobs[0]) != string(blobs[1]) {
			t.Errorf("%s: two runs with one seed (1 and 2 workers) gave different heads", m)
		}
	}
}

func TestTrainRefuses(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	ok := clusteredSet(rng, 5, 3, 8, 0.5, 0, 0, "p")
	one := clusteredSet(rng, 1, 3, 8, 0.5, 0, 0, "q")
	for _, c := range []struct {
		name  string
		cfg   Config
		train Set
	}{
		{"cosine", Config{Method: Cosine}, ok},
		{"unknown method", Config{Method: "svm"}, ok},
		{"dim too large", Config{Method: Triplet, Dim: 9}, ok},
		{"negative alpha", Config{Method: Triplet, Alpha: -1}, ok},
		{"bad mining", Config{Method: Triplet, Mining: "easy"}, ok},
		{"batch too small for triplets", Config{Method: Triplet, Batch: 6, PerPerson: 4}, ok},
		{"one person", Config{Method: Logistic}, one},
		{"no data", Config{Method: Logistic}, Set{}},
		{"NaN lr", Config{Method: Chi2, LR: math.NaN()}, ok},
	} {
		if _, err := Train(context.Background(), c.cfg, c.train, Set{}, nil); err == nil {
			t.Errorf("%s: trained", c.name)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Train(ctx, Config{Method: Triplet}, ok, Set{}, nil); err == nil {
		t.Error("trained with a cancelled context")
	}
}

func TestSplitPeople(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	s := clusteredSet(rng, 50, 3, 8, 0.5, 0, 0, "p")
	train, held := SplitPeople(s, 0.2, 9)
	if len(held.People()) != 10 || len(train.People()) != 40 || held.Len()+train.Len() != s.Len() {
		t.Fatalf("split 50 people at 0.2: %d held out, %d kept", len(held.People()), len(train.People()))
	}
	in := map[string]bool{}
	for _, p := range held.People() {
		in[p] = true
	}
	for _, p := range train.People() {
		if in[p] {
			t.Fatalf("%s is on both sides", p)
		}
	}
	again, _ := SplitPeople(s, 0.2, 9)
	if fmt.Sprint(again.People()) != fmt.Sprint(train.People()) {
		t.Error("same seed, different split")
	}
	if got := s.AtLeast(4).Len(); got != 0 {
		t.Errorf("AtLeast(4) of 3 per person kept %d", got)
	}
}

// BenchmarkTrain10k times training on 10,000 embeddings of 512
// dimensions (1,000 people × 10) with each method's defaults, the size of a
// large site:
//
//	go test -run x -bench Train10k -benchtime 1x ./learn
func BenchmarkTrain10k(b *testing.B) {
	rng := rand.New(rand.NewPCG(51, 52))
	train := clusteredSet(rng, 1000, 10, 512, 0.8, 64, 1, "t")
	val := clusteredSet(rng, 250, 10, 512, 0.8, 64, 1, "v")
	for _, m := range []Method{Triplet, Logistic, Chi2} {
		b.Run(string(m), func(b *testing.B) {
			for b.Loop() {
				start := time.Now()
				res, err := Train(context.Background(), Config{Method: m, Seed: 1}, train, val, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.Logf("%s on %d embeddings (+%d held out), %d epochs: %v; held-out EER %.2f%% (cosine %.2f%%)",
					m, train.Len(), val.Len(), res.Config.Epochs, time.Since(start).Round(time.Millisecond),
					100*res.Validation.EER, 100*res.CosineValidation.EER)
			}
		})
	}
}
