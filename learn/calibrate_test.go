package learn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestScoresFARMatchesCount checks the FAR Calibrate reports against a
// plain count of the impostor scores at or above its threshold, with ties.
func TestScoresFARMatchesCount(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		imp := make([]float32, 1+r.IntN(50))
		for i := range imp {
			imp[i] = float32(r.IntN(8)) / 8 // many ties
		}
		// a score just above another: a threshold may fall exactly on it
		imp = append(imp, math.Nextafter32(imp[0], 2))
		s, _ := NewScores([]float32{0.5}, imp)
		for _, far := range []float64{0.01, 0.1, 0.3, 0.6} {
			c, _ := s.Calibrate(far)
			n := 0
			for _, x := range imp {
				if x >= c.Threshold {
					n++
				}
			}
			if c.FAR != float64(n)/float64(len(imp)) {
				t.Fatalf("trial %d far %v: FAR %v, count %d/%d", trial, far, c.FAR, n, len(imp))
			}
		}
	}
}
