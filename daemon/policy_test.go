package daemon

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// All sequences run on the design defaults around threshold 0.5: margin 0.05,
// 3 of 5 within 2 s, liveness 0.5, cooldown 5 s, one deny per 3 s.
const policyTestThreshold = 0.5

var policyT0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

func policyAt(ms int) time.Time { return policyT0.Add(time.Duration(ms) * time.Millisecond) }

// policyFace is a live, confident face of id at ms.
func policyFace(ms int, id string) Observation {
	return Observation{
		At: policyAt(ms), Face: true, Live: 0.9,
		PersonID: id, PersonName: "name-" + id,
		Score: 0.8, Margin: 0.2, Active: true,
	}
}

func policyNone(ms int) Observation { return Observation{At: policyAt(ms)} }

// policyPhoto is a confident match of id that fails liveness (a photo held up).
func policyPhoto(ms int, id string) Observation {
	o := policyFace(ms, id)
	o.Live = 0.1
	return o
}

// policyStranger is a live face that is confidently nobody.
func policyStranger(ms int) Observation {
	o := policyFace(ms, "nearest")
	o.Score = 0.2
	return o
}

func policyAmbig(ms int, id string) Observation {
	o := policyFace(ms, id)
	o.Margin = 0.01
	return o
}

func policyWith(o Observation, f func(*Observation)) Observation { f(&o); return o }

// policyEvery repeats mk every step ms from start ms for n frames.
func policyEvery(start, step, n int, mk func(ms int) Observation) []Observation {
	out := make([]Observation, n)
	for i := range out {
		out[i] = mk(start + i*step)
	}
	return out
}

func policyCat(seqs ...[]Observation) []Observation {
	var out []Observation
	for _, s := range seqs {
		out = append(out, s...)
	}
	return out
}

// policyWant is one expected decision: the index of the frame that produced it.
type policyWant struct {
	frame  int
	kind   string
	reason string
	person string
	frames int // 0: don't check
}

func unlockAt(frame int, person string) policyWant {
	return policyWant{frame: frame, kind: KindUnlock, person: person}
}

func denyAt(frame int, reason, person string) policyWant {
	return policyWant{frame: frame, kind: KindDeny, reason: reason, person: person}
}

type policyGot struct {
	frame int
	d     *Decision
}

func policyRun(t *testing.T, c PolicyConfig, seq []Observation) []policyGot {
	t.Helper()
	p := NewPolicy(c)
	var got []policyGot
	for i, o := range seq {
		if d := p.Observe(o); d != nil {
			got = append(got, policyGot{i, d})
		}
	}
	return got
}

func policyCheck(t *testing.T, got []policyGot, want []policyWant) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], want[i]
		ok = g.frame == w.frame && g.d.Kind == w.kind && g.d.Reason == w.reason &&
			g.d.PersonID == w.person && (w.frames == 0 || g.d.Frames == w.frames)
	}
	if ok {
		return
	}
	var b strings.Builder
	for _, g := range got {
		fmt.Fprintf(&b, "\n  frame %d: %s %q person=%q frames=%d", g.frame, g.d.Kind, g.d.Reason, g.d.PersonID, g.d.Frames)
	}
	t.Errorf("decisions:%s\nwant %+v", b.String(), want)
}

func TestPolicySequences(t *testing.T) {
	alice := func(ms int) Observation { return policyFace(ms, "alice") }
	bob := func(ms int) Observation { return policyFace(ms, "bob") }
	photo := func(ms int) Observation { return policyPhoto(ms, "alice") }
	lessThan := func(v float32) float32 { return math.Nextafter32(v, -1) }

	tests := []struct {
		name string
		cfg  func(*PolicyConfig) // nil: defaults
		seq  []Observation
		want []policyWant
	}{
		{
			name: "3 of 5 good frames unlock once; rest of the passage is cooldown",
			seq:  policyEvery(0, 100, 10, alice),
			want: []policyWant{{frame: 2, kind: KindUnlock, person: "alice", frames: 3}},
		},
		{
			name: "a new passage after the cooldown unlocks again",
			seq:  policyCat(policyEvery(0, 100, 5, alice), policyEvery(5200, 100, 5, alice)),
			want: []policyWant{unlockAt(2, "alice"), unlockAt(7, "alice")},
		},
		{
			// unlock at 200 ms; cooldown ends at exactly 5200 ms. Votes seen during the
			// cooldown stay in the window, so the first vote after it unlocks with 4 frames.
			name: "cooldown ends exactly at Cooldown; votes seen during it are kept",
			seq: policyCat(policyEvery(0, 100, 3, alice),
				[]Observation{alice(5100), alice(5150), alice(5199), alice(5200)}),
			want: []policyWant{unlockAt(2, "alice"), {frame: 6, kind: KindUnlock, person: "alice", frames: 4}},
		},
		{
			name: "cooldown is per person",
			seq:  policyCat(policyEvery(0, 100, 3, alice), policyEvery(300, 100, 3, bob)),
			want: []policyWant{unlockAt(2, "alice"), unlockAt(5, "bob")},
		},
		{
			// A head's score of 0.8 at its own threshold 0.9: nobody, although
			// above the policy's 0.5.
			name: "an observation's own threshold replaces the policy's",
			seq: policyEvery(0, 100, 3, func(ms int) Observation {
				return policyWith(alice(ms), func(o *Observation) { o.Threshold = 0.9 })
			}),
			want: []policyWant{denyAt(2, ReasonUnknown, "")},
		},
		{
			name: "an observation's own threshold is inclusive and may be below the policy's",
			seq: policyEvery(0, 100, 3, func(ms int) Observation {
				return policyWith(alice(ms), func(o *Observation) { o.Score, o.Threshold = 0.3, 0.3 })
			}),
			want: []policyWant{unlockAt(2, "alice")},
		},
		{
			name: "frames spaced wider than Within never reach 3 votes",
			seq:  policyEvery(0, 1001, 10, alice),
		},
		{
			name: "Within is inclusive: 3 votes exactly 2 s apart unlock",
			seq:  policyEvery(0, 1000, 3, alice),
			want: []policyWant{unlockAt(2, "alice")},
		},
		{
			name: "votes interleaved with no-face frames: 3 votes in the last 5 unlock",
			seq:  []Observation{alice(0), policyNone(100), alice(200), policyNone(300), alice(400)},
			want: []policyWant{unlockAt(4, "alice")},
		},
		{
			name: "3 votes spread over 6 frames do not unlock",
			seq: []Observation{alice(0), policyNone(100), alice(200), policyNone(300), policyNone(400), alice(500),
				policyNone(600), policyNone(700), alice(800)},
		},
		{
			// 100 frames at 10 fps: denies at 200, 3200, 6200, 9200 ms.
			name: "photo of an enrolled person: never unlocks, spoof denies rate-limited",
			seq:  policyEvery(0, 100, 100, photo),
			want: []policyWant{
				denyAt(2, ReasonSpoof, "alice"), denyAt(32, ReasonSpoof, "alice"),
				denyAt(62, ReasonSpoof, "alice"), denyAt(92, ReasonSpoof, "alice"),
			},
		},
		{
			// Without clearing, the deny after the suppressed ones would come at the first
			// frame >= 3250 ms (frame 33); with clearing it needs 3 fresh spoof frames: 35.
			name: "a suppressed deny still clears the window",
			cfg:  func(c *PolicyConfig) { c.DenyEvery = 3050 * time.Millisecond },
			seq:  policyEvery(0, 100, 40, photo),
			want: []policyWant{denyAt(2, ReasonSpoof, "alice"), denyAt(35, ReasonSpoof, "alice")},
		},
		{
			name: "spoof frames matching different people deny with no person",
			seq:  []Observation{photo(0), policyPhoto(100, "bob"), photo(200)},
			want: []policyWant{denyAt(2, ReasonSpoof, "")},
		},
		{
			name: "spoof of an unconvincing match denies with no person",
			seq: []Observation{photo(0), photo(100),
				policyWith(photo(200), func(o *Observation) { o.Score = 0.3 })},
			want: []policyWant{denyAt(2, ReasonSpoof, "")},
		},
		{
			name: "unknown live face: deny unknown, rate-limited",
			seq:  policyEvery(0, 100, 100, policyStranger),
			want: []policyWant{
				denyAt(2, ReasonUnknown, ""), denyAt(32, ReasonUnknown, ""),
				denyAt(62, ReasonUnknown, ""), denyAt(92, ReasonUnknown, ""),
			},
		},
		{
			name: "empty gallery: a live face is unknown",
			seq: policyEvery(0, 100, 3, func(ms int) Observation {
				return policyWith(alice(ms), func(o *Observation) { o.PersonID, o.PersonName = "", "" })
			}),
			want: []policyWant{denyAt(2, ReasonUnknown, "")},
		},
		{
			name: "deny rate limit is shared across reasons",
			seq:  policyCat(policyEvery(0, 100, 3, policyStranger), policyEvery(300, 100, 3, photo)),
			want: []policyWant{denyAt(2, ReasonUnknown, "")},
		},
		{
			name: "inactive person: deny inactive once, no unlock",
			seq: policyEvery(0, 100, 10, func(ms int) Observation {
				return policyWith(alice(ms), func(o *Observation) { o.Active = false })
			}),
			want: []policyWant{{frame: 2, kind: KindDeny, reason: ReasonInactive, person: "alice", frames: 3}},
		},
		{
			name: "expired validity",
			seq: policyEvery(0, 100, 5, func(ms int) Observation {
				return policyWith(alice(ms), func(o *Observation) { o.ValidUntil = policyAt(199) })
			}),
			want: []policyWant{denyAt(2, ReasonExpiredValidity, "alice")},
		},
		{
			name: "not yet valid",
			seq: policyEvery(0, 100, 5, func(ms int) Observation {
				return policyWith(alice(ms), func(o *Observation) { o.ValidFrom = policyAt(201) })
			}),
			want: []policyWant{denyAt(2, ReasonNotYetValid, "alice")},
		},
		{
			name: "validity window is inclusive at both ends",
			seq: policyEvery(0, 100, 3, func(ms int) Observation {
				return policyWith(alice(ms), func(o *Observation) { o.ValidFrom, o.ValidUntil = policyAt(200), policyAt(200) })
			}),
			want: []policyWant{unlockAt(2, "alice")},
		},
		{
			name: "the newest frame's record decides (deactivated mid-passage)",
			seq: []Observation{alice(0), alice(100),
				policyWith(alice(200), func(o *Observation) { o.Active = false })},
			want: []policyWant{denyAt(2, ReasonInactive, "alice")},
		},
		{
			name: "two people alternating: no unlock, no deny",
			seq: policyEvery(0, 100, 20, func(ms int) Observation {
				if ms/100%2 == 0 {
					return alice(ms)
				}
				return bob(ms)
			}),
		},
		{
			name: "another person's vote in the window blocks, until it leaves the window",
			seq:  []Observation{alice(0), bob(100), alice(200), alice(300), alice(400), alice(500), alice(600)},
			want: []policyWant{{frame: 6, kind: KindUnlock, person: "alice", frames: 5}},
		},
		{
			name: "ambiguous margin: no unlock; deny ambiguous after 3",
			seq:  policyEvery(0, 100, 5, func(ms int) Observation { return policyAmbig(ms, "alice") }),
			want: []policyWant{denyAt(2, ReasonAmbiguous, "")},
		},
		{
			name: "unknown and ambiguous frames do not block a vote",
			seq:  []Observation{alice(0), policyStranger(100), alice(200), policyAmbig(300, "bob"), alice(400)},
			want: []policyWant{unlockAt(4, "alice")},
		},
		{
			name: "2 spoof frames + 1 live vote of the same person: no unlock",
			seq:  []Observation{photo(0), alice(100), photo(200)},
		},
		{
			// 3 live votes in 5, but the 2 photo frames veto until the window holds none.
			name: "a spoof frame in the window blocks unlock until it leaves",
			seq:  []Observation{photo(0), alice(100), photo(200), alice(300), alice(400), alice(500), alice(600), alice(700)},
			want: []policyWant{{frame: 7, kind: KindUnlock, person: "alice", frames: 5}},
		},
		{
			name: "liveness exactly at threshold votes",
			seq: policyEvery(0, 100, 3, func(ms int) Observation {
				return policyWith(alice(ms), func(o *Observation) { o.Live = 0.5 })
			}),
			want: []policyWant{unlockAt(2, "alice")},
		},
		{
			name: "liveness just below threshold is a spoof",
			seq: policyEvery(0, 100, 3, func(ms int) Observation {
				return policyWith(alice(ms), func(o *Observation) { o.Live = lessThan(0.5) })
			}),
			want: []policyWant{denyAt(2, ReasonSpoof, "alice")},
		},
		{
			name: "score exactly at threshold votes",
			seq: policyEvery(0, 100, 3, func(ms int) Observation {
				return policyWith(alice(ms), func(o *Observation) { o.Score = policyTestThreshold })
			}),
			want: []policyWant{unlockAt(2, "alice")},
		},
		{
			name: "score just below threshold is unknown",
			seq: policyEvery(0, 100, 3, func(ms int) Observation {
				return policyWith(alice(ms), func(o *Observation) { o.Score = lessThan(policyTestThreshold) })
			}),
			want: []policyWant{denyAt(2, ReasonUnknown, "")},
		},
		{
			name: "margin exactly at the configured margin votes",
			seq: policyEvery(0, 100, 3, func(ms int) Observation {
				return policyWith(alice(ms), func(o *Observation) { o.Margin = 0.05 })
			}),
			want: []policyWant{unlockAt(2, "alice")},
		},
		{
			name: "NaN liveness never votes",
			seq: policyEvery(0, 100, 3, func(ms int) Observation {
				return policyWith(alice(ms), func(o *Observation) { o.Live = float32(math.NaN()) })
			}),
			want: []policyWant{denyAt(2, ReasonSpoof, "alice")},
		},
		{
			name: "NaN score never votes",
			seq: policyEvery(0, 100, 3, func(ms int) Observation {
				return policyWith(alice(ms), func(o *Observation) { o.Score = float32(math.NaN()) })
			}),
			want: []policyWant{denyAt(2, ReasonUnknown, "")},
		},
		{
			name: "a clock that jumps back makes newer-stamped frames stop counting",
			seq:  []Observation{alice(1000), alice(1100), alice(500), alice(600)},
		},
		{
			name: "Need 1 of 1 with no cooldown unlocks every vote",
			cfg:  func(c *PolicyConfig) { c.Need, c.Of, c.Cooldown = 1, 1, 0 },
			seq:  policyEvery(0, 100, 3, alice),
			want: []policyWant{unlockAt(0, "alice"), unlockAt(1, "alice"), unlockAt(2, "alice")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultPolicyConfig(policyTestThreshold)
			if tc.cfg != nil {
				tc.cfg(&c)
			}
			got := policyRun(t, c, tc.seq)
			policyCheck(t, got, tc.want)
			for _, g := range got {
				if g.d.Kind == KindUnlock && g.d.Reason != "" {
					t.Errorf("frame %d: unlock with reason %q", g.frame, g.d.Reason)
				}
				if !g.d.At.Equal(tc.seq[g.frame].At) {
					t.Errorf("frame %d: At %v, want the frame's time %v", g.frame, g.d.At, tc.seq[g.frame].At)
				}
			}
		})
	}
}

func TestPolicyDecisionFields(t *testing.T) {
	near := func(a, b float32) bool { return math.Abs(float64(a-b)) < 1e-6 }
	mk := func(ms int, score, margin, live float32) Observation {
		return policyWith(policyFace(ms, "alice"), func(o *Observation) { o.Score, o.Margin, o.Live = score, margin, live })
	}
	tests := []struct {
		name                 string
		seq                  []Observation
		kind, reason, person string
		score, margin, live  float32
		frames               int
	}{
		{
			name: "unlock means over its 3 votes",
			seq: []Observation{mk(0, 0.6, 0.1, 0.7), policyNone(50), mk(100, 0.7, 0.2, 0.8),
				policyStranger(150), mk(200, 0.8, 0.3, 0.9)},
			kind: KindUnlock, person: "name-alice", score: 0.7, margin: 0.2, live: 0.8, frames: 3,
		},
		{
			name: "spoof deny means over its 3 spoof frames",
			seq:  []Observation{mk(0, 0.9, 0.3, 0.1), mk(100, 0.8, 0.2, 0.2), mk(200, 0.7, 0.1, 0.3)},
			kind: KindDeny, reason: ReasonSpoof, person: "name-alice", score: 0.8, margin: 0.2, live: 0.2, frames: 3,
		},
		{
			name: "non-finite values are left out of the means",
			seq: []Observation{mk(0, 0.6, float32(math.Inf(1)), float32(math.NaN())), mk(100, 0.6, 0.2, 0.2),
				mk(200, 0.6, 0.4, float32(math.NaN()))},
			kind: KindDeny, reason: ReasonSpoof, person: "name-alice", score: 0.6, margin: 0.3, live: 0.2, frames: 3,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := policyRun(t, DefaultPolicyConfig(policyTestThreshold), tc.seq)
			if len(got) != 1 || got[0].frame != len(tc.seq)-1 {
				t.Fatalf("want one decision on the last frame, got %d", len(got))
			}
			d := got[0].d
			if d.Kind != tc.kind || d.Reason != tc.reason || d.PersonName != tc.person || d.Frames != tc.frames ||
				!near(d.Score, tc.score) || !near(d.Margin, tc.margin) || !near(d.Liveness, tc.live) {
				t.Errorf("got %+v\nwant kind %s reason %q name %q score %v margin %v liveness %v frames %d",
					*d, tc.kind, tc.reason, tc.person, tc.score, tc.margin, tc.live, tc.frames)
			}
		})
	}
}

// TestPolicyCooldownMapStaysSmall checks that people whose cooldown has ended
// are dropped from the map at the next unlock.
func TestPolicyCooldownMapStaysSmall(t *testing.T) {
	p := NewPolicy(DefaultPolicyConfig(policyTestThreshold))
	ms := 0
	for i := 0; i < 50; i++ {
		id := "p" + strconv.Itoa(i)
		unlocks := 0
		for k := 0; k < 3; k++ {
			if d := p.Observe(policyFace(ms, id)); d != nil && d.Kind == KindUnlock {
				unlocks++
			}
			ms += 100
		}
		if unlocks != 1 {
			t.Fatalf("person %s: %d unlocks, want 1", id, unlocks)
		}
		ms += 6000 // everyone's cooldown has ended before the next person
	}
	if len(p.unlocked) != 1 {
		t.Errorf("cooldown map holds %d people, want 1", len(p.unlocked))
	}
}

func TestPolicyValidate(t *testing.T) {
	nan := float32(math.NaN())
	tests := []struct {
		name string
		edit func(*PolicyConfig)
		want []string // substrings, one per expected line; nil: valid
	}{
		{"defaults", func(*PolicyConfig) {}, nil},
		{"threshold 1 is allowed", func(c *PolicyConfig) { c.Threshold = 1 }, nil},
		{"negative threshold is allowed", func(c *PolicyConfig) { c.Threshold = -0.5 }, nil},
		{"need equal to of", func(c *PolicyConfig) { c.Need, c.Of = 5, 5 }, nil},
		{"zero cooldown and deny_every", func(c *PolicyConfig) { c.Cooldown, c.DenyEvery = 0, 0 }, nil},
		{"margin 0", func(c *PolicyConfig) { c.Margin = 0 }, nil},
		{"liveness 1", func(c *PolicyConfig) { c.Liveness = 1 }, nil},
		{"need > of", func(c *PolicyConfig) { c.Need, c.Of = 6, 5 }, []string{"policy.need: 6 is more than policy.of (5)"}},
		{"need < 1", func(c *PolicyConfig) { c.Need = 0 }, []string{"policy.need: 0 is less than 1"}},
		{"of < 1", func(c *PolicyConfig) { c.Of = 0 }, []string{"policy.of: 0 is less than 1"}},
		{"of huge", func(c *PolicyConfig) { c.Of = 100000 }, []string{"policy.of: 100000 is more than"}},
		{"threshold above 1", func(c *PolicyConfig) { c.Threshold = 1.01 }, []string{"policy.threshold: 1.01 is outside (-1, 1]"}},
		{"threshold -1", func(c *PolicyConfig) { c.Threshold = -1 }, []string{"policy.threshold: -1 is outside"}},
		{"threshold NaN", func(c *PolicyConfig) { c.Threshold = nan }, []string{"policy.threshold: NaN"}},
		{"threshold 0 sentinel", func(c *PolicyConfig) { c.Threshold = 0 }, []string{"policy.threshold: 0 means"}},
		{"negative margin", func(c *PolicyConfig) { c.Margin = -0.1 }, []string{"policy.margin: -0.1 is outside [0, 2]"}},
		{"liveness above 1", func(c *PolicyConfig) { c.Liveness = 1.5 }, []string{"policy.liveness: 1.5 is outside [0, 1]"}},
		{"liveness negative", func(c *PolicyConfig) { c.Liveness = -0.1 }, []string{"policy.liveness: -0.1 is outside"}},
		{"liveness 0 sentinel", func(c *PolicyConfig) { c.Liveness = 0 }, []string{"policy.liveness: 0 would accept every face"}},
		{"within 0", func(c *PolicyConfig) { c.Within = 0 }, []string{"policy.within: 0s must be positive"}},
		{"negative within", func(c *PolicyConfig) { c.Within = -time.Second }, []string{"policy.within: -1s must be positive"}},
		{"negative cooldown", func(c *PolicyConfig) { c.Cooldown = -time.Second }, []string{"policy.cooldown: -1s is negative"}},
		{"negative deny_every", func(c *PolicyConfig) { c.DenyEvery = -time.Second }, []string{"policy.deny_every: -1s is negative"}},
		{"zero value: every bad field on its own line", func(c *PolicyConfig) { *c = PolicyConfig{} }, []string{
			"policy.threshold:", "policy.need:", "policy.of:", "policy.within:", "policy.liveness:",
		}},
		{"several at once", func(c *PolicyConfig) { c.Need, c.Of, c.Cooldown, c.Margin = 9, 4, -1, nan }, []string{
			"policy.margin: NaN", "policy.need: 9 is more than policy.of (4)", "policy.cooldown: -1ns is negative",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultPolicyConfig(policyTestThreshold)
			tc.edit(&c)
			err := c.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tc.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("Validate() gave %d lines, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("line %d = %q, want it to contain %q", i, lines[i], w)
				}
			}
		})
	}
}

func TestPolicyNewPanicsOnInvalidConfig(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewPolicy with Need > Of did not panic")
		}
	}()
	c := DefaultPolicyConfig(policyTestThreshold)
	c.Need = 6
	NewPolicy(c)
}

// TestPolicyAllocs checks that Observe allocates nothing in steady state:
// frames that produce no decision, including votes in cooldown, vetoed votes
// and suppressed denies.
func TestPolicyAllocs(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*PolicyConfig)
		mk   func(i int) Observation // frame i at 100 ms per frame
		// warm frames may decide; measured frames must not
	}{
		{"empty scene", nil, func(i int) Observation { return policyNone(i * 100) }},
		{"enrolled person lingering in cooldown",
			func(c *PolicyConfig) { c.Cooldown = 1000 * time.Hour },
			func(i int) Observation { return policyFace(i*100, "alice") }},
		{"photo attack, denies suppressed",
			func(c *PolicyConfig) { c.DenyEvery = 1000 * time.Hour },
			func(i int) Observation { return policyPhoto(i*100, "alice") }},
		{"stranger, denies suppressed",
			func(c *PolicyConfig) { c.DenyEvery = 1000 * time.Hour },
			func(i int) Observation { return policyStranger(i * 100) }},
		{"two people alternating (vetoed)", nil,
			func(i int) Observation {
				if i%2 == 0 {
					return policyFace(i*100, "alice")
				}
				return policyFace(i*100, "bob")
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultPolicyConfig(policyTestThreshold)
			if tc.cfg != nil {
				tc.cfg(&c)
			}
			p := NewPolicy(c)
			// Pre-build the frames so the measured function does only Observe.
			const warm, runs = 20, 1000
			frames := make([]Observation, warm+runs+1)
			for i := range frames {
				frames[i] = tc.mk(i)
			}
			for i := 0; i < warm; i++ {
				p.Observe(frames[i])
			}
			i, decided := warm, 0
			allocs := testing.AllocsPerRun(runs, func() {
				if p.Observe(frames[i]) != nil {
					decided++
				}
				i++
			})
			if decided != 0 {
				t.Fatalf("%d decisions in the measured steady state, want 0", decided)
			}
			if allocs != 0 {
				t.Errorf("Observe allocates %v per frame in steady state, want 0", allocs)
			}
		})
	}
}
