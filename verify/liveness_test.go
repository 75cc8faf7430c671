package verify_test

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/facegate/facegate/camera"
	"github.com/facegate/facegate/detect"
)

// liveFrame is one spoof-dev frame scored by the pipeline.
type liveFrame struct {
	name    string
	live    bool    // a live person (false: a printed photo)
	found   bool    // a face was found
	faces   int     // faces found, false detections included
	score   float64 // liveness of the largest face; valid when found
	second  float64 // area of the second largest detection over the largest's, 0 if none
	subject string
}

// judgedLive is the daemon's single-frame decision: a frame without a face
// is never judged live (for a live frame that is a rejection, for an attack
// frame it is not an acceptance).
func (f liveFrame) judgedLive(threshold float64) bool {
	return f.found && f.score >= threshold
}

// padRates are BPCER and APCER of frames at a threshold.
type padRates struct {
	live, attack             int // frames
	rejected, accepted       int // live judged attack (no face included), attack judged live
	liveNoFace, attackNoFace int
}

func (r padRates) bpcer() float64 { return ratio(r.rejected, r.live) }
func (r padRates) apcer() float64 { return ratio(r.accepted, r.attack) }

func ratio(n, d int) float64 {
	if d == 0 {
		return math.NaN()
	}
	return float64(n) / float64(d)
}

func rates(frames []liveFrame, threshold float64) padRates {
	var r padRates
	for _, f := range frames {
		if f.live {
			r.live++
			if !f.found {
				r.liveNoFace++
			}
			if !f.judgedLive(threshold) {
				r.rejected++
			}
		} else {
			r.attack++
			if !f.found {
				r.attackNoFace++
			}
			if f.judgedLive(threshold) {
				r.accepted++
			}
		}
	}
	return r
}

// windows simulates the daemon's 3-of-5 policy crudely on frames of one
// class of one subject in name order: of the sliding windows of 5
// consecutive frames, how many hold at least 3 frames judged live.
func windows(frames []liveFrame, threshold float64) (pass, total int) {
	const n, need = 5, 3
	for i := 0; i+n <= len(frames); i++ {
		k := 0
		for _, f := range frames[i : i+n] {
			if f.judgedLive(threshold) {
				k++
			}
		}
		total++
		if k >= need {
			pass++
		}
	}
	return pass, total
}

// rocAUC is the probability that a live frame outscores an attack frame
// (ties count half). Frames without a face score -Inf: a live one is
// always rejected, an attack one never accepted.
func rocAUC(frames []liveFrame) float64 {
	var live, atk []float64
	for _, f := range frames {
		s := math.Inf(-1)
		if f.found {
			s = f.score
		}
		if f.live {
			live = append(live, s)
		} else {
			atk = append(atk, s)
		}
	}
	var sum float64
	for _, l := range live {
		for _, a := range atk {
			switch {
			case l > a:
				sum++
			case l == a:
				sum += 0.5
			}
		}
	}
	return sum / float64(len(live)*len(atk))
}

// summary is min/median/max of the scores of frames with a face.
func summary(frames []liveFrame, live bool) string {
	var s []float64
	for _, f := range frames {
		if f.live == live && f.found {
			s = append(s, f.score)
		}
	}
	if len(s) == 0 {
		return "no faces"
	}
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return fmt.Sprintf("min %.4f  median %.4f  max %.4f  (n=%d)", s[0], med, s[len(s)-1], len(s))
}

// byName orders NUAA frame names (ID_xx_xx_SESSION_FRAME.jpg) field by
// field, numbers as numbers, so that frame 52 comes before frame 105.
func byName(a, b string) int {
	fa := strings.Split(strings.TrimSuffix(a, filepath.Ext(a)), "_")
	fb := strings.Split(strings.TrimSuffix(b, filepath.Ext(b)), "_")
	for i := 0; i < len(fa) && i < len(fb); i++ {
		na, ea := strconv.Atoi(fa[i])
		nb, eb := strconv.Atoi(fb[i])
		if ea == nil && eb == nil {
			if c := cmp.Compare(na, nb); c != 0 {
				return c
			}
			continue
		}
		if c := cmp.Compare(fa[i], fb[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(fa), len(fb))
}

func pct(x float64) string {
	if math.IsNaN(x) {
		return "   -  "
	}
	return fmt.Sprintf("%5.1f%%", 100*x)
}

// TestSpoofDevLiveness measures passive liveness on spoof-dev (NUAA, printed
// photos) at the daemon's threshold, per frame, per subject and over the
// 3-of-5 policy, and holds the project's claims: no printed photo accepted
// and at most 10 % of live frames rejected, per frame at 0.5.
func TestSpoofDevLiveness(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 400 photos")
	}
	root := filepath.Join(shared, "spoof-dev")
	p := openPipeline(t)
	thr := float64(detect.DefaultLivenessThreshold)

	var frames []liveFrame
	bySubject := map[string][2][]liveFrame{} // [0] live, [1] attack, each in name order
	extra := 0
	for _, class := range []string{"live", "spoof"} {
		subjects, err := os.ReadDir(filepath.Join(root, class))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range subjects {
			if !s.IsDir() {
				continue
			}
			dir := filepath.Join(root, class, s.Name())
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range ents {
				if !e.IsDir() && strings.EqualFold(filepath.Ext(e.Name()), ".jpg") {
					names = append(names, e.Name())
				}
			}
			slices.SortFunc(names, byName)
			for _, name := range names {
				img, err := camera.ReadImage(filepath.Join(dir, name), camera.DefaultMaxPixels)
				if err != nil {
					t.Fatal(err)
				}
				faces, err := p.Find(img, nil)
				if err != nil {
					img.Close()
					t.Fatal(err)
				}
				f := liveFrame{name: name, live: class == "live", faces: len(faces), subject: s.Name()}
				if len(faces) > 0 {
					if err := p.Liveness(img, &faces[0], nil); err != nil { // largest first: the subject
						img.Close()
						t.Fatal(err)
					}
					f.found, f.score = true, float64(faces[0].Liveness)
					if len(faces) > 1 {
						extra++
						f.second = float64(faces[1].Box.Area()) / float64(faces[0].Box.Area())
					}
				}
				img.Close()
				frames = append(frames, f)
				pair := bySubject[s.Name()]
				if f.live {
					pair[0] = append(pair[0], f)
				} else {
					pair[1] = append(pair[1], f)
				}
				bySubject[s.Name()] = pair
			}
		}
	}
	all := rates(frames, thr)
	if all.live == 0 || all.attack == 0 {
		t.Fatalf("spoof-dev: %d live and %d attack frames found under %s", all.live, all.attack, root)
	}

	t.Logf("spoof-dev (NUAA, print attacks): %d live + %d attack frames, %d subjects; threshold %.2f (live when score >= threshold)",
		all.live, all.attack, len(bySubject), thr)
	maxSecond := 0.0
	for _, f := range frames {
		maxSecond = math.Max(maxSecond, f.second)
	}
	t.Logf("frames with more than one detection (largest taken as the subject): %d; the second largest is at most %.1f%% of the largest's area",
		extra, 100*maxSecond)
	t.Logf("frames without a face: live %d (counted as rejections, in BPCER), attack %d (not acceptances: not in APCER's numerator, kept in its denominator)",
		all.liveNoFace, all.attackNoFace)
	for _, f := range frames {
		if !f.found {
			kind := "attack"
			if f.live {
				kind = "live"
			}
			t.Logf("  no face: %s %s/%s", kind, f.subject, f.name)
		}
	}
	t.Logf("ROC AUC (live vs attack; no-face frames at -Inf): %.4f", rocAUC(frames))
	t.Logf("live scores:   %s", summary(frames, true))
	t.Logf("attack scores: %s", summary(frames, false))

	t.Logf("per frame, by threshold:")
	t.Logf("  thr    BPCER (rej/live)     APCER (acc/attack)")
	for _, x := range []float64{0.3, 0.5, 0.7, 0.9} {
		r := rates(frames, x)
		t.Logf("  %.1f   %s (%3d/%3d)    %s (%3d/%3d)", x, pct(r.bpcer()), r.rejected, r.live, pct(r.apcer()), r.accepted, r.attack)
	}

	subjects := make([]string, 0, len(bySubject))
	for s := range bySubject {
		subjects = append(subjects, s)
	}
	slices.Sort(subjects)
	t.Logf("per subject at %.2f (BPCER includes no-face live frames; 3-of-5 = sliding windows of 5 consecutive frames in name order with >= 3 judged live):", thr)
	t.Logf("  subj  live  nf  BPCER   min live | atk  nf  APCER   max atk | 3of5 live  3of5 atk")
	var worstB, worstA float64
	var worstBS, worstAS string
	var livePass, liveWin, atkPass, atkWin int
	for _, s := range subjects {
		pair := bySubject[s]
		r := rates(append(slices.Clone(pair[0]), pair[1]...), thr)
		minLive, maxAtk := math.Inf(1), math.Inf(-1)
		for _, f := range pair[0] {
			if f.found {
				minLive = math.Min(minLive, f.score)
			}
		}
		for _, f := range pair[1] {
			if f.found {
				maxAtk = math.Max(maxAtk, f.score)
			}
		}
		lp, lw := windows(pair[0], thr)
		ap, aw := windows(pair[1], thr)
		livePass, liveWin, atkPass, atkWin = livePass+lp, liveWin+lw, atkPass+ap, atkWin+aw
		if b := r.bpcer(); worstBS == "" || b > worstB {
			worstB, worstBS = b, s
		}
		if a := r.apcer(); worstAS == "" || a > worstA {
			worstA, worstAS = a, s
		}
		t.Logf("  %s  %4d  %2d  %s  %.4f | %3d  %2d  %s  %.4f | %2d/%-2d     %2d/%-2d",
			s, r.live, r.liveNoFace, pct(r.bpcer()), minLive, r.attack, r.attackNoFace, pct(r.apcer()), maxAtk, lp, lw, ap, aw)
	}
	if worstB == 0 {
		worstBS = "every subject"
	}
	if worstA == 0 {
		worstAS = "every subject"
	}
	t.Logf("worst subject: BPCER %s (%s), APCER %s (%s)", pct(worstB), worstBS, pct(worstA), worstAS)
	t.Logf("3-of-5 policy at %.2f: live windows passing %d/%d (%s), attack windows passing %d/%d (%s)",
		thr, livePass, liveWin, pct(ratio(livePass, liveWin)), atkPass, atkWin, pct(ratio(atkPass, atkWin)))

	// The project's claims, per frame at the daemon's threshold.
	if all.accepted != 0 {
		t.Errorf("APCER at %.2f is %s (%d of %d printed photos judged live), want 0", thr, pct(all.apcer()), all.accepted, all.attack)
	}
	if all.bpcer() > 0.10 {
		t.Errorf("BPCER at %.2f is %s (%d of %d live frames rejected), want at most 10%%", thr, pct(all.bpcer()), all.rejected, all.live)
	}
}

// TestFixtureLiveness: of the three EXIF-rotated fixtures, the live photo
// passes the daemon's threshold and the printed photo and the screen replay
// do not. ReadImage applies the EXIF orientation.
func TestFixtureLiveness(t *testing.T) {
	p := openPipeline(t)
	thr := float32(detect.DefaultLivenessThreshold)
	for _, c := range []struct {
		file string
		live bool
	}{
		{"live_exif6.jpg", true},
		{"print_attack_exif6.jpg", false},
		{"screen_replay_exif6.jpg", false},
	} {
		img, err := camera.ReadImage(filepath.Join(shared, "fixtures", c.file), camera.DefaultMaxPixels)
		if err != nil {
			t.Fatal(err)
		}
		faces, err := p.Find(img, nil)
		if err != nil || len(faces) == 0 {
			img.Close()
			t.Fatalf("%s: no face (%d faces, %v)", c.file, len(faces), err)
		}
		if err := p.Liveness(img, &faces[0], nil); err != nil {
			img.Close()
			t.Fatal(err)
		}
		s, w, h := faces[0].Liveness, img.Cols(), img.Rows()
		img.Close()
		t.Logf("%-24s %dx%d after EXIF, %d face(s), liveness %.4f (want live=%v at %.2f)", c.file, w, h, len(faces), s, c.live, thr)
		if got := s >= thr; got != c.live {
			t.Errorf("%s: liveness %.4f, judged live=%v at %.2f, want %v", c.file, s, got, thr, c.live)
		}
	}
}
