package verify

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Score is one evaluated pair.
//
// A pair is predicted "same" when its similarity is >= the threshold.
// A pair with Missing set is always a wrong answer. For accuracy it counts
// as an error whatever the threshold. For ROC, EER and TARAtFAR a missing
// genuine pair is always rejected and a missing impostor pair always
// accepted, as if their similarities were -Inf and +Inf; they are never
// skipped, so a pipeline cannot look better by failing to find faces.
// ROC, BestThreshold, TARAtFAR and EER treat a NaN similarity like Missing;
// Evaluate rejects it.
type Score struct {
	Similarity float64 // higher means more alike
	Same       bool
	Fold       int
	Missing    bool // a face was not found in one of the images: always counts as a wrong answer
}

// Report summarises a verification run under the LFW protocol.
type Report struct {
	Pairs        int
	Accuracy     float64   // mean over folds of per-fold accuracy, threshold chosen on the other folds
	AccuracyStd  float64   // population standard deviation of per-fold accuracy (numpy std, ddof=0)
	FoldAccuracy []float64 // per fold, in ascending order of fold number
	EER          float64
	TARAtFAR1e2  float64
	TARAtFAR1e3  float64
	Threshold    float64 // operating threshold: the one that maximises accuracy over all pairs
	Missing      int     // pairs with Missing set
}

// ROCPoint is the operating point of one threshold.
type ROCPoint struct{ FAR, TAR, Threshold float64 }

// Evaluate scores a run under the LFW protocol: for each fold, the
// threshold that maximises accuracy on the other folds (see BestThreshold)
// is applied to that fold, and the per-fold accuracies are averaged. The
// folds are the distinct Fold values, which must be non-negative.
//
// Evaluate fails on empty input, on input without genuine or without
// impostor pairs, on fewer than two folds and on NaN similarities.
func Evaluate(scores []Score) (Report, error) {
	if len(scores) == 0 {
		return Report{}, errors.New("verify: evaluate: no scores")
	}
	var genuine, impostor, missing int
	var folds []int
	for i, s := range scores {
		if !s.Missing && math.IsNaN(s.Similarity) {
			return Report{}, fmt.Errorf("verify: evaluate: score %d: similarity is NaN", i)
		}
		if s.Fold < 0 {
			return Report{}, fmt.Errorf("verify: evaluate: score %d: negative fold %d", i, s.Fold)
		}
		if s.Same {
			genuine++
		} else {
			impostor++
		}
		if s.Missing {
			missing++
		}
		folds = append(folds, s.Fold)
	}
	switch {
	case genuine == 0:
		return Report{}, errors.New("verify: evaluate: no genuine (same-person) pairs")
	case impostor == 0:
		return Report{}, errors.New("verify: evaluate: no impostor (different-person) pairs")
	}
	slices.Sort(folds)
	folds = slices.Compact(folds)
	if len(folds) < 2 {
		return Report{}, fmt.Errorf("verify: evaluate: %d fold, need at least 2", len(folds))
	}

	valid := usable(scores)
	train := make([]Score, 0, len(valid))
	r := Report{
		Pairs:        len(scores),
		FoldAccuracy: make([]float64, len(folds)),
		Missing:      missing,
	}
	for k, fold := range folds {
		train = train[:0]
		for _, s := range valid {
			if s.Fold != fold {
				train = append(train, s)
			}
		}
		threshold, _ := bestCut(train)
		var right, n int
		for _, s := range scores {
			if s.Fold != fold {
				continue
			}
			n++
			if !s.Missing && (s.Similarity >= threshold) == s.Same {
				right++
			}
		}
		r.FoldAccuracy[k] = float64(right) / float64(n)
	}
	r.Accuracy, r.AccuracyStd = meanStd(r.FoldAccuracy)
	r.Threshold, _ = bestCut(valid)

	points := roc(scores, valid)
	r.EER = eer(points)
	r.TARAtFAR1e2 = tarAtFAR(points, 1e-2)
	r.TARAtFAR1e3 = tarAtFAR(points, 1e-3)
	return r, nil
}

// BestThreshold returns the threshold that maximises accuracy over scores,
// and that accuracy. Missing pairs count as errors in the accuracy but do
// not influence the threshold.
//
// Candidate thresholds are the midpoints between consecutive distinct
// similarities, plus one below the lowest (accept all) and one above the
// highest (reject all). When several candidates reach the best accuracy,
// the first run of consecutive best candidates in ascending order is taken
// and the midpoint of its lowest and highest threshold returned: this keeps
// the threshold as far as possible from the pairs on either side of it.
//
// With no pairs BestThreshold returns NaN, NaN; with only missing pairs it
// returns 0, 0.
func BestThreshold(scores []Score) (threshold, accuracy float64) {
	if len(scores) == 0 {
		return math.NaN(), math.NaN()
	}
	threshold, right := bestCut(usable(scores))
	return threshold, float64(right) / float64(len(scores))
}

// usable returns the scores with a similarity to threshold, that is
// neither missing nor NaN, sorted by ascending similarity.
func usable(scores []Score) []Score {
	valid := make([]Score, 0, len(scores))
	for _, s := range scores {
		if !s.Missing && !math.IsNaN(s.Similarity) {
			valid = append(valid, s)
		}
	}
	// Pairs of equal similarity are decided together, so their order
	// does not matter and an unstable sort will do.
	slices.SortFunc(valid, func(a, b Score) int { return cmp.Compare(a.Similarity, b.Similarity) })
	return valid
}

// bestCut implements BestThreshold for scores sorted by ascending
// similarity, none missing or NaN, returning the number of right answers.
// It runs in linear time.
func bestCut(sorted []Score) (threshold float64, right int) {
	if len(sorted) == 0 {
		return 0, 0
	}
	// Candidate j rejects the j lowest distinct similarities; each group
	// holds the pairs sharing one similarity.
	type group struct {
		sim           float64
		same, notSame int
	}
	groups := make([]group, 0, len(sorted))
	for _, s := range sorted {
		if len(groups) == 0 || groups[len(groups)-1].sim != s.Similarity {
			groups = append(groups, group{sim: s.Similarity})
		}
		g := &groups[len(groups)-1]
		if s.Same {
			g.same++
		} else {
			g.notSame++
		}
	}
	m := len(groups)
	candidate := func(j int) float64 {
		switch j {
		case 0:
			return below(groups[0].sim)
		case m:
			return above(groups[m-1].sim)
		}
		return between(groups[j-1].sim, groups[j].sim)
	}
	// A threshold of +Inf still accepts +Inf, so "reject all" exists only
	// when the highest similarity is finite.
	last := m
	if math.IsInf(groups[m-1].sim, 1) {
		last = m - 1
	}

	cur := 0 // right answers at candidate j; at j = 0 all are accepted
	for _, g := range groups {
		cur += g.same
	}
	best, first, end, inRun := cur, 0, 0, true
	for j := 1; j <= last; j++ {
		cur += groups[j-1].notSame - groups[j-1].same
		switch {
		case cur > best:
			best, first, end, inRun = cur, j, j, true
		case cur == best && inRun:
			end = j
		default:
			inRun = false
		}
	}
	lo, hi := candidate(first), candidate(end)
	if first == end {
		return lo, best
	}
	mid := lo/2 + hi/2
	if !(lo <= mid && mid <= hi) { // NaN from -Inf/2 + +Inf/2
		mid = lo
	}
	return mid, best
}

// below returns a threshold that accepts every similarity >= v.
func below(v float64) float64 {
	t := v - 1
	if t == v && !math.IsInf(v, 0) {
		t = math.Nextafter(v, math.Inf(-1))
	}
	return t
}

// above returns a threshold that rejects every similarity <= v.
func above(v float64) float64 {
	t := v + 1
	if t == v {
		t = math.Nextafter(v, math.Inf(1))
	}
	return t
}

// between returns a threshold t with a < t <= b, so that a is rejected and
// b accepted: their midpoint when it is finite and rounding allows.
func between(a, b float64) float64 {
	switch {
	case math.IsInf(a, -1) && math.IsInf(b, 1):
		return 0
	case math.IsInf(a, -1):
		return below(b)
	case math.IsInf(b, 1):
		return above(a)
	}
	t := a/2 + b/2 // halve first so that large values cannot overflow
	if !(a < t && t <= b) {
		return b
	}
	return t
}

// meanStd returns the mean and population standard deviation of xs.
func meanStd(xs []float64) (mean, std float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss / float64(len(xs)))
}

// ROC returns one operating point per distinct similarity, taken as the
// threshold, plus a threshold of +Inf, sorted by ascending FAR (and TAR:
// by descending threshold). It returns nil unless scores hold at least one
// genuine and one impostor pair. Missing pairs are never skipped: a missing
// impostor pair is accepted at every threshold, so FAR never reaches 0, and
// a missing genuine pair is always rejected, so TAR never reaches 1.
func ROC(scores []Score) []ROCPoint {
	return roc(scores, usable(scores))
}

// roc implements ROC given usable(scores).
func roc(scores, valid []Score) []ROCPoint {
	var genuine, impostor, missedImpostor int
	for _, s := range scores {
		if s.Same {
			genuine++
		} else {
			impostor++
			if s.Missing || math.IsNaN(s.Similarity) {
				missedImpostor++
			}
		}
	}
	if genuine == 0 || impostor == 0 {
		return nil
	}
	points := make([]ROCPoint, 0, len(valid)+1)
	trueAccepts, falseAccepts := 0, missedImpostor
	point := func(threshold float64) ROCPoint {
		return ROCPoint{
			FAR:       float64(falseAccepts) / float64(impostor),
			TAR:       float64(trueAccepts) / float64(genuine),
			Threshold: threshold,
		}
	}
	if len(valid) == 0 || !math.IsInf(valid[len(valid)-1].Similarity, 1) {
		points = append(points, point(math.Inf(1)))
	}
	for i := len(valid) - 1; i >= 0; {
		sim := valid[i].Similarity
		for ; i >= 0 && valid[i].Similarity == sim; i-- {
			if valid[i].Same {
				trueAccepts++
			} else {
				falseAccepts++
			}
		}
		points = append(points, point(sim))
	}
	return points
}

// TARAtFAR returns the highest TAR over the thresholds whose FAR is at
// most far: 0 if there is none, NaN if scores lack genuine or impostor
// pairs.
func TARAtFAR(scores []Score, far float64) float64 {
	return tarAtFAR(ROC(scores), far)
}

func tarAtFAR(roc []ROCPoint, far float64) float64 {
	if len(roc) == 0 {
		return math.NaN()
	}
	tar := 0.0
	for _, p := range roc {
		if p.FAR <= far {
			tar = max(tar, p.TAR)
		}
	}
	return tar
}

// EER returns the equal error rate: the rate at which FAR equals the false
// reject rate 1-TAR, interpolated linearly between the two ROC points
// where FAR-FRR changes sign. It returns NaN if scores lack genuine or
// impostor pairs.
func EER(scores []Score) float64 {
	return eer(ROC(scores))
}

func eer(roc []ROCPoint) float64 {
	// FAR-FRR = FAR+TAR-1 never decreases along the ROC, and reaches
	// TAR >= 0 at the last point, where FAR is 1.
	for i, p := range roc {
		d := p.FAR + p.TAR - 1
		if d < 0 {
			continue
		}
		if i == 0 {
			// Missing impostors push FAR above FRR even at +Inf.
			return (p.FAR + 1 - p.TAR) / 2
		}
		q := roc[i-1]
		dq := q.FAR + q.TAR - 1
		return q.FAR + (p.FAR-q.FAR)*(-dq/(d-dq))
	}
	return math.NaN()
}
