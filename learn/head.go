// Package learn adapts face matching to a site's own people without
// retraining the encoder: it works on stored embeddings only.
//
// Three methods, after the ideas facegate rests on:
//
//   - triplet: a linear projection g(x) = Wx/‖Wx‖ of the encoder's embedding,
//     trained with FaceNet's triplet loss, Σ max(‖g(a)−g(p)‖² − ‖g(a)−g(n)‖² + α, 0),
//     on triplets mined online inside each mini-batch (semi-hard, hardest
//     or random negatives). Pairs are then scored by the cosine of their
//     projections.
//   - logistic: DeepFace's siamese binary classifier on pairs,
//     ŷ = σ(Σₖ wₖ·|xᵢₖ − xⱼₖ| + b), trained with the logistic loss on
//     balanced same/different pairs.
//   - chi2: the same classifier on χ² features (xᵢₖ − xⱼₖ)² / (|xᵢₖ| + |xⱼₖ| + ε);
//     see chi2Feature for why the denominator takes absolute values.
//
// Training runs in float64; a trained Head scores in float32. Calibrate
// picks a Head's operating threshold for a target false-accept rate.
package learn

import (
	"fmt"

	"github.com/facegate/facegate/verify"
)

// Head scores a pair of embeddings of the encoder it was trained for:
// higher means more alike, and a pair is taken for the same person when
// its score is at least Threshold. a and b must have Dim elements.
//
// For 1:N search a head is used in two steps, so that the gallery is
// mapped once and a search allocates nothing: Prepare maps each template
// when the gallery is loaded and the face once per search, and
// ScorePrepared compares two prepared vectors. Score(a, b) is
// ScorePrepared(Prepare(a), Prepare(b)).
type Head interface {
	Method() Method
	// Dim is the length of the embeddings the head takes.
	Dim() int
	Score(a, b []float32) float32
	Threshold() float32
	// WithThreshold is a copy of the head with another threshold.
	WithThreshold(t float32) Head
	// MarshalBinary serialises the head; Decode reads it back.
	MarshalBinary() ([]byte, error)

	// Prepare writes what ScorePrepared compares of x to dst (grown to
	// PreparedDim elements) and returns it: a unit vector.
	Prepare(dst, x []float32) []float32
	PreparedDim() int
	// ScorePrepared scores two prepared vectors without allocating.
	ScorePrepared(u, v []float32) float32
	// ByCosine reports whether ScorePrepared is the dot product (plain
	// cosine, triplet projections): a gallery of prepared vectors is then
	// searched by verify.Gallery's kernel as it is.
	ByCosine() bool
}

// Method is a way of scoring pairs.
type Method string

// The methods.
const (
	Cosine   Method = "cosine"   // plain cosine similarity of the encoder's embeddings
	Triplet  Method = "triplet"  // cosine after a projection trained with the triplet loss
	Logistic Method = "logistic" // siamese logistic head on |xᵢ − xⱼ|
	Chi2     Method = "chi2"     // siamese logistic head on χ² features
)

// ParseMethod reads a method name.
func ParseMethod(s string) (Method, error) {
	switch m := Method(s); m {
	case Cosine, Triplet, Logistic, Chi2:
		return m, nil
	}
	return "", fmt.Errorf("method %q: want triplet, logistic, chi2 or cosine", s)
}

// NewCosine is plain cosine similarity on embeddings of dim elements, as
// a Head with the given threshold.
func NewCosine(dim int, threshold float32) Head {
	return &cosineHead{dim: dim, threshold: threshold}
}

// cosineHead is plain cosine similarity with a threshold.
type cosineHead struct {
	dim       int
	threshold float32
}

func (h *cosineHead) Method() Method     { return Cosine }
func (h *cosineHead) Dim() int           { return h.dim }
func (h *cosineHead) Threshold() float32 { return h.threshold }

func (h *cosineHead) Score(a, b []float32) float32 { return verify.Dot(a[:h.dim], b[:h.dim]) }

func (h *cosineHead) WithThreshold(t float32) Head {
	c := *h
	c.threshold = t
	return &c
}

func (h *cosineHead) Prepare(dst, x []float32) []float32 {
	return append(dst[:0], x[:h.dim]...)
}

func (h *cosineHead) PreparedDim() int                     { return h.dim }
func (h *cosineHead) ScorePrepared(u, v []float32) float32 { return verify.Dot(u, v) }
func (h *cosineHead) ByCosine() bool                       { return true }

func (h *cosineHead) MarshalBinary() ([]byte, error) {
	e := newEncoder(Cosine, h.dim, h.threshold)
	return e.finish(), nil
}
