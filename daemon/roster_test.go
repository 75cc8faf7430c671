package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/facegate/facegate/learn"
	"github.com/facegate/facegate/store"
	"github.com/facegate/facegate/verify"
)

const rosterModel = "test-encoder"

// unit is a random unit vector near centre (spread 0 gives a random one).
func unit(r *rand.Rand, centre []float32, spread float64, dim int) []float32 {
	v := make([]float32, dim)
	var ss float64
	for i := range v {
		x := r.NormFloat64() * spread
		if centre != nil {
			x += float64(centre[i])
		} else {
			x = r.NormFloat64()
		}
		v[i] = float32(x)
		ss += x * x
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(ss))
	}
	return v
}

// clusteredPeople makes people with n embeddings each around their own
// random centre.
func clusteredPeople(r *rand.Rand, people, n, dim int, prefix string) learn.Set {
	var s learn.Set
	for p := range people {
		c := unit(r, nil, 0, dim)
		for range n {
			s.Add(fmt.Sprintf("%s%d", prefix, p), unit(r, c, 0.04, dim))
		}
	}
	return s
}

// enrollSet enrolls every person of s with one template: their first.
func enrollSet(t *testing.T, db *store.DB, s learn.Set) map[string][]float32 {
	t.Helper()
	first := map[string][]float32{}
	for i, l := range s.Labels {
		if first[l] == nil {
			first[l] = s.Vectors[i]
			if err := db.Enroll(context.Background(), store.Person{ID: l, Name: l, Active: true},
				[]store.Template{{Model: rosterModel, ModelName: "test.onnx", Vector: s.Vectors[i]}}, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	return first
}

// saveHead stores h under name with metrics, active.
func saveHead(t *testing.T, db *store.DB, name string, h learn.Head, metrics any) {
	t.Helper()
	blob, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(metrics)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SaveHead(context.Background(), store.Head{Name: name, Method: string(h.Method()), Model: rosterModel, Blob: blob, Metrics: raw, Active: true}, true); err != nil {
		t.Fatal(err)
	}
}

func openRosterDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "facegate.db"), rosterModel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func doorMetrics(threshold float32, people int, resolved bool) learn.HeadMetrics {
	return learn.HeadMetrics{Door: &learn.DoorCalibration{People: people, StrangerFAR: 1e-3,
		Calibration: learn.Calibration{TargetFAR: 1e-3 / float64(people), Threshold: threshold, Resolved: resolved, Impostors: 100}}}
}

// TestRosterScoresWithTheActiveHead checks that a roster searches with
// the active, door-calibrated head of each method exactly as the head
// scores pairs, at the head's door threshold, without allocating.
func TestRosterScoresWithTheActiveHead(t *testing.T) {
	const dim = 16
	r := rand.New(rand.NewPCG(7, 8))
	train := clusteredPeople(r, 20, 4, dim, "t")
	val := clusteredPeople(r, 8, 4, dim, "v")
	ctx := context.Background()
	db := openRosterDB(t)
	gallery := enrollSet(t, db, val)
	heads := []learn.Head{learn.NewCosine(dim, 0.3)}
	for _, cfg := range []learn.Config{{Method: learn.Triplet, Dim: 6}, {Method: learn.Logistic}, {Method: learn.Chi2}} {
		cfg.Epochs, cfg.Seed = 3, 1
		res, err := learn.Train(ctx, cfg, train, learn.Set{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		heads = append(heads, res.Head)
	}
	for _, h := range heads {
		name := "head-" + string(h.Method())
		saveHead(t, db, name, h, doorMetrics(0.7, len(gallery), true))
		roster, err := LoadRoster(ctx, db, rosterModel, dim)
		if err != nil {
			t.Fatal(err)
		}
		if s := roster.Scoring; s.Head != name || s.Method != h.Method() || s.Threshold != 0.7 || len(s.Warnings) != 0 {
			t.Fatalf("%s: scoring %+v, want the head at its door threshold 0.7 and no warnings", name, s)
		}
		if roster.QueryLen() != h.PreparedDim() {
			t.Errorf("%s: query length %d, want %d", name, roster.QueryLen(), h.PreparedDim())
		}
		buf := make([]float32, roster.QueryLen())
		for i, v := range val.Vectors {
			m, err := roster.Search(verify.Embedding{Model: rosterModel, Vector: v}, buf)
			if err != nil {
				t.Fatal(err)
			}
			// One template each, so a person's score is the head's on the pair.
			best, bs := "", float32(math.Inf(-1))
			for id, g := range gallery {
				if s := h.Score(v, g); s > bs {
					best, bs = id, s
				}
			}
			id, _ := roster.Gallery.Person(m.Person)
			if id != best || math.Abs(float64(m.Score-bs)) > 1e-5 {
				t.Fatalf("%s, face %d of %s: roster says %s %v, the head scores %s %v best", name, i, val.Labels[i], id, m.Score, best, bs)
			}
		}
		q := verify.Embedding{Model: rosterModel, Vector: val.Vectors[1]}
		if n := testing.AllocsPerRun(50, func() { roster.Search(q, buf) }); n != 0 {
			t.Errorf("%s: a search allocates %v times", name, n)
		}
	}
}

func TestRosterFallsBackToPlainCosine(t *testing.T) {
	const dim = 16
	r := rand.New(rand.NewPCG(9, 10))
	ctx := context.Background()
	db := openRosterDB(t)
	val := clusteredPeople(r, 5, 2, dim, "p")
	enrollSet(t, db, val)
	cosine := learn.NewCosine(dim, 0.3)
	triplet, err := learn.Train(ctx, learn.Config{Method: learn.Triplet, Epochs: 1, Seed: 1}, clusteredPeople(r, 10, 3, dim, "t"), learn.Set{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		head      learn.Head
		metrics   any
		head0     string  // Scoring.Head wanted ("" = plain cosine)
		threshold float32 // Scoring.Threshold wanted
		warning   string  // a warning must hold this
	}{
		{"no door calibration", triplet.Head, learn.HeadMetrics{}, "", 0, "no door threshold"},
		{"door threshold 0", triplet.Head, doorMetrics(0, 5, true), "", 0, "outside (0, 1]"},
		{"unresolved triplet is not used", triplet.Head, doorMetrics(0.5, 5, false), "", 0, "unresolved"},
		{"other encoder size", learn.NewCosine(dim+1, 0.3), doorMetrics(0.6, 5, true), "", 0, "17-dimensional"},
		{"unresolved cosine keeps 0.55", cosine, doorMetrics(0.41, 5, false), "cosine", verify.IdentifyThreshold, "keeping the built-in threshold"},
		{"resolved cosine is trusted", cosine, doorMetrics(0.45, 5, true), "cosine", 0.45, ""},
		{"unresolved cosine above 0.55 is kept", cosine, doorMetrics(0.6, 5, false), "cosine", 0.6, ""},
		{"unresolved negative cosine keeps 0.55", cosine, doorMetrics(-0.01, 5, false), "cosine", verify.IdentifyThreshold, "keeping the built-in threshold"},
		{"resolved negative cosine is refused", cosine, doorMetrics(-0.01, 5, true), "", 0, "outside (0, 1]"},
		{"grown gallery", triplet.Head, doorMetrics(0.6, 2, true), "triplet", 0.6, "calibrated with 2 people enrolled, now 5"},
	} {
		t.Run(c.name, func(t *testing.T) {
			name := c.head0
			if name == "" {
				name = "fallback"
			}
			saveHead(t, db, name, c.head, c.metrics)
			roster, err := LoadRoster(ctx, db, rosterModel, dim)
			if err != nil {
				t.Fatal(err)
			}
			s := roster.Scoring
			if s.Head != c.head0 || s.Threshold != c.threshold {
				t.Errorf("scoring %+v, want head %q at %v", s, c.head0, c.threshold)
			}
			warned := strings.Join(s.Warnings, "\n")
			if c.warning == "" && warned != "" || !strings.Contains(warned, c.warning) {
				t.Errorf("warnings %q, want one holding %q", warned, c.warning)
			}
			if c.head0 == "" {
				q := verify.Embedding{Model: rosterModel, Vector: val.Vectors[0]}
				got, err1 := roster.Search(q, nil)
				want, err2 := roster.Gallery.Search(q)
				if err1 != nil || err2 != nil || got != want || roster.QueryLen() != 0 {
					t.Errorf("fallback search %+v %v, plain cosine %+v %v", got, err1, want, err2)
				}
			}
		})
	}
	if _, err := db.DeactivateHeads(ctx, rosterModel); err != nil {
		t.Fatal(err)
	}
	roster, err := LoadRoster(ctx, db, rosterModel, dim)
	if err != nil {
		t.Fatal(err)
	}
	if s := roster.Scoring; s.Head != "" || s.Method != learn.Cosine || s.Threshold != 0 || len(s.Warnings) != 0 {
		t.Errorf("no active head: scoring %+v, want plain cosine at the policy's threshold", s)
	}
}
