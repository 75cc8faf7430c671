package learn

import (
	"math"
	"sync"
)

// dot64 is the dot product of two equal-length float64 vectors.
func dot64(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

// axpy adds alpha·x to y.
func axpy(alpha float64, x, y []float64) {
	y = y[:len(x)]
	i := 0
	for ; i+4 <= len(x); i += 4 {
		y[i] += alpha * x[i]
		y[i+1] += alpha * x[i+1]
		y[i+2] += alpha * x[i+2]
		y[i+3] += alpha * x[i+3]
	}
	for ; i < len(x); i++ {
		y[i] += alpha * x[i]
	}
}

// sqDist is ‖a − b‖².
func sqDist(a, b []float64) float64 {
	b = b[:len(a)]
	var s float64
	for i, x := range a {
		d := x - b[i]
		s += d * d
	}
	return s
}

// parallel runs f over [0, n) cut into at most workers contiguous chunks,
// one goroutine each, and waits. Each index is handled by exactly one
// call, in a fixed order within it, so results do not depend on timing.
func parallel(n, workers int, f func(lo, hi int)) {
	if workers <= 1 || n < 2 {
		f(0, n)
		return
	}
	workers = min(workers, n)
	var wg sync.WaitGroup
	for k := range workers {
		lo, hi := k*n/workers, (k+1)*n/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	wg.Wait()
}

// adam is the Adam optimiser (Kingma and Ba) over one parameter vector.
type adam struct {
	lr, beta1, beta2, eps float64
	t                     int
	m, v                  []float64
}

func newAdam(lr float64, n int) *adam {
	return &adam{lr: lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, m: make([]float64, n), v: make([]float64, n)}
}

// step moves w against the gradient g.
func (a *adam) step(w, g []float64) {
	a.t++
	c1 := 1 - math.Pow(a.beta1, float64(a.t))
	c2 := 1 - math.Pow(a.beta2, float64(a.t))
	lr := a.lr * math.Sqrt(c2) / c1
	for i, gi := range g {
		a.m[i] = a.beta1*a.m[i] + (1-a.beta1)*gi
		a.v[i] = a.beta2*a.v[i] + (1-a.beta2)*gi*gi
		w[i] -= lr * a.m[i] / (math.Sqrt(a.v[i]) + a.eps)
	}
}
