package daemon

import (
	"context"
	"fmt"
	"image"
	"sync/atomic"
	"time"

	"github.com/facegate/facegate/detect"
	"github.com/facegate/facegate/store"
	"github.com/facegate/facegate/verify"
	"gocv.io/x/gocv"
)

// Roster is the gallery the door searches and the records of the people in
// it (active flag, validity), read together in one snapshot of the store.
type Roster struct {
	Gallery *verify.Gallery
	People  map[string]store.Person
}

// LoadRoster reads every template of model into a searchable gallery. A
// person with several templates is searched by their mean: on LFW it let
// fewer strangers in than best-of at the same threshold, for as many
// enrolled people recognised (README).
func LoadRoster(ctx context.Context, db *store.DB, model string, dim int) (*Roster, error) {
	version, people, templates, err := db.Gallery(ctx, model)
	if err != nil {
		return nil, err
	}
	enrolled := make([]verify.Enrolled, len(people))
	index := make(map[string]int, len(people))
	r := &Roster{People: make(map[string]store.Person, len(people))}
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
		enrolled[i].Templates = append(enrolled[i].Templates, t.Vector)
	}
	r.Gallery, err = verify.NewGallery(model, dim, enrolled, verify.MeanTemplate, version)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Door runs the per-frame chain: faces → quality gates → liveness → embed →
// gallery → policy. Only the largest face that passes the gates is judged:
// the person at the door. Spoof frames are not embedded (the encoder is the
// chain's main cost, and the policy never lets a spoof frame vote).
type Door struct {
	pipe     *verify.Pipeline
	gates    detect.Gates
	liveness float32
	policy   *Policy
	roster   atomic.Pointer[Roster]
	metrics  *Metrics
	lastFace image.Rectangle // the square box of the face judged in the last frame; empty when none
}

// NewDoor wires the chain. liveness is the policy's liveness threshold.
func NewDoor(pipe *verify.Pipeline, gates detect.Gates, policy *Policy, liveness float32, roster *Roster, m *Metrics) *Door {
	d := &Door{pipe: pipe, gates: gates, liveness: liveness, policy: policy, metrics: m}
	d.roster.Store(roster)
	return d
}

// SetRoster swaps in a new gallery; the next frame uses it. Safe from any
// goroutine.
func (d *Door) SetRoster(r *Roster) { d.roster.Store(r) }

// Roster is the gallery in use.
func (d *Door) Roster() *Roster { return d.roster.Load() }

// Observe runs the chain on one frame captured at `at` and returns the
// policy's decision, if one is due.
func (d *Door) Observe(frame gocv.Mat, at time.Time) (*Decision, error) {
	start := time.Now()
	var t verify.Timings
	faces, err := d.pipe.Find(frame, &t)
	if err != nil {
		return nil, err
	}
	obs := Observation{At: at}
	d.lastFace = image.Rectangle{}
	var face *verify.Face
	for i := range faces { // largest first
		if d.gates.Check(faces[i].Quality) == nil {
			face = &faces[i]
			break
		}
	}
	var search time.Duration
	embedded := false
	if face != nil {
		obs.Face = true
		d.lastFace = face.Square
		if err := d.pipe.Liveness(frame, face, &t); err != nil {
			return nil, err
		}
		obs.Live = face.Liveness
		if face.Liveness >= d.liveness {
			if err := d.pipe.Embed(frame, face, &t); err != nil {
				return nil, err
			}
			embedded = true
			s := time.Now()
			d.match(face.Embedding, &obs)
			search = time.Since(s)
		}
	}
	dec := d.policy.Observe(obs)
	if d.metrics != nil {
		d.metrics.observeFrame(&t, search, time.Since(start), len(faces), embedded)
		if dec != nil {
			d.metrics.decision(dec)
		}
	}
	return dec, nil
}

// LastFace is the square box of the face judged in the last frame.
func (d *Door) LastFace() (image.Rectangle, bool) { return d.lastFace, !d.lastFace.Empty() }

// match fills the observation from the gallery.
func (d *Door) match(e verify.Embedding, obs *Observation) {
	r := d.roster.Load()
	if r == nil || r.Gallery.Len() == 0 {
		return // nobody enrolled: every live face is unknown
	}
	m, err := r.Gallery.Search(e)
	if err != nil {
		return
	}
	id, name := r.Gallery.Person(m.Person)
	p := r.People[id]
	obs.PersonID, obs.PersonName = id, name
	obs.Score, obs.Margin = m.Score, m.Margin()
	obs.Active, obs.ValidFrom, obs.ValidUntil = p.Active, p.ValidFrom, p.ValidUntil
}
