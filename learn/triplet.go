package learn

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Mining says how a triplet's negative is chosen inside a batch.
type Mining string

// The ways of mining negatives.
const (
	// SemiHard takes, for each anchor-positive pair, the nearest negative
	// that is farther from the anchor than the positive (FaceNet §3.2):
	// within the margin it is active, beyond it every such negative
	// already satisfies the margin. When every negative is nearer than the
	// positive, it takes the farthest of them, the least hard.
	SemiHard Mining = "semihard"
	// Hardest takes the negative nearest the anchor.
	Hardest Mining = "hardest"
	// Random takes any negative of the batch, uniformly: the baseline.
	Random Mining = "random"
)

// ParseMining reads a mining name.
func ParseMining(s string) (Mining, error) {
	switch m := Mining(s); m {
	case SemiHard, Hardest, Random:
		return m, nil
	}
	return "", fmt.Errorf("mining %q: want semihard, hardest or random", s)
}

// triplet is anchor, positive and negative: indices into a batch.
type triplet struct{ a, p, n int }

// mine forms a batch's triplets: every ordered anchor-positive pair of
// rows with the same label, each with one negative chosen by m among the
// rows of other labels, from the squared distances between the rows of g
// (each of width dim). Ties go to the lower index. rng is used by Random
// only.
func mine(g []float64, dim int, labels []int, m Mining, rng *rand.Rand) []triplet {
	b := len(labels)
	dist := make([]float64, b*b)
	for i := range b {
		for j := i + 1; j < b; j++ {
			d := sqDist(g[i*dim:(i+1)*dim], g[j*dim:(j+1)*dim])
			dist[i*b+j], dist[j*b+i] = d, d
		}
	}
	var negs []int
	var ts []triplet
	for a := range b {
		negs = negs[:0]
		for n := range b {
			if labels[n] != labels[a] {
				negs = append(negs, n)
			}
		}
		if len(negs) == 0 {
			continue
		}
		for p := range b {
			if p == a || labels[p] != labels[a] {
				continue
			}
			dap := dist[a*b+p]
			n := -1
			switch m {
			case Hardest:
				for _, k := range negs {
					if n < 0 || dist[a*b+k] < dist[a*b+n] {
						n = k
					}
				}
			case SemiHard:
				far := -1 // the farthest negative, for when none is beyond the positive
				for _, k := range negs {
					d := dist[a*b+k]
					if d > dap && (n < 0 || d < dist[a*b+n]) {
						n = k
					}
					if far < 0 || d > dist[a*b+far] {
						far = k
					}
				}
				if n < 0 {
					n = far
				}
			default:
				n = negs[rng.IntN(len(negs))]
			}
			ts = append(ts, triplet{a, p, n})
		}
	}
	return ts
}

// tripletLoss is the mean over ts of max(‖g_a−g_p‖² − ‖g_a−g_n‖² + alpha, 0)
// and the number of triplets where it is positive (active). When dg is not
// nil, the gradient of the mean with respect to g is added to it.
func tripletLoss(g []float64, dim int, ts []triplet, alpha float64, dg []float64) (loss float64, active int) {
	if len(ts) == 0 {
		return 0, 0
	}
	scale := 2 / float64(len(ts))
	for _, t := range ts {
		ga, gp, gn := g[t.a*dim:(t.a+1)*dim], g[t.p*dim:(t.p+1)*dim], g[t.n*dim:(t.n+1)*dim]
		l := sqDist(ga, gp) - sqDist(ga, gn) + alpha
		if l <= 0 {
			continue
		}
		loss += l
		active++
		if dg == nil {
			continue
		}
		// ∂/∂g_a = 2(g_n − g_p), ∂/∂g_p = 2(g_p − g_a), ∂/∂g_n = 2(g_a − g_n).
		da, dp, dn := dg[t.a*dim:(t.a+1)*dim], dg[t.p*dim:(t.p+1)*dim], dg[t.n*dim:(t.n+1)*dim]
		for k := range dim {
			da[k] += scale * (gn[k] - gp[k])
			dp[k] += scale * (gp[k] - ga[k])
			dn[k] += scale * (ga[k] - gn[k])
		}
	}
	return loss / float64(len(ts)), active
}

// linear is the trainable projection g(x) = Wx/‖Wx‖, in float64: W has
// out rows of in elements.
type linear struct {
	in, out int
	w       []float64
}

// newLinear starts a projection from the identity when out == in, so that
// training starts from plain cosine similarity, and otherwise from random
// orthonormal rows, which keep cosines roughly (Johnson–Lindenstrauss).
func newLinear(in, out int, rng *rand.Rand) *linear {
	l := &linear{in: in, out: out, w: make([]float64, in*out)}
	if in == out {
		for i := range in {
			l.w[i*in+i] = 1
		}
		return l
	}
	for r := range out {
		row := l.w[r*in : (r+1)*in]
		for {
			for k := range row {
				row[k] = rng.NormFloat64()
			}
			for q := range r { // Gram–Schmidt against the rows before
				prev := l.w[q*in : (q+1)*in]
				axpy(-dot64(prev, row), prev, row)
			}
			if n := math.Sqrt(dot64(row, row)); n > 1e-6 {
				for k := range row {
					row[k] /= n
				}
				break
			}
		}
	}
	return l
}

// batchState holds a batch's projections: y = Wx and g = y/‖y‖ per row.
type batchState struct {
	rows    []int
	y, g    []float64
	norm    []float64
	dg, dy  []float64
	workers int
}

func (s *batchState) reset(rows []int, out int) {
	s.rows = rows
	n := len(rows) * out
	s.y = grow(s.y, n)
	s.g = grow(s.g, n)
	s.dg = grow(s.dg, n)
	s.dy = grow(s.dy, n)
	s.norm = grow(s.norm, len(rows))
	clear(s.dg)
}

func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

// forward projects the batch's rows of d.
func (l *linear) forward(d *data, s *batchState) {
	b := len(s.rows)
	parallel(l.out, s.workers, func(lo, hi int) {
		for i, row := range s.rows {
			x := d.row(row)
			for r := lo; r < hi; r++ {
				s.y[i*l.out+r] = dot64(l.w[r*l.in:(r+1)*l.in], x)
			}
		}
	})
	for i := range b {
		y := s.y[i*l.out : (i+1)*l.out]
		n := math.Sqrt(dot64(y, y))
		if n == 0 {
			n = math.SmallestNonzeroFloat64 // a zero projection: g stays 0
		}
		s.norm[i] = n
		g := s.g[i*l.out : (i+1)*l.out]
		for k := range y {
			g[k] = y[k] / n
		}
	}
}

// backward turns the gradient in s.dg (with respect to g) into the
// gradient with respect to W, added to dw: through the normalisation,
// ∂L/∂y = (∂L/∂g − g(g·∂L/∂g))/‖y‖, then ∂L/∂W = Σ ∂L/∂y xᵀ.
func (l *linear) backward(d *data, s *batchState, dw []float64) {
	for i := range s.rows {
		g := s.g[i*l.out : (i+1)*l.out]
		dg := s.dg[i*l.out : (i+1)*l.out]
		dy := s.dy[i*l.out : (i+1)*l.out]
		gdg := dot64(g, dg)
		for k := range dy {
			dy[k] = (dg[k] - g[k]*gdg) / s.norm[i]
		}
	}
	parallel(l.out, s.workers, func(lo, hi int) {
		for i, row := range s.rows {
			x := d.row(row)
			for r := lo; r < hi; r++ {
				if c := s.dy[i*l.out+r]; c != 0 {
					axpy(c, x, dw[r*l.in:(r+1)*l.in])
				}
			}
		}
	})
}

// projectAll projects every row of d with W (for validation).
func (l *linear) projectAll(d *data, workers int) []float64 {
	out := make([]float64, d.n()*l.out)
	parallel(d.n(), workers, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			x := d.row(i)
			g := out[i*l.out : (i+1)*l.out]
			for r := range g {
				g[r] = dot64(l.w[r*l.in:(r+1)*l.in], x)
			}
			if n := math.Sqrt(dot64(g, g)); n > 0 {
				for r := range g {
					g[r] /= n
				}
			}
		}
	})
	return out
}

// tripletObjective is the loss the triplet trainer minimises for one batch
// and fixed triplets: the mean triplet loss plus l2·‖W − W₀‖², pulling the
// projection towards where it started (plain cosine, at full dimension),
// which is what keeps a small site's head from forgetting what the
// encoder knew. It returns the loss and adds its gradient to dw (if not
// nil). The batch must have been projected with forward.
func (l *linear) tripletObjective(d *data, s *batchState, ts []triplet, alpha, l2 float64, w0, dw []float64) (loss float64, active int) {
	clear(s.dg)
	loss, active = tripletLoss(s.g, l.out, ts, alpha, s.dg)
	if dw != nil {
		l.backward(d, s, dw)
	}
	if l2 > 0 {
		for k, w := range l.w {
			diff := w - w0[k]
			loss += l2 * diff * diff
			if dw != nil {
				dw[k] += 2 * l2 * diff
			}
		}
	}
	return loss, active
}

// pkBatch draws a batch for triplets: up to size/perPerson people at
// random among those with several rows, and up to perPerson random rows of
// each, all distinct.
func pkBatch(d *data, multi []int, size, perPerson int, rng *rand.Rand, rows []int) []int {
	rows = rows[:0]
	people := max(2, size/perPerson)
	order := rng.Perm(len(multi))
	for _, k := range order[:min(people, len(order))] {
		mine := d.byPerson[multi[k]]
		take := min(perPerson, len(mine))
		start := len(rows)
		for len(rows)-start < take {
			r := mine[rng.IntN(len(mine))]
			dup := false
			for _, x := range rows[start:] {
				dup = dup || x == r
			}
			if !dup {
				rows = append(rows, r)
			}
		}
	}
	return rows
}
