package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// FuzzReadTemplates: ReadTemplates never panics, refuses with ErrInvalid,
// never holds more decoded vector data than its input's size, and what it
// accepts is what it promises to have validated.
func FuzzReadTemplates(f *testing.F) {
	rng := rand.New(rand.NewPCG(20, 1))
	valid, _ := json.Marshal(validFile(rng, 4))
	f.Add(valid)
	f.Add([]byte(`{"format":"facegate-templates","version":1,"model":"m","dim":1,"people":[{"id":"a","name":"A","active":true,"templates":[{"vector":"AACAPw=="}]}]}`))
	f.Add([]byte(`{"format":"facegate-templates","version":1,"model":"m","dim":2,"people":[]}`))
	f.Add([]byte(`{"people":[{"templates":[{"vector":"AADAfw=="}]}]}`)) // NaN
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"format":"facegate-templates","version":1,"model":"m","dim":1,"people":[{"id":"a","name":"A","active":true,"templates":[{"vector":"AACAPw=="}]},{"id":"a","name":"A","active":true,"templates":[{"vector":"AACAPw=="}]}]}`))
	// A real export.
	db := openTest(f, testModel)
	enrollSome(f, db, rng)
	var export bytes.Buffer
	if _, _, err := db.Export(context.Background(), &export, testModel); err != nil {
		f.Fatal(err)
	}
	f.Add(export.Bytes())

	f.Fuzz(func(t *testing.T, data []byte) {
		tf, err := ReadTemplates(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %q is not ErrInvalid", err)
			}
			if bytes.ContainsRune([]byte(err.Error()), '\n') {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if tf.Model == "" || tf.Dim < 1 || tf.Dim > MaxDim {
			t.Fatalf("accepted model %q, dim %d", tf.Model, tf.Dim)
		}
		ids := map[string]bool{}
		floats := 0
		for _, e := range tf.People {
			if checkPerson(e.Person) != nil || ids[e.Person.ID] || len(e.Templates) == 0 {
				t.Fatalf("accepted person %+v with %d templates", e.Person, len(e.Templates))
			}
			ids[e.Person.ID] = true
			for _, tp := range e.Templates {
				if len(tp.Vector) != tf.Dim || tp.Model != tf.Model || tp.Person != e.Person.ID {
					t.Fatalf("accepted a template of %d dims, model %q, person %q", len(tp.Vector), tp.Model, tp.Person)
				}
				var sum float64
				for _, x := range tp.Vector {
					sum += float64(x) * float64(x)
				}
				if math.IsNaN(sum) || math.Abs(math.Sqrt(sum)-1) > UnitTolerance {
					t.Fatalf("accepted a vector of norm %v", math.Sqrt(sum))
				}
				floats += len(tp.Vector)
			}
		}
		if 4*floats > len(data) {
			t.Fatalf("%d bytes of vectors from %d bytes of input", 4*floats, len(data))
		}
	})
}
