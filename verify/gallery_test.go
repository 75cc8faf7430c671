package verify

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func randomUnit(r *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	normalize(v)
	return v
}

// dot64 is the dot product in float64.
func dot64(a, b []float32) float64 {
	var d float64
	for k := range a {
		d += float64(a[k]) * float64(b[k])
	}
	return d
}

// negL1 is minus the L1 distance: a score that is not a dot product.
func negL1(a, b []float32) float64 {
	var d float64
	for k := range a {
		d -= math.Abs(float64(a[k]) - float64(b[k]))
	}
	return d
}

// bruteForce is the obvious answer in float64: every person's best
// template by score, the top two.
func bruteForce(people []Enrolled, q []float32, score func(a, b []float32) float64) (best, second int, bs, ss float64) {
	best, second = -1, -1
	bs, ss = math.Inf(-1), math.Inf(-1)
	for i, p := range people {
		s := math.Inf(-1)
		for _, t := range p.Templates {
			s = max(s, score(q, t))
		}
		switch {
		case s > bs:
			best, second, bs, ss = i, best, s, bs
		case s > ss:
			second, ss = i, s
		}
	}
	return
}

func TestGallerySearchMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const dim = 16
	for trial := 0; trial < 300; trial++ {
		n := 1 + r.IntN(12)
		people := make([]Enrolled, n)
		for i := range people {
			people[i].ID = fmt.Sprint("p", i)
			for k := r.IntN(4) + 1; k > 0; k-- {
				people[i].Templates = append(people[i].Templates, randomUnit(r, dim))
			}
		}
		g, err := NewGallery("m", dim, people, BestOf, 1)
		if err != nil {
			t.Fatal(err)
		}
		q := Embedding{Model: "m", Vector: randomUnit(r, dim)}
		l1 := func(a, b []float32) float32 { return float32(negL1(a, b)) }
		for _, c := range []struct {
			name   string
			search func() (Match, error)
			score  func(a, b []float32) float64
		}{
			{"Search", func() (Match, error) { return g.Search(q) }, dot64},
			{"SearchFunc(Dot)", func() (Match, error) { return g.SearchFunc(q, Dot) }, dot64},
			{"SearchFunc(-L1)", func() (Match, error) { return g.SearchFunc(q, l1) }, negL1},
		} {
			m, err := c.search()
			if err != nil {
				t.Fatal(err)
			}
			// float32 sums in another order differ from float64 by ~1e-7.
			const tol = 1e-5
			best, second, bs, ss := bruteForce(people, q.Vector, c.score)
			if m.Person != best || math.Abs(float64(m.Score)-bs) > tol {
				t.Fatalf("%s, trial %d: best %d (%v), want %d (%v)", c.name, trial, m.Person, m.Score, best, bs)
			}
			if n > 1 && (m.RunnerUp != second || math.Abs(float64(m.RunnerUpScore)-ss) > tol) {
				t.Fatalf("%s, trial %d: runner-up %d (%v), want %d (%v)", c.name, trial, m.RunnerUp, m.RunnerUpScore, second, ss)
			}
			if n == 1 && (m.RunnerUp != -1 || m.RunnerUpScore != 0) {
				t.Fatalf("%s, trial %d: runner-up %d (%v) with one person", c.name, trial, m.RunnerUp, m.RunnerUpScore)
			}
		}
	}
}

func TestGallerySearchHandMade(t *testing.T) {
	e := func(x, y float32) []float32 { v := []float32{x, y}; normalize(v); return v }
	people := []Enrolled{
		{ID: "ann", Name: "Ann", Templates: [][]float32{e(1, 0), e(0, 1)}},
		{ID: "bob", Name: "Bob", Templates: [][]float32{e(1, 0.2)}},
		{ID: "cy", Name: "Cy", Templates: [][]float32{e(-1, 0)}},
	}
	q := Embedding{Model: "m", Vector: e(1, 0.05)}
	best, err := NewGallery("m", 2, people, BestOf, 7)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := best.Search(q)
	if id, _ := best.Person(m.Person); id != "ann" {
		t.Errorf("best-of: best is %s, want ann (her first template is nearly the query)", id)
	}
	if id, _ := best.Person(m.RunnerUp); id != "bob" {
		t.Errorf("best-of: runner-up is %s, want bob", id)
	}
	if m.Margin() <= 0 || best.Version() != 7 || best.Len() != 3 || best.Templates() != 4 {
		t.Errorf("margin %v, version %d, %d people, %d templates", m.Margin(), best.Version(), best.Len(), best.Templates())
	}
	// Ann's mean template points between her two: Bob now wins.
	mean, _ := NewGallery("m", 2, people, MeanTemplate, 7)
	m, _ = mean.Search(q)
	if id, _ := mean.Person(m.Person); id != "bob" {
		t.Errorf("mean template: best is %s, want bob", id)
	}
	if mean.Templates() != 3 {
		t.Errorf("mean template keeps %d rows, want 3", mean.Templates())
	}
}

func TestGalleryRefuses(t *testing.T) {
	g, _ := NewGallery("m", 2, []Enrolled{{ID: "a", Templates: [][]float32{{1, 0}}}}, BestOf, 0)
	if _, err := g.Search(Embedding{Model: "other", Vector: []float32{1, 0}}); err == nil {
		t.Error("query of another model searched")
	}
	if _, err := g.Search(Embedding{Model: "m", Vector: []float32{1, 0, 0}}); err == nil {
		t.Error("query of another length searched")
	}
	if _, err := g.SearchFunc(Embedding{Model: "other", Vector: []float32{1, 0}}, Dot); err == nil {
		t.Error("SearchFunc: query of another model searched")
	}
	if _, err := g.SearchFunc(Embedding{Model: "m", Vector: []float32{1}}, Dot); err == nil {
		t.Error("SearchFunc: query of another length searched")
	}
	empty, _ := NewGallery("m", 2, nil, BestOf, 0)
	if _, err := empty.Search(Embedding{Model: "m", Vector: []float32{1, 0}}); err != ErrEmptyGallery {
		t.Errorf("empty gallery: %v, want ErrEmptyGallery", err)
	}
	if m, err := empty.SearchFunc(Embedding{Model: "m", Vector: []float32{1, 0}}, Dot); err != ErrEmptyGallery || m.Person != -1 {
		t.Errorf("SearchFunc, empty gallery: %+v, %v, want ErrEmptyGallery", m, err)
	}
	if _, err := NewGallery("m", 2, []Enrolled{{ID: "a", Templates: [][]float32{{1, 0, 0}}}}, BestOf, 0); err == nil {
		t.Error("template of the wrong length accepted")
	}
}

func TestGallerySearchAllocatesNothing(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	people := make([]Enrolled, 100)
	for i := range people {
		people[i] = Enrolled{ID: fmt.Sprint(i), Templates: [][]float32{randomUnit(r, 512)}}
	}
	g, _ := NewGallery("m", 512, people, BestOf, 0)
	q := Embedding{Model: "m", Vector: randomUnit(r, 512)}
	if n := testing.AllocsPerRun(100, func() { g.Search(q) }); n != 0 {
		t.Errorf("Search allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { g.SearchFunc(q, Dot) }); n != 0 {
		t.Errorf("SearchFunc allocates %v times", n)
	}
}

func BenchmarkGallerySearch(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(5, 6))
			people := make([]Enrolled, n)
			for i := range people {
				people[i] = Enrolled{ID: fmt.Sprint(i), Templates: [][]float32{randomUnit(r, EmbeddingDim)}}
			}
			g, err := NewGallery("m", EmbeddingDim, people, BestOf, 0)
			if err != nil {
				b.Fatal(err)
			}
			q := Embedding{Model: "m", Vector: randomUnit(r, EmbeddingDim)}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := g.Search(q); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(g.Bytes())/(1<<20), "MiB")
		})
	}
}
