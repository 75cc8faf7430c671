package learn

import (
	"math"
	"math/rand/v2"
)

// pairModel is the trainable siamese logistic head, in float64: the
// features of a pair (|uₖ − vₖ| or χ²) and the weights w and bias b.
type pairModel struct {
	method  Method
	feature func(u, v float64) float64
	w       []float64 // one per feature
	b       float64
}

func newPairModel(m Method, dim int) *pairModel {
	return &pairModel{method: m, feature: featureFunc(m), w: make([]float64, dim)}
}

// features writes the pair's features to f.
func (m *pairModel) features(u, v, f []float64) {
	for k := range f {
		f[k] = m.feature(u[k], v[k])
	}
}

// fitUniform starts the model as the plain, unweighted distance: every
// weight equal, wₖ = c, so that z = c·Σₖ fₖ + b (the L1 distance for the
// logistic head, the χ² distance for chi2), with c and b the logistic
// regression of the pairs on that one distance (Newton's method: it is
// convex in two unknowns). Training then learns each dimension's
// departure from it, and the regulariser pulls towards it, as the triplet
// projection starts from and is pulled towards plain cosine.
func (m *pairModel) fitUniform(x func(i int) []float64, pairs []pair) {
	s := make([]float64, len(pairs))
	y := make([]float64, len(pairs))
	f := make([]float64, len(m.w))
	var mean float64
	for k, p := range pairs {
		m.features(x(p.i), x(p.j), f)
		for _, v := range f {
			s[k] += v
		}
		mean += s[k]
		if p.same {
			y[k] = 1
		}
	}
	mean /= float64(len(pairs))
	// z = c·(s − mean) + b′ keeps the Newton steps well conditioned.
	var c, b float64
	for range 50 {
		var gc, gb, hcc, hcb, hbb float64
		for k := range s {
			d := s[k] - mean
			p := sigmoid(c*d + b)
			r, w := p-y[k], p*(1-p)
			gc += r * d
			gb += r
			hcc += w * d * d
			hcb += w * d
			hbb += w
		}
		// A little ridge keeps the step finite on separable data.
		hcc += 1e-6
		hbb += 1e-6
		det := hcc*hbb - hcb*hcb
		dc := (hbb*gc - hcb*gb) / det
		db := (hcc*gb - hcb*gc) / det
		c -= dc
		b -= db
		if math.Abs(dc)+math.Abs(db) < 1e-10 {
			break
		}
	}
	for k := range m.w {
		m.w[k] = c
	}
	m.b = b - c*mean
}

// pairBatch is a batch of pairs with their features, one row per pair.
type pairBatch struct {
	dim   int
	pairs []pair
	f     []float64
}

func (pb *pairBatch) fill(x func(i int) []float64, m *pairModel, pairs []pair) {
	pb.pairs = pairs
	pb.f = grow(pb.f, len(pairs)*pb.dim)
	for k, p := range pairs {
		m.features(x(p.i), x(p.j), pb.f[k*pb.dim:(k+1)*pb.dim])
	}
}

// objective is the mean logistic loss of the batch,
// (1/N) Σ [softplus(z) − y·z] with z = w·f + b (that is −log ŷ for a
// genuine pair and −log(1 − ŷ) for an impostor), plus (l2/2)·‖w − w0‖²
// (w0 nil: zero). It returns the loss and the number of pairs on the wrong
// side of ŷ = ½, and adds the gradient to dw and *db when dw is not nil.
func (m *pairModel) objective(pb *pairBatch, l2 float64, w0, dw []float64, db *float64) (loss float64, wrong int) {
	n := float64(len(pb.pairs))
	for k, p := range pb.pairs {
		f := pb.f[k*pb.dim : (k+1)*pb.dim]
		z := dot64(m.w, f) + m.b
		y := 0.0
		if p.same {
			y = 1
		}
		loss += softplus(z) - y*z
		if (z >= 0) != p.same {
			wrong++
		}
		if dw != nil {
			c := (sigmoid(z) - y) / n // ∂loss/∂z
			axpy(c, f, dw)
			*db += c
		}
	}
	loss /= n
	if l2 > 0 {
		for k, w := range m.w {
			d := w
			if w0 != nil {
				d -= w0[k]
			}
			loss += l2 / 2 * d * d
			if dw != nil {
				dw[k] += l2 * d
			}
		}
	}
	return loss, wrong
}

// logit scores a pair in float64.
func (m *pairModel) logit(u, v, scratch []float64) float64 {
	m.features(u, v, scratch)
	return dot64(m.w, scratch) + m.b
}

// balancedPairs draws size pairs, half genuine and half impostor: a
// genuine pair is two distinct rows of a person drawn uniformly among
// those with several rows (so that one person with hundreds of photos
// does not dominate), an impostor pair one row each of two distinct people
// drawn uniformly.
func balancedPairs(d *data, multi []int, size int, rng *rand.Rand, pairs []pair) []pair {
	pairs = pairs[:0]
	people := len(d.byPerson)
	for k := range size {
		if k%2 == 0 {
			rows := d.byPerson[multi[rng.IntN(len(multi))]]
			a := rng.IntN(len(rows))
			b := rng.IntN(len(rows) - 1)
			if b >= a {
				b++
			}
			pairs = append(pairs, pair{rows[a], rows[b], true})
			continue
		}
		p := rng.IntN(people)
		q := rng.IntN(people - 1)
		if q >= p {
			q++
		}
		rp, rq := d.byPerson[p], d.byPerson[q]
		pairs = append(pairs, pair{rp[rng.IntN(len(rp))], rq[rng.IntN(len(rq))], false})
	}
	return pairs
}
