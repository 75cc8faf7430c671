package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/facegate/facegate/learn"
	"github.com/facegate/facegate/store"
	"github.com/facegate/facegate/verify"
)

// Roster is the gallery the door searches, the records of the people in
// it (active flag, validity) and how faces are scored against it, read
// together from the store.
type Roster struct {
	// Gallery holds the templates as the scoring compares them: prepared
	// by the active head (projected, for a triplet head).
	Gallery *verify.Gallery
	People  map[string]store.Person
	Scoring Scoring
	head    learn.Head                     // nil: plain cosine
	score   func(q, row []float32) float32 // a pair head's ScorePrepared; nil when scored by cosine
}

// Scoring says how a Roster compares faces.
type Scoring struct {
	Head   string       // the active head in use; "" for plain cosine
	Method learn.Method // cosine, triplet, logistic or chi2
	// Threshold is the head's door threshold (from facegate calibrate);
	// 0 with plain cosine and no calibration: the policy's own.
	Threshold float32
	// Warnings say why an active head is not used, or how far to trust
	// its threshold; the daemon logs them and identify prints them.
	Warnings []string
}

// LoadRoster reads every template of model into a searchable gallery, with
// the model's active head. A person with several templates is searched by
// their mean: on LFW it let fewer strangers in than best-of at the same
// threshold, for as many enrolled people recognised (README).
//
// An active head is used only with a door calibration (facegate calibrate
// sets one), because the threshold training leaves on a head is the one
// best for 1:1 accuracy, far too lax for a door that compares each face
// with everyone. Without one, or when the head cannot be read or does not
// fit the templates, the roster scores by plain cosine and says why in
// Scoring.Warnings: the door keeps working at its built-in threshold.
func LoadRoster(ctx context.Context, db *store.DB, model string, dim int) (*Roster, error) {
	version, people, templates, err := db.Gallery(ctx, model)
	if err != nil {
		return nil, err
	}
	stored, active, err := db.ActiveHead(ctx, model)
	if err != nil {
		return nil, err
	}
	r := &Roster{People: make(map[string]store.Person, len(people)), Scoring: Scoring{Method: learn.Cosine}}
	if active {
		h, cal, err := doorHead(stored, dim)
		if err != nil {
			r.Scoring.Warnings = append(r.Scoring.Warnings, fmt.Sprintf("active head %q is not used, faces are scored by plain cosine: %v", stored.Name, err))
		} else {
			r.head, r.Scoring = h, doorScoring(stored.Name, h.Method(), cal, len(people))
		}
	}
	gdim := dim
	prepare := func(x []float32) []float32 { return x }
	if r.head != nil {
		gdim = r.head.PreparedDim()
		prepare = func(x []float32) []float32 { return r.head.Prepare(nil, x) }
		if !r.head.ByCosine() {
			r.score = r.head.ScorePrepared
		}
	}
	enrolled := make([]verify.Enrolled, len(people))
	index := make(map[string]int, len(people))
	for i, p := range people {
		enrolled[i] = verify.Enrolled{ID: p.ID, Name: p.Name}
		index[p.ID] = i
		r.People[p.ID] = p
	}
	for _, t := range templates {
		i, ok := index[t.Person]
		if !ok {
			return nil, fmt.Errorf("gallery: template %d of unknown person %s", t.ID, t.Person)
		}
		if len(t.Vector) != dim {
			return nil, fmt.Errorf("gallery: person %s has a template of length %d, want %d", t.Person, len(t.Vector), dim)
		}
		enrolled[i].Templates = append(enrolled[i].Templates, prepare(t.Vector))
	}
	r.Gallery, err = verify.NewGallery(model, gdim, enrolled, verify.MeanTemplate, version)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// ThresholdOr is the threshold a match needs: the head's, or plain when
// faces are scored by plain cosine without one.
func (s Scoring) ThresholdOr(plain float32) float32 {
	if s.Threshold != 0 {
		return s.Threshold
	}
	return plain
}

// DoorHead decodes a stored head and its door calibration, and says why
// the door must not use it (see learn.DoorCalibration.Check).
func DoorHead(stored store.Head) (learn.Head, *learn.DoorCalibration, error) {
	h, err := learn.Decode(stored.Blob)
	if err != nil {
		return nil, nil, err
	}
	m, err := learn.ReadHeadMetrics(stored.Metrics)
	if err != nil {
		return nil, nil, err
	}
	if m.Door == nil {
		return nil, nil, errors.New("it has no door threshold (facegate calibrate --head " + stored.Name + ")")
	}
	if err := m.Door.Check(h.Method()); err != nil {
		return nil, nil, err
	}
	return h, m.Door, nil
}

// doorHead is DoorHead for embeddings of dim elements.
func doorHead(stored store.Head, dim int) (learn.Head, *learn.DoorCalibration, error) {
	h, cal, err := DoorHead(stored)
	if err == nil && h.Dim() != dim {
		err = fmt.Errorf("it takes %d-dimensional embeddings, the encoder makes %d", h.Dim(), dim)
	}
	return h, cal, err
}

// doorScoring is the scoring of a calibrated head at a door of people.
func doorScoring(name string, method learn.Method, cal *learn.DoorCalibration, people int) Scoring {
	s := Scoring{Head: name, Method: method, Threshold: cal.Threshold}
	// Only plain cosine gets here unresolved (Check): it has a measured
	// 1:N threshold, and an unresolved calibration never lowers the bar below it.
	if !cal.Resolved && s.Threshold < verify.IdentifyThreshold {
		s.Threshold = verify.IdentifyThreshold
		s.Warnings = append(s.Warnings, fmt.Sprintf("head %q: %d impostor pairs cannot resolve a stranger rate of %.0g with %d people; keeping the built-in threshold %.2f, above the unresolved calibration's %.4f",
			name, cal.Impostors, cal.StrangerFAR, cal.People, verify.IdentifyThreshold, cal.Threshold))
	}
	if people > cal.People {
		s.Warnings = append(s.Warnings, fmt.Sprintf("head %q was calibrated with %d people enrolled, now %d: a stranger may match someone with probability up to about %.1g rather than %.0g; run facegate calibrate again",
			name, cal.People, people, cal.StrangerFAR*float64(people)/float64(cal.People), cal.StrangerFAR))
	}
	return s
}

// QueryLen is the length of the buffer Search needs to prepare a face.
func (r *Roster) QueryLen() int {
	if r.head == nil {
		return 0
	}
	return r.head.PreparedDim()
}

// Search finds the best and runner-up person for an embedding, scored as
// the roster scores. buf must hold QueryLen elements (nil makes one); with
// it, a search allocates nothing.
func (r *Roster) Search(q verify.Embedding, buf []float32) (verify.Match, error) {
	if r.head == nil {
		return r.Gallery.Search(q)
	}
	if len(q.Vector) != r.head.Dim() {
		return verify.Match{Person: -1, RunnerUp: -1}, fmt.Errorf("gallery: query of length %d, the head takes %d", len(q.Vector), r.head.Dim())
	}
	q.Vector = r.head.Prepare(buf, q.Vector)
	if r.score == nil {
		return r.Gallery.Search(q)
	}
	return r.Gallery.SearchFunc(q, r.score)
}
