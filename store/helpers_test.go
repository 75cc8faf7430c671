package store

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
)

// Encoder identities for the tests: fr_feature.onnx's sha256, and another.
const (
	testModel  = "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581"
	otherModel = "1234abcd5678ef901234abcd5678ef901234abcd5678ef901234abcd5678ef90"
	testDim    = 512
)

// openTest opens a database in a fresh directory, closed when the test ends.
func openTest(t testing.TB, model string) *DB {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "facegate.db"), model)
}

func openAt(t testing.TB, path, model string) *DB {
	t.Helper()
	db, err := Open(context.Background(), path, model)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

// unitVector is a random L2-normalised vector.
func unitVector(rng *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	var sum float64
	for i := range v {
		x := rng.NormFloat64()
		v[i] = float32(x)
		sum += x * x
	}
	norm := float32(math.Sqrt(sum))
	for i := range v {
		v[i] /= norm
	}
	return v
}

// makeTemplates makes n templates of model with random unit vectors.
func makeTemplates(rng *rand.Rand, model string, n, dim int) []Template {
	ts := make([]Template, n)
	for i := range ts {
		ts[i] = Template{
			Model:        model,
			ModelName:    "fr_feature.onnx",
			Vector:       unitVector(rng, dim),
			Quality:      rng.Float32(),
			SourceSHA256: strings.Repeat("ab", 32),
		}
	}
	return ts
}

// rawCount counts rows with SQL of the test's choosing, bypassing the API.
func rawCount(t testing.TB, db *DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.ro.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// checkOneLine fails unless err is a one-line error holding every want.
func checkOneLine(t testing.TB, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one saying %q", want)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not say %q", msg, w)
		}
	}
}
