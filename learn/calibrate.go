package learn

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Calibration is the operating point chosen for a target false-accept rate.
type Calibration struct {
	TargetFAR float64 `json:"target_far"`
	Threshold float32 `json:"threshold"` // accept a pair when its score is >= this
	FAR       float64 `json:"far"`       // on the impostor pairs, at Threshold
	FRR       float64 `json:"frr"`       // on the genuine pairs, at Threshold
	Impostors int     `json:"impostor_pairs"`
	Genuine   int     `json:"genuine_pairs"`
	// Resolved is false when there are fewer than 1/TargetFAR impostor
	// pairs: the FAR cannot be measured that finely, and Threshold is the
	// lowest that accepts none of them.
	Resolved bool `json:"resolved"`
}

// Scores are a head's genuine and impostor pair scores, ready to
// calibrate at any rate: the impostor scores are sorted once.
type Scores struct {
	genuine  []float32
	impostor []float32 // descending
}

// NewScores checks and keeps the scores (the impostors in a sorted copy).
// Scores are compared as a Head computes them, in float32.
func NewScores(genuine, impostor []float32) (*Scores, error) {
	if len(genuine) == 0 || len(impostor) == 0 {
		return nil, fmt.Errorf("learn: calibrate on %d genuine and %d impostor pairs: need both", len(genuine), len(impostor))
	}
	for _, s := range slices.Concat(genuine, impostor) {
		if math.IsNaN(float64(s)) {
			return nil, errors.New("learn: calibrate: a score is NaN")
		}
	}
	imp := slices.Clone(impostor)
	slices.SortFunc(imp, func(a, b float32) int { return cmp.Compare(b, a) })
	return &Scores{genuine: genuine, impostor: imp}, nil
}

// Calibrate chooses the lowest threshold whose false-accept rate on the
// impostor scores is at most far (ties at a threshold are rejected
// together, so the rate reached may be lower), and reports the
// false-reject rate of the genuine scores there.
func (s *Scores) Calibrate(far float64) (Calibration, error) {
	if !(far > 0 && far < 1) {
		return Calibration{}, fmt.Errorf("learn: target FAR %g: must be between 0 and 1", far)
	}
	imp := s.impostor
	n := len(imp)
	allowed := int(math.Floor(far*float64(n) + 1e-9)) // false accepts the target allows
	c := Calibration{TargetFAR: far, Impostors: n, Genuine: len(s.genuine), Resolved: far*float64(n) >= 1-1e-9}
	// Reject the (allowed+1)-th highest impostor score and everything below.
	c.Threshold = math.Nextafter32(imp[min(allowed, n-1)], float32(math.Inf(1)))
	// The impostors accepted lead the descending slice: count up to the first below Threshold.
	fa, _ := slices.BinarySearchFunc(imp, c.Threshold, func(x, t float32) int {
		if x >= t {
			return -1
		}
		return 1
	})
	var fr int
	for _, g := range s.genuine {
		if g < c.Threshold {
			fr++
		}
	}
	c.FAR = float64(fa) / float64(n)
	c.FRR = float64(fr) / float64(len(s.genuine))
	return c, nil
}

// CalibrateDoor chooses the threshold at which a stranger compared with
// each of people enrolled people passes any comparison with probability
// at most far (a union bound over the comparisons).
func (s *Scores) CalibrateDoor(far float64, people int) (DoorCalibration, error) {
	if people < 1 {
		return DoorCalibration{}, fmt.Errorf("learn: calibrate a door of %d people", people)
	}
	if !(far > 0 && far < 1) {
		return DoorCalibration{}, fmt.Errorf("learn: target FAR %g: must be between 0 and 1", far)
	}
	c, err := s.Calibrate(far / float64(people))
	return DoorCalibration{People: people, StrangerFAR: far, Calibration: c}, err
}

// Calibrate is NewScores(genuine, impostor).Calibrate(far).
func Calibrate(genuine, impostor []float32, far float64) (Calibration, error) {
	if !(far > 0 && far < 1) {
		return Calibration{}, fmt.Errorf("learn: target FAR %g: must be between 0 and 1", far)
	}
	s, err := NewScores(genuine, impostor)
	if err != nil {
		return Calibration{}, err
	}
	return s.Calibrate(far)
}

// PairScores scores, with h, every genuine pair of s (two embeddings of
// one person) and every impostor pair (of two people), or maxImpostors of
// the impostor pairs drawn at random with seed when there are more.
// Each embedding is prepared once.
func PairScores(h Head, s Set, maxImpostors int, seed uint64) (genuine, impostor []float32, err error) {
	if len(s.Vectors) != len(s.Labels) {
		return nil, nil, fmt.Errorf("learn: %d vectors but %d labels", len(s.Vectors), len(s.Labels))
	}
	for i, v := range s.Vectors {
		if len(v) != h.Dim() {
			return nil, nil, fmt.Errorf("learn: embedding %d of %q has %d dimensions, the head takes %d", i, s.Labels[i], len(v), h.Dim())
		}
	}
	vecs := make([][]float32, len(s.Vectors))
	for i, v := range s.Vectors {
		vecs[i] = h.Prepare(nil, v)
	}
	score := h.ScorePrepared // exactly what Score computes, without preparing each pair again
	n := len(vecs)
	pairsTotal := n * (n - 1) / 2
	var sameTotal int
	counts := s.counts()
	for _, c := range counts {
		sameTotal += c * (c - 1) / 2
	}
	if pairsTotal-sameTotal <= maxImpostors || maxImpostors <= 0 {
		for i := range n {
			for j := i + 1; j < n; j++ {
				sc := score(vecs[i], vecs[j])
				if s.Labels[i] == s.Labels[j] {
					genuine = append(genuine, sc)
				} else {
					impostor = append(impostor, sc)
				}
			}
		}
		return genuine, impostor, nil
	}
	for i := range n {
		for j := i + 1; j < n; j++ {
			if s.Labels[i] == s.Labels[j] {
				genuine = append(genuine, score(vecs[i], vecs[j]))
			}
		}
	}
	if len(counts) < 2 {
		return genuine, nil, nil
	}
	rng := rand.New(rand.NewPCG(seed, 0xca1))
	for len(impostor) < maxImpostors {
		i, j := rng.IntN(n), rng.IntN(n)
		if s.Labels[i] != s.Labels[j] {
			impostor = append(impostor, score(vecs[i], vecs[j]))
		}
	}
	return genuine, impostor, nil
}

// DoorCalibration is a head's threshold for identification at a door,
// where each face is compared with every one of People enrolled people. A
// stranger is let in when any comparison passes, so for a stranger to
// pass with probability at most StrangerFAR, each comparison must pass
// with at most StrangerFAR/People: the embedded Calibration is at that
// per-comparison target.
type DoorCalibration struct {
	People      int     `json:"people"`
	StrangerFAR float64 `json:"stranger_far"`
	Calibration
}

// Check says why a head of method m must not be used at a door with this
// calibration: a threshold outside (0, 1] (at or below 0, plain cosine
// would let in anyone not opposite to someone enrolled; an unresolved
// cosine threshold is raised to the door's floor instead), or, for a
// learned head, a threshold the impostor pairs could not resolve. A
// learned head's scores have no known floor to fall back on (a pair
// head trained on a few people scores strangers near 0, so the highest
// impostor seen can be 1e-27), whereas plain cosine has a measured 1:N
// threshold the door keeps as its floor.
func (c DoorCalibration) Check(m Method) error {
	switch {
	case c.People < 1:
		return fmt.Errorf("its door calibration is for %d people", c.People)
	case !(c.Threshold <= 1) || c.Threshold <= 0 && c.Resolved:
		return fmt.Errorf("its door threshold %v is outside (0, 1]", c.Threshold)
	case !c.Resolved && m != Cosine:
		return fmt.Errorf("its door threshold is unresolved: a stranger rate of %.0e with %d people needs %.0f impostor pairs, it was calibrated on %d (calibrate with more people, or a higher --far)",
			c.StrangerFAR, c.People, math.Ceil(float64(c.People)/c.StrangerFAR), c.Impostors)
	}
	return nil
}

// HeadMetrics is what facegate train and facegate calibrate record with a
// stored head (its metrics JSON) that others read back: the held-out
// measurement next to plain cosine's, the 1:1 calibration and the door's.
type HeadMetrics struct {
	Validation       *Metrics         `json:"validation,omitempty"`
	CosineValidation *Metrics         `json:"cosine_validation,omitempty"`
	Calibration      *Calibration     `json:"calibration,omitempty"`
	Door             *DoorCalibration `json:"door,omitempty"`
}

// ReadHeadMetrics reads a stored head's metrics JSON; empty reads as none.
func ReadHeadMetrics(raw []byte) (HeadMetrics, error) {
	var m HeadMetrics
	if len(raw) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return HeadMetrics{}, fmt.Errorf("metrics: %w", err)
	}
	return m, nil
}
