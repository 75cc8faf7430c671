package verify

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// genuine and impostor build unmissing scores.
func genuine(sim float64, fold int) Score  { return Score{Similarity: sim, Same: true, Fold: fold} }
func impostor(sim float64, fold int) Score { return Score{Similarity: sim, Fold: fold} }

func missing(same bool, fold int) Score {
	// The similarity is deliberately one that would be right for the pair:
	// it must be ignored.
	sim := 0.0
	if same {
		sim = 1
	}
	return Score{Similarity: sim, Same: same, Fold: fold, Missing: true}
}

const eps = 1e-12

func near(a, b float64) bool {
	return a == b || math.Abs(a-b) < eps
}

func TestEvaluate(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name   string
		scores []Score
		want   Report
	}{
		{
			name: "perfectly separable",
			scores: []Score{
				genuine(0.9, 0), genuine(0.8, 0), impostor(0.1, 0), impostor(0.3, 0),
				genuine(0.7, 1), genuine(0.95, 1), impostor(0.2, 1), impostor(0.4, 1),
			},
			want: Report{
				Pairs: 8, Accuracy: 1, AccuracyStd: 0, FoldAccuracy: []float64{1, 1},
				EER: 0, TARAtFAR1e2: 1, TARAtFAR1e3: 1, Threshold: 0.55,
			},
		},
		{
			// Every similarity equal: no threshold does better than chance.
			// The tied run spans accept-all and reject-all, whose midpoint
			// is the common similarity itself.
			name: "fully overlapping",
			scores: []Score{
				genuine(0.5, 0), impostor(0.5, 0), genuine(0.5, 1), impostor(0.5, 1),
			},
			want: Report{
				Pairs: 4, Accuracy: 0.5, AccuracyStd: 0, FoldAccuracy: []float64{0.5, 0.5},
				EER: 0.5, TARAtFAR1e2: 0, TARAtFAR1e3: 0, Threshold: 0.5,
			},
		},
		{
			// Each fold on its own is separable, but the threshold learnt
			// on the other folds misclassifies one pair of each of folds
			// 0 and 1:
			//   fold 0 tested at 0.8 (learnt on folds 1, 2): 0.6 rejected;
			//   fold 1 tested at 0.5 (learnt on folds 0, 2): 0.7 accepted;
			//   fold 2 tested at 0.5 (folds 0, 1: 0.5 and 0.8 tie, the
			//   first wins): right.
			// Own-fold thresholds would give 1; one global threshold 0.75.
			name: "leave one fold out",
			scores: []Score{
				genuine(0.6, 0), impostor(0.4, 0),
				genuine(0.9, 1), impostor(0.7, 1),
				genuine(0.95, 2), impostor(0.1, 2),
			},
			want: Report{
				Pairs:        6,
				Accuracy:     2.0 / 3,
				AccuracyStd:  math.Sqrt(1.0 / 18), // ddof=1 would be sqrt(1/12)
				FoldAccuracy: []float64{0.5, 0.5, 1},
				// Sorted 0.1- 0.4- 0.6+ 0.7- 0.9+ 0.95+: 5 of 6 right at
				// 0.5 and at 0.8; the first wins.
				Threshold: 0.5,
				// ROC (FAR, TAR): (0,0) (0,1/3) (0,2/3) (1/3,2/3) (1/3,1)
				// (2/3,1) (1,1); FAR = FRR = 1/3 at the fourth point.
				EER:         1.0 / 3,
				TARAtFAR1e2: 2.0 / 3,
				TARAtFAR1e3: 2.0 / 3,
			},
		},
		{
			// Separable apart from missing faces, whose similarities
			// would have been right: each fold loses one pair of three.
			name: "missing pairs are wrong",
			scores: []Score{
				genuine(0.9, 0), impostor(0.1, 0), missing(true, 0),
				genuine(0.8, 1), impostor(0.2, 1), missing(false, 1),
			},
			want: Report{
				Pairs: 6, Accuracy: 2.0 / 3, AccuracyStd: 0, FoldAccuracy: []float64{2.0 / 3, 2.0 / 3},
				// The missing impostor is always accepted (FAR >= 1/3) and
				// the missing genuine always rejected (TAR <= 2/3): ROC
				// (1/3,0) (1/3,1/3) (1/3,2/3) (2/3,2/3) (1,2/3).
				EER: 1.0 / 3, TARAtFAR1e2: 0, TARAtFAR1e3: 0, Threshold: 0.5,
				Missing: 2,
			},
		},
		{
			// Fold numbers need not be contiguous; infinite similarities
			// are legitimate.
			name: "sparse folds and infinities",
			scores: []Score{
				genuine(inf, 3), impostor(-inf, 3),
				genuine(2, 7), impostor(-2, 7),
			},
			want: Report{
				Pairs: 4, Accuracy: 1, AccuracyStd: 0, FoldAccuracy: []float64{1, 1},
				EER: 0, TARAtFAR1e2: 1, TARAtFAR1e3: 1, Threshold: 0,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Evaluate(tt.scores)
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if !reportsNear(got, tt.want) {
				t.Errorf("Evaluate =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func reportsNear(a, b Report) bool {
	if a.Pairs != b.Pairs || a.Missing != b.Missing || len(a.FoldAccuracy) != len(b.FoldAccuracy) {
		return false
	}
	for i := range a.FoldAccuracy {
		if !near(a.FoldAccuracy[i], b.FoldAccuracy[i]) {
			return false
		}
	}
	return near(a.Accuracy, b.Accuracy) && near(a.AccuracyStd, b.AccuracyStd) &&
		near(a.EER, b.EER) && near(a.TARAtFAR1e2, b.TARAtFAR1e2) &&
		near(a.TARAtFAR1e3, b.TARAtFAR1e3) && near(a.Threshold, b.Threshold)
}

func TestEvaluateErrors(t *testing.T) {
	tests := []struct {
		name   string
		scores []Score
		want   string
	}{
		{"empty", nil, "no scores"},
		{"no genuine", []Score{impostor(0.1, 0), impostor(0.2, 1)}, "no genuine"},
		{"no impostor", []Score{genuine(0.1, 0), genuine(0.2, 1)}, "no impostor"},
		{"one fold", []Score{genuine(0.9, 4), impostor(0.1, 4)}, "1 fold, need at least 2"},
		{"NaN", []Score{genuine(0.9, 0), impostor(math.NaN(), 1)}, "score 1: similarity is NaN"},
		{"negative fold", []Score{genuine(0.9, 0), impostor(0.1, -1)}, "score 1: negative fold -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Evaluate(tt.scores)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Evaluate error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestBestThreshold(t *testing.T) {
	tests := []struct {
		name      string
		scores    []Score
		threshold float64
		accuracy  float64
	}{
		{
			name:      "separable",
			scores:    []Score{impostor(0.2, 0), genuine(0.6, 0)},
			threshold: 0.4, accuracy: 1,
		},
		{
			// Sorted 0.3- 0.4+ 0.5- 0.6+: 3 of 4 right at 0.35 and at
			// 0.55, two separate runs; the first wins.
			name:      "tie between runs",
			scores:    []Score{genuine(0.6, 0), genuine(0.4, 0), impostor(0.5, 0), impostor(0.3, 0)},
			threshold: 0.35, accuracy: 0.75,
		},
		{
			// Sorted 0.1- 0.5+ 0.5- 0.9+: 3 of 4 right at 0.3 and at 0.7,
			// one run since crossing 0.5 gains and loses one; its
			// midpoint is 0.5, which also gets 3 of 4 right.
			name:      "tied run across tied similarities",
			scores:    []Score{impostor(0.1, 0), genuine(0.5, 0), impostor(0.5, 0), genuine(0.9, 0)},
			threshold: 0.5, accuracy: 0.75,
		},
		{
			name:      "all genuine: accept all, below the lowest",
			scores:    []Score{genuine(0.3, 0), genuine(0.7, 0)},
			threshold: -0.7, accuracy: 1,
		},
		{
			name:      "all impostor: reject all, above the highest",
			scores:    []Score{impostor(0.3, 0), impostor(0.7, 0)},
			threshold: 1.7, accuracy: 1,
		},
		{
			name:      "inverted: accept all ties reject all; first wins",
			scores:    []Score{genuine(0.1, 0), impostor(0.9, 0)},
			threshold: -0.9, accuracy: 0.5,
		},
		{
			// Missing pairs lower the accuracy, not the threshold.
			name:      "missing",
			scores:    []Score{impostor(0.2, 0), genuine(0.6, 0), missing(true, 0), missing(false, 0)},
			threshold: 0.4, accuracy: 0.5,
		},
		{
			name:      "NaN is missing",
			scores:    []Score{impostor(0.2, 0), genuine(0.6, 0), genuine(math.NaN(), 0)},
			threshold: 0.4, accuracy: 2.0 / 3,
		},
		{
			name:      "only missing",
			scores:    []Score{missing(true, 0), missing(false, 0)},
			threshold: 0, accuracy: 0,
		},
		{
			// The midpoint of adjacent floats rounds onto one of them;
			// the threshold must still separate them.
			name:      "adjacent floats",
			scores:    []Score{impostor(1, 0), genuine(math.Nextafter(1, 2), 0)},
			threshold: math.Nextafter(1, 2), accuracy: 1,
		},
		{
			name:      "huge values do not overflow",
			scores:    []Score{impostor(-math.MaxFloat64, 0), genuine(math.MaxFloat64, 0)},
			threshold: 0, accuracy: 1,
		},
		{
			// +Inf cannot be rejected with >=, so reject-all is not a
			// candidate and accept-all wins.
			name:      "only +Inf impostor",
			scores:    []Score{impostor(math.Inf(1), 0)},
			threshold: math.Inf(1), accuracy: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			threshold, accuracy := BestThreshold(tt.scores)
			if !near(threshold, tt.threshold) || !near(accuracy, tt.accuracy) {
				t.Errorf("BestThreshold = %v, %v; want %v, %v", threshold, accuracy, tt.threshold, tt.accuracy)
			}
		})
	}
	if th, acc := BestThreshold(nil); !math.IsNaN(th) || !math.IsNaN(acc) {
		t.Errorf("BestThreshold(nil) = %v, %v; want NaN, NaN", th, acc)
	}
}

// accuracyAt counts right answers at threshold the slow, obvious way.
func accuracyAt(scores []Score, threshold float64) float64 {
	right := 0
	for _, s := range scores {
		if !s.Missing && (s.Similarity >= threshold) == s.Same {
			right++
		}
	}
	return float64(right) / float64(len(scores))
}

// randomScores returns n scores in 10 folds whose similarities are drawn
// from a few values when coarse, so that ties are common.
func randomScores(rng *rand.Rand, n int, coarse bool) []Score {
	scores := make([]Score, n)
	for i := range scores {
		same := rng.IntN(2) == 0
		sim := rng.NormFloat64()*0.15 + 0.2
		if same {
			sim += 0.4
		}
		if coarse {
			sim = math.Round(sim * 8)
		}
		scores[i] = Score{Similarity: sim, Same: same, Fold: i % 10, Missing: rng.IntN(50) == 0}
	}
	return scores
}

// TestBestThresholdBruteForce checks the sweep against trying every
// similarity as a threshold, which covers every distinct decision.
func TestBestThresholdBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 300 {
		scores := randomScores(rng, 1+rng.IntN(40), trial%2 == 0)
		best := accuracyAt(scores, math.Inf(1))
		for _, s := range scores {
			best = max(best, accuracyAt(scores, s.Similarity))
		}
		threshold, accuracy := BestThreshold(scores)
		if !near(accuracy, best) {
			t.Fatalf("trial %d: BestThreshold accuracy %v, brute force %v; scores %+v", trial, accuracy, best, scores)
		}
		if got := accuracyAt(scores, threshold); !near(got, accuracy) {
			t.Fatalf("trial %d: threshold %v gives accuracy %v, BestThreshold says %v", trial, threshold, got, accuracy)
		}
	}
}

// TestROCBruteForce checks ROC against counting at each threshold.
func TestROCBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 200 {
		scores := randomScores(rng, 2+rng.IntN(40), trial%2 == 0)
		scores[0].Same, scores[1].Same = true, false
		roc := ROC(scores)
		var genuine, impostor float64
		for _, s := range scores {
			if s.Same {
				genuine++
			} else {
				impostor++
			}
		}
		for i, p := range roc {
			var ta, fa float64
			for _, s := range scores {
				accepted := s.Similarity >= p.Threshold
				if s.Missing {
					accepted = !s.Same
				}
				if !accepted {
					continue
				}
				if s.Same {
					ta++
				} else {
					fa++
				}
			}
			if p.TAR != ta/genuine || p.FAR != fa/impostor {
				t.Fatalf("trial %d point %d: %+v, want FAR %v TAR %v", trial, i, p, fa/impostor, ta/genuine)
			}
			if i > 0 && (p.FAR < roc[i-1].FAR || p.TAR < roc[i-1].TAR || p.Threshold >= roc[i-1].Threshold) {
				t.Fatalf("trial %d: point %d %+v out of order after %+v", trial, i, p, roc[i-1])
			}
		}
		if last := roc[len(roc)-1]; last.FAR != 1 {
			t.Fatalf("trial %d: last point %+v does not accept every impostor", trial, last)
		}
	}
}

func TestROC(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name   string
		scores []Score
		want   []ROCPoint
	}{
		{
			name:   "hand computed",
			scores: []Score{genuine(0.9, 0), genuine(0.8, 0), genuine(0.4, 0), impostor(0.7, 0), impostor(0.3, 0)},
			want: []ROCPoint{
				{0, 0, inf}, {0, 1.0 / 3, 0.9}, {0, 2.0 / 3, 0.8}, {0.5, 2.0 / 3, 0.7},
				{0.5, 1, 0.4}, {1, 1, 0.3},
			},
		},
		{
			name:   "ties and missing",
			scores: []Score{genuine(0.5, 0), impostor(0.5, 0), missing(false, 0), missing(true, 0)},
			want:   []ROCPoint{{0.5, 0, inf}, {1, 0.5, 0.5}},
		},
		{
			name:   "+Inf similarity needs no extra point",
			scores: []Score{genuine(inf, 0), impostor(0, 0)},
			want:   []ROCPoint{{0, 1, inf}, {1, 1, 0}},
		},
		{name: "no impostor", scores: []Score{genuine(0.5, 0)}, want: nil},
		{name: "no genuine", scores: []Score{impostor(0.5, 0)}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ROC(tt.scores); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ROC =\n%v\nwant\n%v", got, tt.want)
			}
		})
	}
}

func TestEERAndTARAtFAR(t *testing.T) {
	// ROC (FAR, TAR): (0,0) (0,1/3) (0,2/3) (1/2,2/3) (1/2,1) (1,1).
	// FAR-FRR is -1/3 at (0,2/3) and +1/6 at (1/2,2/3); interpolating
	// two thirds of the way gives FAR = 1/3, FRR = 1/3.
	handmade := []Score{genuine(0.9, 0), genuine(0.8, 0), genuine(0.4, 0), impostor(0.7, 0), impostor(0.3, 0)}
	// Impostors at 0, 0.1, ..., 0.9; four genuine pairs above them all and
	// six between 0.8 and 0.9. ROC: (0,0) (0,0.1) ... (0,0.4) (0.1,0.4)
	// (0.1,0.5) ... (0.1,1) (0.2,1) ... (1,1); FAR = FRR = 0.1 at
	// (0.1,0.9).
	var tenEach []Score
	for i := range 10 {
		tenEach = append(tenEach, impostor(float64(i)/10, 0))
	}
	for _, sim := range []float64{0.95, 0.96, 0.97, 0.98, 0.81, 0.82, 0.83, 0.84, 0.85, 0.86} {
		tenEach = append(tenEach, genuine(sim, 0))
	}
	// Every impostor missing: FAR is 1 at every threshold, so FAR = FRR
	// only where everything is rejected.
	allMissingImpostors := []Score{genuine(0.9, 0), missing(false, 0)}

	tests := []struct {
		name   string
		scores []Score
		eer    float64
		far    float64
		tar    float64
	}{
		{"handmade at FAR 0", handmade, 1.0 / 3, 0, 2.0 / 3},
		{"handmade below a step", handmade, 1.0 / 3, 0.49, 2.0 / 3},
		{"handmade at a step", handmade, 1.0 / 3, 0.5, 1},
		{"ten each at 1e-2", tenEach, 0.1, 1e-2, 0.4},
		{"ten each at 0.1", tenEach, 0.1, 0.1, 1},
		{"all missing impostors", allMissingImpostors, 1, 0.5, 0},
		{"empty", nil, math.NaN(), 0.1, math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EER(tt.scores); !near(got, tt.eer) && !(math.IsNaN(got) && math.IsNaN(tt.eer)) {
				t.Errorf("EER = %v, want %v", got, tt.eer)
			}
			if got := TARAtFAR(tt.scores, tt.far); !near(got, tt.tar) && !(math.IsNaN(got) && math.IsNaN(tt.tar)) {
				t.Errorf("TARAtFAR(%v) = %v, want %v", tt.far, got, tt.tar)
			}
		})
	}
}

func BenchmarkEvaluate(b *testing.B) {
	scores := randomScores(rand.New(rand.NewPCG(5, 6)), 6000, false)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Evaluate(scores); err != nil {
			b.Fatal(err)
		}
	}
}
