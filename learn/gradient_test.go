package learn

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// maxGradCheckError is the largest relative error allowed between an
// analytic gradient and central finite differences.
const maxGradCheckError = 1e-4

// gradCheck compares the analytic gradient grad of f at params with
// central differences, entry by entry, and returns the largest relative
// error |a − n| / max(|a|, |n|, floor) and the norm-wise one
// ‖a − n‖ / (‖a‖ + ‖n‖). f must not keep params.
func gradCheck(params, grad []float64, f func() float64) (maxRel, normRel float64) {
	const h = 1e-6
	const floor = 1e-7 // below this an entry is zero for all purposes
	var diff2, a2, n2 float64
	for k := range params {
		orig := params[k]
		params[k] = orig + h
		fp := f()
		params[k] = orig - h
		fm := f()
		params[k] = orig
		num := (fp - fm) / (2 * h)
		a := grad[k]
		rel := math.Abs(a-num) / max(math.Abs(a), math.Abs(num), floor)
		maxRel = max(maxRel, rel)
		diff2 += (a - num) * (a - num)
		a2 += a * a
		n2 += num * num
	}
	return maxRel, math.Sqrt(diff2) / (math.Sqrt(a2) + math.Sqrt(n2))
}

// randomSet is n people with per embeddings each of random unit vectors
// of dim elements (components of both signs).
func randomData(t *testing.T, rng *rand.Rand, people, per, dim int) *data {
	t.Helper()
	var s Set
	for p := range people {
		for range per {
			s.Add(string(rune('A'+p)), randomUnit(rng, dim))
		}
	}
	d, err := newData(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func randomUnit(rng *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	var ss float64
	for i := range v {
		x := rng.NormFloat64()
		v[i] = float32(x)
		ss += x * x
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(ss))
	}
	return v
}

func TestTripletGradient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in, out int
		mining  Mining
	}{
		{"square semihard", 16, 16, SemiHard},
		{"reducing hardest", 16, 6, Hardest},
		{"reducing random", 16, 6, Random},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			d := randomData(t, rng, 4, 3, tc.in)
			lin := &linear{in: tc.in, out: tc.out, w: make([]float64, tc.in*tc.out)}
			for k := range lin.w {
				lin.w[k] = rng.NormFloat64()
			}
			w0 := make([]float64, len(lin.w))
			for k := range w0 {
				w0[k] = rng.NormFloat64()
			}
			const alpha, l2 = 1.0, 0.05
			rows := make([]int, d.n())
			for i := range rows {
				rows[i] = i
			}
			st := &batchState{workers: 2}
			st.reset(rows, lin.out)
			lin.forward(d, st)
			// The triplets are mined once and then held fixed: mining is a
			// choice, not a function the gradient goes through.
			ts := mine(st.g, lin.out, d.label, tc.mining, rng)
			// Finite differences need every hinge away from its kink.
			for _, tr := range ts {
				l := sqDist(st.g[tr.a*lin.out:(tr.a+1)*lin.out], st.g[tr.p*lin.out:(tr.p+1)*lin.out]) -
					sqDist(st.g[tr.a*lin.out:(tr.a+1)*lin.out], st.g[tr.n*lin.out:(tr.n+1)*lin.out]) + alpha
				if math.Abs(l) < 1e-3 {
					t.Fatalf("triplet %v at the hinge (%g): pick another seed", tr, l)
				}
			}
			dw := make([]float64, len(lin.w))
			_, active := lin.tripletObjective(d, st, ts, alpha, l2, w0, dw)
			if active == 0 {
				t.Fatal("no active triplet: the check would test only the regulariser")
			}
			f := func() float64 {
				lin.forward(d, st)
				loss, _ := lin.tripletObjective(d, st, ts, alpha, l2, w0, nil)
				return loss
			}
			maxRel, normRel := gradCheck(lin.w, dw, f)
			t.Logf("triplet loss w.r.t. W (%d×%d, %d triplets, %d active): max relative error %.2e, norm-wise %.2e",
				tc.out, tc.in, len(ts), active, maxRel, normRel)
			if maxRel > maxGradCheckError {
				t.Errorf("max relative error %.2e > %.0e", maxRel, maxGradCheckError)
			}
		})
	}
}

func TestPairHeadGradient(t *testing.T) {
	for _, method := range []Method{Logistic, Chi2} {
		t.Run(string(method), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			const dim = 24
			d := randomData(t, rng, 6, 4, dim)
			m := newPairModel(method, dim)
			for k := range m.w {
				m.w[k] = rng.NormFloat64()
			}
			m.b = rng.NormFloat64()
			pairs := balancedPairs(d, d.multi(), 40, rng, nil)
			pb := &pairBatch{dim: dim}
			pb.fill(d.row, m, pairs)
			const l2 = 0.1
			theta := append(slices.Clone(m.w), m.b)
			grad := make([]float64, dim+1)
			w0 := make([]float64, dim)
			for k := range w0 {
				w0[k] = rng.NormFloat64()
			}
			m.objective(pb, l2, w0, grad[:dim], &grad[dim])
			f := func() float64 {
				copy(m.w, theta[:dim])
				m.b = theta[dim]
				loss, _ := m.objective(pb, l2, w0, nil, nil)
				return loss
			}
			maxRel, normRel := gradCheck(theta, grad, f)
			t.Logf("%s loss w.r.t. w and b (%d weights, %d pairs): max relative error %.2e, norm-wise %.2e", method, dim, len(pairs), maxRel, normRel)
			if maxRel > maxGradCheckError {
				t.Errorf("max relative error %.2e > %.0e", maxRel, maxGradCheckError)
			}
		})
	}
}

func TestChi2FeatureIsSafe(t *testing.T) {
	for _, c := range []struct{ u, v, want float64 }{
		{0, 0, 0},                         // 0/0 guarded by ε
		{0.3, -0.3, 0.6},                  // opposite signs: |u − v|
		{-0.2, -0.1, 0.01 / (0.3 + 1e-6)}, // same sign: χ² of the magnitudes
		{0.2, 0.1, 0.01 / (0.3 + 1e-6)},
	} {
		got := chi2Feature(c.u, c.v)
		if math.Abs(got-c.want) > 1e-6 {
			t.Errorf("chi2Feature(%g, %g) = %g, want %g", c.u, c.v, got, c.want)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		u, v := rng.Float64()*2-1, rng.Float64()*2-1
		if rng.IntN(10) == 0 {
			v = -u
		}
		f := chi2Feature(u, v)
		if math.IsNaN(f) || f < 0 || f > math.Abs(u-v)+1e-15 {
			t.Fatalf("chi2Feature(%g, %g) = %g, outside [0, |u−v|]", u, v, f)
		}
	}
}
