package verify

import (
	"math"
	"testing"

	"github.com/facegate/facegate/detect"
)

func TestFitSimilarityRoundTrip(t *testing.T) {
	tpl := Template()
	for _, tc := range []struct {
		name                 string
		angle, scale, tx, ty float64
	}{
		{"identity", 0, 1, 0, 0},
		{"shift", 0, 1, 40, -12},
		{"rotated and scaled", 0.4, 2.3, 100, 80},
		{"upside down and small", math.Pi - 0.1, 0.4, -5, 300},
	} {
		// Place the template in a "frame" by a known similarity, then fit
		// back: the fit must map the frame points onto the template.
		c, s := math.Cos(tc.angle)*tc.scale, math.Sin(tc.angle)*tc.scale
		var pts [5]detect.Point
		for i, p := range tpl {
			pts[i] = detect.Point{
				X: float32(c*float64(p.X) - s*float64(p.Y) + tc.tx),
				Y: float32(s*float64(p.X) + c*float64(p.Y) + tc.ty),
			}
		}
		m := FitSimilarity(pts, tpl)
		for i := range pts {
			q := m.Apply(pts[i])
			if d := math.Hypot(float64(q.X-tpl[i].X), float64(q.Y-tpl[i].Y)); d > 0.5 {
				t.Errorf("%s: point %d lands %.3f px from the template", tc.name, i, d)
			}
		}
	}
}

func TestFitSimilarityLeastSquares(t *testing.T) {
	// With noise the fit is no longer exact, but it must beat every
	// similarity next to it: nudging a, b, tx or ty raises the squared error.
	tpl := Template()
	pts := tpl
	noise := [5][2]float32{{1, -2}, {-1.5, 0.5}, {2, 1}, {0, -1}, {-1, 2}}
	for i := range pts {
		pts[i].X = 2*pts[i].X + 30 + noise[i][0]
		pts[i].Y = 2*pts[i].Y + 10 + noise[i][1]
	}
	m := FitSimilarity(pts, tpl)
	sse := func(a, b, tx, ty float64) float64 {
		s := Similarity{{a, -b, tx}, {b, a, ty}}
		var e float64
		for i := range pts {
			q := s.Apply(pts[i])
			e += math.Pow(float64(q.X-tpl[i].X), 2) + math.Pow(float64(q.Y-tpl[i].Y), 2)
		}
		return e
	}
	p := [4]float64{m[0][0], m[1][0], m[0][2], m[1][2]}
	best := sse(p[0], p[1], p[2], p[3])
	for k := range p {
		for _, eps := range []float64{1e-2, -1e-2} {
			q := p
			q[k] += eps
			if e := sse(q[0], q[1], q[2], q[3]); e < best {
				t.Errorf("nudging parameter %d by %v lowers the error from %v to %v", k, eps, best, e)
			}
		}
	}
}

func TestCosine(t *testing.T) {
	a, err := NewEmbedding("m1", []float32{3, 4, 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Cosine(a, a); err != nil || math.Abs(float64(s)-1) > 1e-6 {
		t.Errorf("Cosine(a, a) = %v, %v; want 1", s, err)
	}
	b, _ := NewEmbedding("m1", []float32{-3, -4, 0, 0})
	if s, _ := Cosine(a, b); math.Abs(float64(s)+1) > 1e-6 {
		t.Errorf("Cosine(a, -a) = %v, want -1", s)
	}
	c, _ := NewEmbedding("m1", []float32{0, 0, 5, 0})
	if s, _ := Cosine(a, c); math.Abs(float64(s)) > 1e-6 {
		t.Errorf("Cosine of orthogonal = %v, want 0", s)
	}
	other, _ := NewEmbedding("m2", []float32{3, 4, 0, 0})
	if _, err := Cosine(a, other); err == nil {
		t.Error("embeddings of different models compared without error")
	}
	short, _ := NewEmbedding("m1", []float32{3, 4})
	if _, err := Cosine(a, short); err == nil {
		t.Error("embeddings of different lengths compared without error")
	}
	if _, err := NewEmbedding("m1", []float32{0, 0}); err == nil {
		t.Error("zero vector accepted as an embedding")
	}
	if _, err := NewEmbedding("m1", []float32{float32(math.NaN()), 1}); err == nil {
		t.Error("NaN vector accepted as an embedding")
	}
}

func TestNewEmbeddingIsUnitAndCopies(t *testing.T) {
	v := []float32{1, 2, 3, 4, 5}
	e, err := NewEmbedding("m", v)
	if err != nil {
		t.Fatal(err)
	}
	if n := Dot(e.Vector, e.Vector); math.Abs(float64(n)-1) > 1e-6 {
		t.Errorf("|e|² = %v, want 1", n)
	}
	v[0] = 100
	if e.Vector[0] == 100 {
		t.Error("NewEmbedding kept the caller's slice")
	}
}
