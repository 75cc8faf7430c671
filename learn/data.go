package learn

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/facegate/facegate/verify"
)

// Set is labelled embeddings: Vectors[i] is a face of the person Labels[i].
// All vectors have one length.
type Set struct {
	Vectors [][]float32
	Labels  []string
}

// Add appends one labelled embedding.
func (s *Set) Add(label string, v []float32) {
	s.Vectors = append(s.Vectors, v)
	s.Labels = append(s.Labels, label)
}

// Len is the number of embeddings.
func (s Set) Len() int { return len(s.Vectors) }

// People lists the distinct labels, sorted.
func (s Set) People() []string {
	p := slices.Clone(s.Labels)
	slices.Sort(p)
	return slices.Compact(p)
}

// counts is the number of embeddings of each label.
func (s Set) counts() map[string]int {
	n := make(map[string]int)
	for _, l := range s.Labels {
		n[l]++
	}
	return n
}

// AtLeast keeps the people with at least n embeddings.
func (s Set) AtLeast(n int) Set {
	c := s.counts()
	var out Set
	for i, l := range s.Labels {
		if c[l] >= n {
			out.Add(l, s.Vectors[i])
		}
	}
	return out
}

// SplitPeople holds out a share of the people, with all their embeddings,
// chosen at random with seed: people, not photos, so that validation is on
// faces the training never saw, as the door's will be.
func SplitPeople(s Set, share float64, seed uint64) (train, held Set) {
	people := s.People()
	rng := rand.New(rand.NewPCG(seed, 0x5e1f))
	rng.Shuffle(len(people), func(i, j int) { people[i], people[j] = people[j], people[i] })
	k := int(math.Round(share * float64(len(people))))
	out := make(map[string]bool, k)
	for _, p := range people[:k] {
		out[p] = true
	}
	for i, l := range s.Labels {
		if out[l] {
			held.Add(l, s.Vectors[i])
		} else {
			train.Add(l, s.Vectors[i])
		}
	}
	return train, held
}

// data is a Set in float64, people numbered.
type data struct {
	dim      int
	x        []float64 // n rows of dim
	label    []int
	byPerson [][]int // the rows of each person
}

func newData(s Set) (*data, error) {
	if len(s.Vectors) != len(s.Labels) {
		return nil, fmt.Errorf("learn: %d vectors but %d labels", len(s.Vectors), len(s.Labels))
	}
	if len(s.Vectors) == 0 {
		return nil, errors.New("learn: no embeddings")
	}
	d := &data{dim: len(s.Vectors[0])}
	if d.dim == 0 || d.dim > MaxDim {
		return nil, fmt.Errorf("learn: embeddings of %d dimensions", d.dim)
	}
	d.x = make([]float64, 0, len(s.Vectors)*d.dim)
	d.label = make([]int, len(s.Vectors))
	ids := map[string]int{}
	for i, v := range s.Vectors {
		if len(v) != d.dim {
			return nil, fmt.Errorf("learn: embedding %d of %q has %d dimensions, the first has %d", i, s.Labels[i], len(v), d.dim)
		}
		for _, x := range v {
			if f := float64(x); math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("learn: embedding %d of %q holds %v", i, s.Labels[i], x)
			}
			d.x = append(d.x, float64(x))
		}
		id, ok := ids[s.Labels[i]]
		if !ok {
			id = len(d.byPerson)
			ids[s.Labels[i]] = id
			d.byPerson = append(d.byPerson, nil)
		}
		d.label[i] = id
		d.byPerson[id] = append(d.byPerson[id], i)
	}
	return d, nil
}

func (d *data) n() int              { return len(d.label) }
func (d *data) row(i int) []float64 { return d.x[i*d.dim : (i+1)*d.dim] }

// multi lists the people with at least two rows: only they give positives.
func (d *data) multi() []int {
	var p []int
	for id, rows := range d.byPerson {
		if len(rows) >= 2 {
			p = append(p, id)
		}
	}
	return p
}

// pair is two rows of a data set.
type pair struct {
	i, j int
	same bool
}

// evalPairs is a fixed, balanced set of pairs to measure a head on: for
// each person with several rows, up to perPerson of their genuine pairs
// (all of them when they have fewer), so that no one person dominates;
// then as many impostor pairs, each of two rows of different people drawn
// at random. It is empty when there are fewer than two people or no
// genuine pair.
func evalPairs(d *data, perPerson int, seed uint64) []pair {
	rng := rand.New(rand.NewPCG(seed, 0xe7a1))
	var pairs []pair
	for _, rows := range d.byPerson {
		n := len(rows)
		if n < 2 {
			continue
		}
		if all := n * (n - 1) / 2; all <= perPerson {
			for a := 0; a < n; a++ {
				for b := a + 1; b < n; b++ {
					pairs = append(pairs, pair{rows[a], rows[b], true})
				}
			}
			continue
		}
		seen := map[[2]int]bool{}
		for len(seen) < perPerson {
			a, b := rng.IntN(n), rng.IntN(n)
			if a == b {
				continue
			}
			a, b = min(a, b), max(a, b)
			if !seen[[2]int{a, b}] {
				seen[[2]int{a, b}] = true
				pairs = append(pairs, pair{rows[a], rows[b], true})
			}
		}
	}
	if len(pairs) == 0 || len(d.byPerson) < 2 {
		return nil
	}
	for range len(pairs) {
		var i, j int
		for {
			i, j = rng.IntN(d.n()), rng.IntN(d.n())
			if d.label[i] != d.label[j] {
				break
			}
		}
		pairs = append(pairs, pair{i, j, false})
	}
	return pairs
}

// Metrics measure a head on a balanced set of pairs.
type Metrics struct {
	Pairs       int     `json:"pairs"`
	Accuracy    float64 `json:"accuracy"` // 10-fold, each fold at the threshold best on the other nine
	EER         float64 `json:"eer"`
	TARAtFAR1e2 float64 `json:"tar_at_far_1e-2"`
	TARAtFAR1e3 float64 `json:"tar_at_far_1e-3"`
	Threshold   float64 `json:"threshold"` // the accuracy-maximising threshold over all pairs
}

// measure scores pairs with score and evaluates them as verify does with
// LFW: pairs are dealt into 10 folds.
func measure(pairs []pair, score func(i, j int) float64) (Metrics, error) {
	if len(pairs) == 0 {
		return Metrics{}, errors.New("learn: no pairs to measure on")
	}
	scores := make([]verify.Score, len(pairs))
	for k, p := range pairs {
		scores[k] = verify.Score{Similarity: score(p.i, p.j), Same: p.same, Fold: k % 10}
	}
	r, err := verify.Evaluate(scores)
	if err != nil {
		return Metrics{}, err
	}
	return Metrics{Pairs: r.Pairs, Accuracy: r.Accuracy, EER: r.EER, TARAtFAR1e2: r.TARAtFAR1e2, TARAtFAR1e3: r.TARAtFAR1e3, Threshold: r.Threshold}, nil
}

// better reports whether a is a better validation result than b: higher
// accuracy, then lower EER, then higher TAR at FAR 1e-3.
func better(a, b Metrics) bool {
	if c := cmp.Compare(a.Accuracy, b.Accuracy); c != 0 {
		return c > 0
	}
	if c := cmp.Compare(a.EER, b.EER); c != 0 {
		return c < 0
	}
	return a.TARAtFAR1e3 > b.TARAtFAR1e3
}

// valPairsPerPerson caps each held-out person's genuine pairs.
const valPairsPerPerson = 20
