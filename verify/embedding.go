package verify

import (
	"errors"
	"fmt"
	"math"
)

// Embedding is an L2-normalised face encoding and the identity of the model
// that made it. Encodings of different models live in different spaces and
// must never be compared.
type Embedding struct {
	Model  string    // the encoder's identity: its file's sha256
	Vector []float32 // unit length
}

// NewEmbedding copies v, normalises it to unit length and tags it with model.
func NewEmbedding(model string, v []float32) (Embedding, error) {
	e := Embedding{Model: model, Vector: make([]float32, len(v))}
	copy(e.Vector, v)
	if err := normalize(e.Vector); err != nil {
		return Embedding{}, err
	}
	return e, nil
}

func normalize(v []float32) error {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 || math.IsNaN(ss) || math.IsInf(ss, 0) {
		return errors.New("embedding: vector has no direction (zero, NaN or Inf)")
	}
	inv := float32(1 / math.Sqrt(ss))
	for i := range v {
		v[i] *= inv
	}
	return nil
}

// Cosine is the cosine similarity of two embeddings of the same model, in
// [-1, 1]. It refuses embeddings of different models or lengths.
func Cosine(a, b Embedding) (float32, error) {
	if a.Model != b.Model {
		return 0, fmt.Errorf("compare embeddings of different models (%s and %s): re-encode with one model", short(a.Model), short(b.Model))
	}
	if len(a.Vector) != len(b.Vector) {
		return 0, fmt.Errorf("compare embeddings of different lengths (%d and %d)", len(a.Vector), len(b.Vector))
	}
	return Dot(a.Vector, b.Vector), nil
}

// Dot is the dot product of two equal-length vectors; for unit vectors it is
// their cosine similarity.
func Dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

func short(model string) string {
	if len(model) > 12 {
		return model[:12]
	}
	return model
}

// DefaultThreshold is the cosine similarity at or above which two faces are
// taken for the same person: the operating threshold facegate eval reports
// on LFW's pairsDevTest (0.3027, the accuracy-maximising cut; see README).
// It is a 1:1 threshold: for 1:N identification use IdentifyThreshold.
const DefaultThreshold = 0.30

// IdentifyThreshold is the similarity a face needs to be taken for an
// enrolled person at the door and by identify. One-to-many search multiplies
// the chances of a false match by the number of people enrolled: at 0.30, 65 %
// of strangers matched someone among 496 one-shot enrolled LFW people. With
// a 0.05 margin, measured on LFW's View 1 test people (lfw_ident_test.go):
// 0.45 let 1.4 % of strangers in, 0.50 0.16 %, 0.55 none of 1,215, while
// 90 % of single LFW photos of enrolled people still passed (webcam frames
// of an enrolled man scored 0.58 to 0.97). Calibrate per site when you can.
const IdentifyThreshold = 0.55
