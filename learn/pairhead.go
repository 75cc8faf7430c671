package learn

import "math"

// Chi2Epsilon is the ε in the χ² feature's denominator; see chi2Feature.
const Chi2Epsilon = 1e-6

// chi2Feature is the χ² term of one component of two embeddings.
//
// DeepFace computes (xᵢₖ − xⱼₖ)² / (xᵢₖ + xⱼₖ) on ReLU outputs, which are
// never negative. facegate's embeddings are unit vectors with components
// of either sign, so xᵢₖ + xⱼₖ can be zero or negative and the plain
// formula would divide by zero or flip the term's sign. We divide by
// |xᵢₖ| + |xⱼₖ| + ε instead:
//
//   - when both components have the same sign it is the classic χ² term of
//     their magnitudes (sign-symmetric: x and −x are treated alike);
//   - when the signs differ, (xᵢₖ − xⱼₖ)² = (|xᵢₖ| + |xⱼₖ|)², so the term is
//     |xᵢₖ − xⱼₖ|, the L1 term;
//   - in every case 0 ≤ term ≤ |xᵢₖ − xⱼₖ| ≤ 2, because |xᵢₖ − xⱼₖ| ≤
//     |xᵢₖ| + |xⱼₖ|: the feature cannot blow up, and ε (1e-6, far below the
//     ~0.04 a component of a 512-d unit vector typically has) only turns the
//     0/0 of two zero components into 0.
//
// Shifting the embeddings to be non-negative (x + 1) was the alternative;
// it makes every denominator about 2, so for 512-d unit vectors the feature
// degenerates into a scaled squared difference and loses what χ² adds.
func chi2Feature(u, v float64) float64 {
	d := u - v
	return d * d / (math.Abs(u) + math.Abs(v) + Chi2Epsilon)
}

// l1Feature is the logistic head's feature: |u − v|.
func l1Feature(u, v float64) float64 { return math.Abs(u - v) }

func featureFunc(m Method) func(u, v float64) float64 {
	if m == Chi2 {
		return chi2Feature
	}
	return l1Feature
}

// pairHead is the siamese binary classifier ŷ = σ(Σₖ wₖ·fₖ + b), with f
// the logistic head's |uₖ − vₖ| or the χ² head's features of u = g(xᵢ) and
// v = g(xⱼ), where g is an optional fixed projection (identity when nil).
type pairHead struct {
	method    Method
	dim       int
	proj      *projection // nil: features of the embeddings themselves
	w         []float32
	b         float32
	eps       float32
	threshold float32
}

func (h *pairHead) Method() Method     { return h.method }
func (h *pairHead) Dim() int           { return h.dim }
func (h *pairHead) Threshold() float32 { return h.threshold }

// Score is ŷ, the probability that a and b show the same person. It is
// computed in float64 and rounded: pairs with a logit above about 17 all
// score 1.
func (h *pairHead) Score(a, b []float32) float32 {
	a, b = a[:h.dim], b[:h.dim]
	if h.proj != nil {
		a, b = h.proj.apply(nil, a), h.proj.apply(nil, b)
	}
	return h.ScorePrepared(a, b)
}

// Prepare applies the head's projection, if it has one.
func (h *pairHead) Prepare(dst, x []float32) []float32 {
	if h.proj != nil {
		return h.proj.apply(dst, x)
	}
	return append(dst[:0], x[:h.dim]...)
}

func (h *pairHead) PreparedDim() int {
	if h.proj != nil {
		return h.proj.out
	}
	return h.dim
}

func (h *pairHead) ScorePrepared(u, v []float32) float32 { return float32(sigmoid(h.logit(u, v))) }
func (h *pairHead) ByCosine() bool                       { return false }

func (h *pairHead) logit(u, v []float32) float64 {
	z := float64(h.b)
	w := h.w[:len(u)]
	v = v[:len(u)]
	if h.method == Chi2 {
		eps := float64(h.eps)
		for k, x := range u {
			a, b := float64(x), float64(v[k])
			d := a - b
			z += float64(w[k]) * (d * d / (math.Abs(a) + math.Abs(b) + eps))
		}
		return z
	}
	for k, x := range u {
		z += float64(w[k]) * math.Abs(float64(x)-float64(v[k]))
	}
	return z
}

func (h *pairHead) WithThreshold(t float32) Head {
	c := *h
	c.threshold = t
	return &c
}

func (h *pairHead) MarshalBinary() ([]byte, error) {
	e := newEncoder(h.method, h.dim, h.threshold)
	if h.proj != nil {
		e.b = append(e.b, 1)
		h.proj.encode(e)
	} else {
		e.b = append(e.b, 0)
	}
	e.u32(len(h.w))
	e.floats(h.w)
	e.f32(h.b)
	e.f32(h.eps)
	return e.finish(), nil
}

// sigmoid is σ(z) = 1/(1+e^−z), without overflow for large |z|.
func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// softplus is log(1+e^z), without overflow: −log σ(−z).
func softplus(z float64) float64 {
	if z > 0 {
		return z + math.Log1p(math.Exp(-z))
	}
	return math.Log1p(math.Exp(z))
}
