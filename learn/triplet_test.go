package learn

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// handBatch is six points on a line, two per person (A, A, B, B, C, C):
// a0=0, a1=1, b0=−0.8, b1=1.1, c0=1.3, c1=−1.05. Squared distances from
// each anchor (the positive first):
//
//	a0: a1 1      | b0 0.64  b1 1.21    c0 1.69    c1 1.1025
//	a1: a0 1      | b0 3.24  b1 0.01    c0 0.09    c1 4.2025
//	b0: b1 3.61   | a0 0.64  a1 3.24    c0 4.41    c1 0.0625
//	b1: b0 3.61   | a0 1.21  a1 0.01    c0 0.04    c1 4.6225
//	c0: c1 5.5225 | a0 1.69  a1 0.09    b0 4.41    b1 0.04
//	c1: c0 5.5225 | a0 1.1025 a1 4.2025 b0 0.0625  b1 4.6225
func handBatch() (points []float64, labels []int) {
	return []float64{0, 1, -0.8, 1.1, 1.3, -1.05}, []int{0, 0, 1, 1, 2, 2}
}

const (
	a0 = iota
	a1
	b0
	b1
	c0
	c1
)

func TestMinerPicksSemiHardAndHardest(t *testing.T) {
	handBatch, handLabels := handBatch()
	rng := rand.New(rand.NewPCG(1, 1))
	for _, tc := range []struct {
		mining Mining
		want   []triplet
	}{
		// Semi-hard: the nearest negative farther than the positive. For
		// c0 and c1 every negative is nearer than the positive, so the
		// farthest of them, the least hard, is taken.
		{SemiHard, []triplet{{a0, a1, c1}, {a1, a0, b0}, {b0, b1, c0}, {b1, b0, c1}, {c0, c1, b0}, {c1, c0, b1}}},
		// Hardest: the nearest negative.
		{Hardest, []triplet{{a0, a1, b0}, {a1, a0, b1}, {b0, b1, c1}, {b1, b0, a1}, {c0, c1, b1}, {c1, c0, b0}}},
	} {
		got := mine(handBatch, 1, handLabels, tc.mining, rng)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: mined %v, want %v", tc.mining, got, tc.want)
		}
	}
	// Random negatives are of another person, and vary.
	seen := map[int]bool{}
	for range 50 {
		for _, tr := range mine(handBatch, 1, handLabels, Random, rng) {
			if handLabels[tr.n] == handLabels[tr.a] || handLabels[tr.p] != handLabels[tr.a] || tr.a == tr.p {
				t.Fatalf("random triplet %v is not anchor, positive, negative", tr)
			}
			if tr.a == a0 {
				seen[tr.n] = true
			}
		}
	}
	if len(seen) != 4 {
		t.Errorf("random mining drew negatives %v for a0, want all four", seen)
	}
}

func TestTripletLossOfHandBatch(t *testing.T) {
	// With α = 0.5 the semi-hard triplets of handBatch lose:
	// (a0,a1,c1) 1 − 1.1025 + 0.5 = 0.3975, (b1,b0,c1) 3.61 − 4.6225 + 0.5 < 0,
	// (a1,a0,b0) < 0, (b0,b1,c0) 3.61 − 4.41 + 0.5 < 0,
	// (c0,c1,b0) 5.5225 − 4.41 + 0.5 = 1.6125, (c1,c0,b1) 5.5225 − 4.6225 + 0.5 = 1.4.
	handBatch, handLabels := handBatch()
	ts := mine(handBatch, 1, handLabels, SemiHard, nil)
	loss, active := tripletLoss(handBatch, 1, ts, 0.5, nil)
	want := (0.3975 + 1.6125 + 1.4) / 6
	if active != 3 || !near(loss, want, 1e-12) {
		t.Errorf("loss %v with %d active, want %v with 3", loss, active, want)
	}
}

func TestTripletLossZeroWhenMarginHolds(t *testing.T) {
	// Three people far apart, each tight: every triplet of every kind
	// already satisfies the margin, so the loss and its gradient are
	// exactly zero.
	g := []float64{
		0, 0, 0.1, 0, 0, 0.1, // person 0
		10, 0, 10.1, 0, 10, 0.1, // person 1
		0, 10, 0.1, 10, 0, 10.1, // person 2
	}
	labels := []int{0, 0, 0, 1, 1, 1, 2, 2, 2}
	for _, m := range []Mining{SemiHard, Hardest, Random} {
		ts := mine(g, 2, labels, m, rand.New(rand.NewPCG(2, 2)))
		if len(ts) != 18 {
			t.Fatalf("%s: %d triplets, want 18 (9 anchors × 2 positives)", m, len(ts))
		}
		dg := make([]float64, len(g))
		loss, active := tripletLoss(g, 2, ts, 0.2, dg)
		if loss != 0 || active != 0 {
			t.Errorf("%s: loss %v with %d active, want exactly 0", m, loss, active)
		}
		for k, x := range dg {
			if x != 0 {
				t.Fatalf("%s: gradient[%d] = %v, want 0", m, k, x)
			}
		}
	}
	// Through the projection too: the objective without regulariser is 0
	// and leaves W's gradient 0.
	rng := rand.New(rand.NewPCG(3, 3))
	d := clusteredData(t, rng, 4, 3, 16, 0.01, 0, 0)
	lin := newLinear(16, 16, rng)
	st := &batchState{workers: 1}
	rows := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	st.reset(rows, 16)
	lin.forward(d, st)
	ts := mine(st.g, 16, d.label, Hardest, rng)
	dw := make([]float64, len(lin.w))
	loss, active := lin.tripletObjective(d, st, ts, 0.2, 0, nil, dw)
	if loss != 0 || active != 0 || slices.ContainsFunc(dw, func(x float64) bool { return x != 0 }) {
		t.Errorf("well-separated clusters: loss %v, %d active, non-zero gradient %v", loss, active, slices.ContainsFunc(dw, func(x float64) bool { return x != 0 }))
	}
}

func near(a, b, tol float64) bool { return a-b <= tol && b-a <= tol }
