package daemon

import (
	"image"
	"sync/atomic"
	"time"

	"github.com/facegate/facegate/detect"
	"github.com/facegate/facegate/verify"
	"gocv.io/x/gocv"
)

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
	query    []float32       // the face prepared for the roster's scoring; grown when a roster needs more
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
	if n := r.QueryLen(); len(d.query) < n {
		d.query = make([]float32, n)
	}
	m, err := r.Search(e, d.query)
	if err != nil {
		return
	}
	id, name := r.Gallery.Person(m.Person)
	p := r.People[id]
	obs.PersonID, obs.PersonName = id, name
	obs.Score, obs.Margin, obs.Threshold = m.Score, m.Margin(), r.Scoring.Threshold
	obs.Active, obs.ValidFrom, obs.ValidUntil = p.Active, p.ValidFrom, p.ValidUntil
}
