package verify

import (
	"errors"
	"fmt"
	"math"
)

// Combine says how a person with several templates is scored.
type Combine int

const (
	// BestOf scores a person by their most similar template.
	BestOf Combine = iota
	// MeanTemplate scores a person by the normalised mean of their templates.
	MeanTemplate
)

// Enrolled is one person's templates as the gallery receives them.
type Enrolled struct {
	ID, Name  string
	Templates [][]float32 // unit vectors of the gallery's model
}

// Match is the answer to one search.
type Match struct {
	Person        int     // index for Gallery.Person; -1 when the gallery is empty
	Score         float32 // cosine similarity of the best person
	RunnerUp      int     // the next-best other person; -1 when there is none
	RunnerUpScore float32 // 0 when there is none
}

// Margin is how far the best person leads the runner-up; the whole score
// when there is no runner-up.
func (m Match) Margin() float32 {
	if m.RunnerUp < 0 {
		return m.Score
	}
	return m.Score - m.RunnerUpScore
}

// Gallery answers 1:N searches exactly over every template of the enrolled
// people. Vectors are kept in one contiguous float32 array so a search
// streams memory once and allocates nothing. A Gallery is immutable after
// NewGallery, so any number of goroutines may search it at once; to change
// it, build a new one and swap it in.
type Gallery struct {
	model   string
	dim     int
	vecs    []float32 // row i is template i
	owner   []int32   // person index of each row
	ids     []string
	names   []string
	version int64
}

// NewGallery builds a gallery of the given model and embedding length.
// version is the store's gallery version it was read at.
func NewGallery(model string, dim int, people []Enrolled, combine Combine, version int64) (*Gallery, error) {
	if dim <= 0 {
		return nil, fmt.Errorf("gallery: embedding length %d", dim)
	}
	g := &Gallery{model: model, dim: dim, version: version}
	for _, p := range people {
		if len(p.Templates) == 0 {
			continue
		}
		for _, t := range p.Templates {
			if len(t) != dim {
				return nil, fmt.Errorf("gallery: person %s has a template of length %d, want %d", p.ID, len(t), dim)
			}
		}
		rows := p.Templates
		if combine == MeanTemplate {
			mean := make([]float32, dim)
			for _, t := range p.Templates {
				for k, v := range t {
					mean[k] += v
				}
			}
			if err := normalize(mean); err != nil {
				return nil, fmt.Errorf("gallery: person %s: %w", p.ID, err)
			}
			rows = [][]float32{mean}
		}
		for _, t := range rows {
			g.vecs = append(g.vecs, t...)
			g.owner = append(g.owner, int32(len(g.ids)))
		}
		g.ids = append(g.ids, p.ID)
		g.names = append(g.names, p.Name)
	}
	return g, nil
}

// Len is the number of people.
func (g *Gallery) Len() int { return len(g.ids) }

// Templates is the number of rows a search compares.
func (g *Gallery) Templates() int { return len(g.owner) }

// Bytes is the memory the gallery's vectors and row owners take.
func (g *Gallery) Bytes() int { return 4*len(g.vecs) + 4*len(g.owner) }

// Version is the store's gallery version this gallery was built from.
func (g *Gallery) Version() int64 { return g.version }

// Model is the encoder identity of the gallery's templates.
func (g *Gallery) Model() string { return g.model }

// Person returns the id and name of person i of a Match.
func (g *Gallery) Person(i int) (id, name string) { return g.ids[i], g.names[i] }

// ErrEmptyGallery is returned by Search when nobody is enrolled.
var ErrEmptyGallery = errors.New("gallery: nobody is enrolled")

// SearchFunc is Search with another scoring of a query against a row, for
// scores that are not a dot product (a learned pair head). score must
// not retain its arguments. It is plain Go, so slower than Search's
// kernel; it allocates nothing unless score does.
func (g *Gallery) SearchFunc(q Embedding, score func(q, row []float32) float32) (Match, error) {
	none := Match{Person: -1, RunnerUp: -1}
	if err := g.checkQuery(q); err != nil {
		return none, err
	}
	// The same top-two-people rule as the kernel in search.c.
	p1, p2 := -1, -1
	s1, s2 := float32(math.Inf(-1)), float32(math.Inf(-1))
	for i, owner := range g.owner {
		s, p := score(q.Vector, g.vecs[i*g.dim:(i+1)*g.dim]), int(owner)
		switch {
		case p == p1:
			s1 = max(s1, s)
		case s > s1:
			if p1 >= 0 {
				p2, s2 = p1, s1
			}
			p1, s1 = p, s
		case p == p2:
			s2 = max(s2, s)
		case s > s2:
			p2, s2 = p, s
		}
	}
	m := Match{Person: p1, Score: s1, RunnerUp: p2, RunnerUpScore: s2}
	if m.RunnerUp < 0 {
		m.RunnerUpScore = 0
	}
	return m, nil
}

func (g *Gallery) checkQuery(q Embedding) error {
	if q.Model != g.model {
		return fmt.Errorf("gallery: query embedding of model %s, gallery of %s: re-enroll with one model", short(q.Model), short(g.model))
	}
	if len(q.Vector) != g.dim {
		return fmt.Errorf("gallery: query of length %d, gallery of %d", len(q.Vector), g.dim)
	}
	if len(g.owner) == 0 {
		return ErrEmptyGallery
	}
	return nil
}

// Search finds the most similar person and the most similar other person,
// each scored by their best template. It refuses an embedding of another
// model or length.
func (g *Gallery) Search(q Embedding) (Match, error) {
	if err := g.checkQuery(q); err != nil {
		return Match{Person: -1, RunnerUp: -1}, err
	}
	var m Match
	m.Person, m.Score, m.RunnerUp, m.RunnerUpScore = searchRows(q.Vector, g.vecs, g.owner, g.dim)
	if m.RunnerUp < 0 {
		m.RunnerUpScore = 0
	}
	return m, nil
}
