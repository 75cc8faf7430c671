package daemon

// The door policy: per-frame observations in, unlock and deny decisions out.
//
// This file is pure logic. It does no I/O, starts no goroutines and never
// reads the clock: every observation carries its own time, and "now" is the
// time of the frame being observed. It imports the standard library only.

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Decision kinds.
const (
	KindUnlock = "unlock"
	KindDeny   = "deny"
)

// Deny reasons. The policy never emits "cooldown": a person in cooldown is
// walking through a door that was just opened for them, and their frames
// produce nothing at all.
const (
	ReasonUnknown         = "unknown"
	ReasonSpoof           = "spoof"
	ReasonAmbiguous       = "ambiguous"
	ReasonInactive        = "inactive"
	ReasonExpiredValidity = "expired_validity"
	ReasonNotYetValid     = "not_yet_valid"
)

// policyMaxOf bounds the frame window so that a typo cannot make the ring huge.
const policyMaxOf = 1000

// PolicyConfig holds the door policy's parameters. The zero value is not
// valid; start from DefaultPolicyConfig and check with Validate.
type PolicyConfig struct {
	Threshold float32       // similarity a match needs (inclusive)
	Margin    float32       // lead over the runner-up person (inclusive; default 0.05)
	Need, Of  int           // the same person in Need of the last Of observed frames (default 3 of 5)
	Within    time.Duration // ...all within this window of the newest frame (inclusive; default 2 s)
	Liveness  float32       // live probability each counted frame needs (inclusive; default 0.5)
	Cooldown  time.Duration // per person per door after an unlock (default 5 s)
	DenyEvery time.Duration // at most one deny event per this interval (default 3 s)
}

// DefaultPolicyConfig returns the design defaults around a similarity
// threshold, which comes from calibration or evaluation: margin 0.05, 3 of the
// last 5 frames within 2 s, liveness 0.5, cooldown 5 s, one deny per 3 s.
func DefaultPolicyConfig(threshold float32) PolicyConfig {
	return PolicyConfig{
		Threshold: threshold,
		Margin:    0.05,
		Need:      3,
		Of:        5,
		Within:    2 * time.Second,
		Liveness:  0.5,
		Cooldown:  5 * time.Second,
		DenyEvery: 3 * time.Second,
	}
}

// Validate reports every bad value, one line each (the lines are joined with
// errors.Join), named by its configuration key. Beyond the obvious ranges it
// rejects two values that are valid numbers but unsafe at a door:
//
//   - Threshold 0 and Liveness 0 are the configuration file's "use the
//     calibrated / model default" sentinels. Reaching the policy unresolved
//     they would match almost anyone (threshold 0) or accept every photo as
//     live (liveness 0), so they are refused here instead of opening the door.
//   - NaN anywhere, since every comparison with NaN is false.
func (c PolicyConfig) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	isNaN := func(v float32) bool { return v != v }

	switch {
	case isNaN(c.Threshold) || c.Threshold <= -1 || c.Threshold > 1:
		bad("policy.threshold: %v is outside (-1, 1]", c.Threshold)
	case c.Threshold == 0:
		bad("policy.threshold: 0 means \"use the calibrated threshold\" and must be resolved before the policy is built")
	}
	if isNaN(c.Margin) || c.Margin < 0 || c.Margin > 2 {
		bad("policy.margin: %v is outside [0, 2]", c.Margin)
	}
	if c.Need < 1 {
		bad("policy.need: %d is less than 1", c.Need)
	}
	switch {
	case c.Of < 1:
		bad("policy.of: %d is less than 1", c.Of)
	case c.Of > policyMaxOf:
		bad("policy.of: %d is more than %d", c.Of, policyMaxOf)
	}
	if c.Need >= 1 && c.Of >= 1 && c.Need > c.Of {
		bad("policy.need: %d is more than policy.of (%d)", c.Need, c.Of)
	}
	if c.Within <= 0 {
		bad("policy.within: %v must be positive", c.Within)
	}
	switch {
	case isNaN(c.Liveness) || c.Liveness < 0 || c.Liveness > 1:
		bad("policy.liveness: %v is outside [0, 1]", c.Liveness)
	case c.Liveness == 0:
		bad("policy.liveness: 0 would accept every face as live; it means \"the model's default\" and must be resolved before the policy is built")
	}
	if c.Cooldown < 0 {
		bad("policy.cooldown: %v is negative", c.Cooldown)
	}
	if c.DenyEvery < 0 {
		bad("policy.deny_every: %v is negative", c.DenyEvery)
	}
	return errors.Join(errs...)
}

// Observation is what the chain saw in one frame: at most one face is judged
// per frame (the largest that passed the quality gates); Face false when none
// did. When Face is false the other fields except At are ignored.
type Observation struct {
	At         time.Time
	Face       bool
	Live       float32 // liveness probability of that face
	PersonID   string  // best gallery match ("" if the gallery is empty)
	PersonName string
	Score      float32 // its similarity
	// Margin is Score minus the runner-up person's score. With a single
	// enrolled person there is no runner-up; pass Score+1 (the runner-up at the
	// cosine floor -1) rather than +Inf, which cannot be encoded as JSON.
	Margin float32
	// Threshold is the threshold Score is judged at when the scoring that
	// produced it brings its own (a calibrated head's); 0: the policy's.
	Threshold             float32
	Active                bool      // the matched person's record: active flag...
	ValidFrom, ValidUntil time.Time // ...and validity window (zero = unbounded; both ends inclusive)
}

// Decision is an unlock or a deny.
type Decision struct {
	Kind   string // KindUnlock or KindDeny
	Reason string // for deny: one of the Reason constants; "" for unlock
	// PersonID and PersonName name the person for unlock, inactive,
	// expired_validity and not_yet_valid; for spoof they name the person the
	// photo matched when every frame that formed the deny confidently matched
	// that same person, else ""; for unknown and ambiguous they are "".
	PersonID, PersonName    string
	Score, Margin, Liveness float32 // means over the frames that formed the decision (non-finite values skipped; 0 if none)
	Frames                  int     // how many frames formed it (>= Need)
	At                      time.Time
}

// Policy turns observations into decisions. It is not safe for concurrent
// use; one Policy serves one door, fed by one goroutine.
//
// # Frames
//
// Each observed frame is put in exactly one class, in this order:
//
//   - no face: Face is false.
//   - spoof: a face with Live < Liveness (or Live NaN), whatever it matched.
//     A spoof frame never votes, not even for an enrolled person.
//   - unknown: a live face that is confidently nobody: Score < Threshold (or
//     NaN), or PersonID "" (empty gallery).
//   - ambiguous: a live face with Score >= Threshold but Margin < Margin (or
//     NaN): too close to two people to be either.
//   - vote for X: a live face with Score >= Threshold, Margin >= Margin and
//     PersonID X.
//
// All bounds are inclusive: Score == Threshold, Margin == Margin and
// Live == Liveness all pass.
//
// # Window
//
// The window is the last Of observed frames since it was last cleared. A
// frame counts only if its time is within Within (inclusive) of the newest
// frame's time and not after it (a clock that jumped backwards makes older
// frames stop counting; it never makes them count more). Frames without a
// face occupy a slot like any other, so a face must be present in Need of the
// last Of frames.
//
// # Decisions
//
// Only the class of the frame just observed is evaluated (a class's count can
// only grow on a frame of that class):
//
//   - vote for X: if X is in cooldown (less than Cooldown since X's last
//     unlock), nothing. Otherwise, when X has at least Need counted votes and
//     neither veto below applies: X's record as carried by the newest frame is
//     checked - not Active: deny "inactive"; now before ValidFrom: deny
//     "not_yet_valid"; now after ValidUntil: deny "expired_validity"; else
//     unlock X, start X's cooldown, and clear the window so that one passage
//     gives one unlock. Votes seen during X's cooldown stay in the window, so a
//     person still at the door when the cooldown ends is unlocked again on
//     their next vote.
//   - spoof, unknown, ambiguous: when Need counted frames of that class are in
//     the window, deny with that class as the reason.
//
// Vetoes (deviations from a plain "Need of Of" rule, argued from the first
// priority - nobody who is not enrolled gets in):
//
//   - a spoof frame anywhere in the counted window blocks an unlock. A photo
//     that passes liveness on some frames and fails on others must not open
//     the door; with a per-frame false-live rate p, an attacker needs every
//     face frame of a window live (about p^5 at 3 of 5) instead of any 3
//     (about 10p^3). A real person whose liveness dips once waits until that
//     frame leaves the window (Of frames, a fraction of a second).
//   - a vote for a different person anywhere in the counted window blocks an
//     unlock. Frames that confidently name two people mean the identification
//     is not stable. (Without this veto, two people filling 5 frames would
//     always give one of them 3 of 5, by pigeonhole.) Unknown and ambiguous
//     frames do not veto: a person turning their head scores low for a frame.
//
// Every decision clears the window, including a deny that is then suppressed,
// so the same frames are not judged again on every following frame. Deny
// events of any reason share one rate limit: at most one per DenyEvery (the
// first is always emitted); a suppressed deny returns nil. Unlocks are never
// rate-limited except by the per-person cooldown.
type Policy struct {
	cfg      PolicyConfig
	ring     []policySlot // Of slots
	next     int          // where the next frame is written
	n        int          // frames in the ring since the last clear (<= Of)
	unlocked map[string]time.Time
	lastDeny time.Time
	denied   bool // lastDeny is set
}

type policyClass uint8

const (
	policyNoFace policyClass = iota
	policySpoof
	policyUnknown
	policyAmbiguous
	policyVote
)

type policySlot struct {
	obs   Observation
	class policyClass
}

// NewPolicy returns a policy with an empty window. c must pass Validate;
// NewPolicy panics otherwise, because a door must not run on a bad policy.
func NewPolicy(c PolicyConfig) *Policy {
	if err := c.Validate(); err != nil {
		panic("daemon.NewPolicy: invalid config: " + err.Error())
	}
	return &Policy{
		cfg:      c,
		ring:     make([]policySlot, c.Of),
		unlocked: make(map[string]time.Time),
	}
}

// Observe adds one frame and returns a decision when one is due (nil
// otherwise). It allocates nothing when it returns nil (a fixed ring of Of
// observations; the cooldown map holds only people unlocked within the last
// Cooldown); a returned Decision is a new value the caller owns.
func (p *Policy) Observe(o Observation) *Decision {
	c := p.classify(&o)
	p.ring[p.next] = policySlot{obs: o, class: c}
	p.next++
	if p.next == len(p.ring) {
		p.next = 0
	}
	if p.n < len(p.ring) {
		p.n++
	}
	switch c {
	case policyNoFace:
		return nil
	case policyVote:
		return p.vote(&o)
	case policySpoof:
		return p.denyClass(policySpoof, ReasonSpoof, o.At)
	case policyUnknown:
		return p.denyClass(policyUnknown, ReasonUnknown, o.At)
	default:
		return p.denyClass(policyAmbiguous, ReasonAmbiguous, o.At)
	}
}

func (p *Policy) classify(o *Observation) policyClass {
	switch {
	case !o.Face:
		return policyNoFace
	case !(o.Live >= p.cfg.Liveness):
		return policySpoof
	case o.PersonID == "" || !(o.Score >= p.threshold(o)):
		return policyUnknown
	case !(o.Margin >= p.cfg.Margin):
		return policyAmbiguous
	default:
		return policyVote
	}
}

// threshold is the similarity o's match needs.
func (p *Policy) threshold(o *Observation) float32 {
	if o.Threshold != 0 {
		return o.Threshold
	}
	return p.cfg.Threshold
}

// counted returns the i-th newest frame in the window (i = 0 is the newest)
// and whether it counts at time now.
func (p *Policy) counted(i int, now time.Time) (*policySlot, bool) {
	j := p.next - 1 - i
	if j < 0 {
		j += len(p.ring)
	}
	s := &p.ring[j]
	d := now.Sub(s.obs.At)
	return s, d >= 0 && d <= p.cfg.Within
}

func (p *Policy) clear() { p.n = 0 }

func (p *Policy) vote(o *Observation) *Decision {
	now, id := o.At, o.PersonID
	if last, ok := p.unlocked[id]; ok && now.Sub(last) < p.cfg.Cooldown {
		return nil
	}
	var agg policyAgg
	for i := 0; i < p.n; i++ {
		s, ok := p.counted(i, now)
		if !ok {
			continue
		}
		switch {
		case s.class == policySpoof:
			return nil // spoof veto
		case s.class == policyVote && s.obs.PersonID != id:
			return nil // conflict veto
		case s.class == policyVote:
			agg.add(&s.obs)
		}
	}
	if agg.n < p.cfg.Need {
		return nil
	}
	reason := ""
	switch {
	case !o.Active:
		reason = ReasonInactive
	case !o.ValidFrom.IsZero() && now.Before(o.ValidFrom):
		reason = ReasonNotYetValid
	case !o.ValidUntil.IsZero() && now.After(o.ValidUntil):
		reason = ReasonExpiredValidity
	}
	if reason != "" {
		return p.deny(reason, id, o.PersonName, &agg, now)
	}
	p.clear()
	for pid, last := range p.unlocked { // keep the map to people still in cooldown
		if now.Sub(last) >= p.cfg.Cooldown {
			delete(p.unlocked, pid)
		}
	}
	p.unlocked[id] = now
	return agg.decision(KindUnlock, "", id, o.PersonName, now)
}

func (p *Policy) denyClass(c policyClass, reason string, now time.Time) *Decision {
	var agg policyAgg
	var id, name string
	same := true // every frame confidently matched the same person
	for i := 0; i < p.n; i++ {
		s, ok := p.counted(i, now)
		if !ok || s.class != c {
			continue
		}
		agg.add(&s.obs)
		if c != policySpoof || !same {
			continue
		}
		o := &s.obs
		confident := o.PersonID != "" && o.Score >= p.threshold(o) && o.Margin >= p.cfg.Margin
		switch {
		case !confident || (id != "" && o.PersonID != id):
			same = false
		case id == "":
			id, name = o.PersonID, o.PersonName // newest frame first
		}
	}
	if agg.n < p.cfg.Need {
		return nil
	}
	if !same {
		id, name = "", ""
	}
	return p.deny(reason, id, name, &agg, now)
}

// deny clears the window and returns a deny unless the rate limit suppresses it.
func (p *Policy) deny(reason, id, name string, agg *policyAgg, now time.Time) *Decision {
	p.clear()
	if p.denied && now.Sub(p.lastDeny) < p.cfg.DenyEvery {
		return nil
	}
	p.denied, p.lastDeny = true, now
	return agg.decision(KindDeny, reason, id, name, now)
}

// policyAgg sums the frames that form a decision.
type policyAgg struct {
	n                   int
	score, margin, live policyMean
}

func (a *policyAgg) add(o *Observation) {
	a.n++
	a.score.add(o.Score)
	a.margin.add(o.Margin)
	a.live.add(o.Live)
}

func (a *policyAgg) decision(kind, reason, id, name string, now time.Time) *Decision {
	return &Decision{
		Kind:       kind,
		Reason:     reason,
		PersonID:   id,
		PersonName: name,
		Score:      a.score.value(),
		Margin:     a.margin.value(),
		Liveness:   a.live.value(),
		Frames:     a.n,
		At:         now,
	}
}

// policyMean is a mean over finite values, so that a decision always encodes
// as JSON.
type policyMean struct {
	sum float64
	n   int
}

func (m *policyMean) add(v float32) {
	f := float64(v)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return
	}
	m.sum += f
	m.n++
}

func (m policyMean) value() float32 {
	if m.n == 0 {
		return 0
	}
	return float32(m.sum / float64(m.n))
}
