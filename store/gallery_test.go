package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestGalleryVersionSeenByAnotherConnection: every change bumps the
// version, and a second *DB on the file (the daemon, while an admin
// enrolls) sees it without reopening.
func TestGalleryVersionSeenByAnotherConnection(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "facegate.db")
	admin := openAt(t, path, testModel)
	door := openAt(t, path, testModel)
	rng := rand.New(rand.NewPCG(8, 1))
	enroll := func(id string, replace bool) func() error {
		return func() error {
			return admin.Enroll(ctx, Person{ID: id, Name: id, Active: true}, makeTemplates(rng, testModel, 2, testDim), replace)
		}
	}

	last, err := door.GalleryVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name string
		do   func() error
	}{
		{"enroll ada", enroll("ada", false)},
		{"enroll bob", enroll("bob", false)},
		{"add to ada", enroll("ada", false)},
		{"replace ada's", enroll("ada", true)},
		{"deactivate bob", func() error { return admin.SetActive(ctx, "bob", false) }},
		{"activate bob", func() error { return admin.SetActive(ctx, "bob", true) }},
		{"bob's window", func() error {
			return admin.SetValidity(ctx, "bob", time.Now(), time.Now().Add(time.Hour))
		}},
		{"remove ada", func() error { return admin.Remove(ctx, "ada") }},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		v, err := door.GalleryVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v <= last {
			t.Errorf("%s: the other connection sees version %d, was %d", step.name, v, last)
		}
		// The gallery read in a snapshot carries the same version.
		gv, _, _, err := door.Gallery(ctx, testModel)
		if err != nil {
			t.Fatal(err)
		}
		if gv != v {
			t.Errorf("%s: Gallery says version %d, GalleryVersion %d", step.name, gv, v)
		}
		last = v
	}

	// Reading does not bump it.
	door.Gallery(ctx, testModel)
	door.People(ctx)
	if v, _ := door.GalleryVersion(ctx); v != last {
		t.Errorf("reads moved the version %d → %d", last, v)
	}
}

func TestGalleryContents(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, testModel)
	rng := rand.New(rand.NewPCG(9, 1))
	past := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, p := range []Person{
		{ID: "carol", Name: "Carol", Active: true},
		{ID: "ada", Name: "Ada", Active: false},                                   // inactive
		{ID: "bob", Name: "Bob", Active: true, ValidFrom: past, ValidUntil: past}, // expired
	} {
		if err := db.Enroll(ctx, p, makeTemplates(rng, testModel, 2, testDim), false); err != nil {
			t.Fatal(err)
		}
	}
	// A template of another encoder, put there behind the API's back (as an
	// older facegate might have): Gallery must leave it out.
	if _, err := db.rw.ExecContext(ctx, `INSERT INTO people (id, name, active, created) VALUES ('dan', 'Dan', 1, '2024-01-01T00:00:00Z');
		INSERT INTO templates (person, model, model_name, dim, vector, created) VALUES ('dan', ?, 'old.onnx', 2, ?, '2024-01-01T00:00:00Z')`,
		otherModel, encodeVector([]float32{0.6, 0.8})); err != nil {
		t.Fatal(err)
	}

	_, people, templates, err := db.Gallery(ctx, "") // "": the DB's model
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range people {
		ids = append(ids, p.ID)
	}
	if fmt.Sprint(ids) != "[ada bob carol]" {
		t.Errorf("people %v, want [ada bob carol]", ids)
	}
	if people[0].Active || !people[1].ValidUntil.Equal(past) {
		t.Errorf("people's fields lost: %+v", people)
	}
	var order []string
	for i, tp := range templates {
		order = append(order, tp.Person)
		if i > 0 && tp.Person == templates[i-1].Person && tp.ID <= templates[i-1].ID {
			t.Errorf("templates of %s out of id order", tp.Person)
		}
		if tp.Model != testModel || len(tp.Vector) != testDim {
			t.Errorf("template %d: model %s, %d dims", tp.ID, tp.Model, len(tp.Vector))
		}
	}
	if fmt.Sprint(order) != "[ada ada bob bob carol carol]" {
		t.Errorf("templates in order %v", order)
	}

	_, people, templates, err = db.Gallery(ctx, otherModel)
	if err != nil {
		t.Fatal(err)
	}
	if len(people) != 1 || people[0].ID != "dan" || len(templates) != 1 || templates[0].Vector[1] != 0.8 {
		t.Errorf("gallery of the other encoder: %+v %+v", people, templates)
	}
}

// TestGalleryNeverSeesHalfAnEnrollment reads the gallery through a second
// *DB in a loop while a writer enrolls people with several templates each:
// every person read must have all of theirs.
func TestGalleryNeverSeesHalfAnEnrollment(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	path := filepath.Join(t.TempDir(), "facegate.db")
	admin := openAt(t, path, testModel)
	door := openAt(t, path, testModel)
	const perPerson = 4
	const dim = 64 // small, so many enrollments land while the reader reads

	var enrolled atomic.Int64
	writerDone := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(10, 1))
		for i := 0; ; i++ {
			id := fmt.Sprintf("p%05d", i)
			err := admin.Enroll(ctx, Person{ID: id, Name: id, Active: true}, makeTemplates(rng, testModel, perPerson, dim), false)
			if ctx.Err() != nil {
				writerDone <- nil
				return
			}
			if err != nil {
				writerDone <- err
				return
			}
			enrolled.Add(1)
			// Now and then replace a person's templates: a reader must see
			// the old ones or the new ones, never both nor none.
			if i%5 == 4 {
				prev := fmt.Sprintf("p%05d", i-2)
				if err := admin.Enroll(ctx, Person{ID: prev, Name: prev}, makeTemplates(rng, testModel, perPerson, dim), true); err != nil && ctx.Err() == nil {
					writerDone <- err
					return
				}
			}
		}
	}()

	reads := 0
	var lastVersion int64
	var lastPeople int
	for ctx.Err() == nil {
		version, people, templates, err := door.Gallery(context.Background(), testModel)
		if err != nil {
			t.Fatal(err)
		}
		reads++
		if version < lastVersion || len(people) < lastPeople {
			t.Fatalf("went back: version %d → %d, people %d → %d", lastVersion, version, lastPeople, len(people))
		}
		lastVersion, lastPeople = version, len(people)
		count := map[string]int{}
		for _, tp := range templates {
			count[tp.Person]++
		}
		if len(count) != len(people) {
			t.Fatalf("read %d: %d people but templates of %d", reads, len(people), len(count))
		}
		for _, p := range people {
			if count[p.ID] != perPerson {
				t.Fatalf("read %d (version %d): %s has %d of %d templates", reads, version, p.ID, count[p.ID], perPerson)
			}
		}
	}
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d gallery reads while %d people were enrolled", reads, enrolled.Load())
	if reads < 10 || enrolled.Load() < 10 {
		t.Errorf("too little overlap to show anything: %d reads, %d enrollments", reads, enrolled.Load())
	}
}

// BenchmarkGallery loads a gallery of 10,000 templates of 512 floats.
func BenchmarkGallery(b *testing.B) {
	ctx := context.Background()
	db := openTest(b, testModel)
	rng := rand.New(rand.NewPCG(11, 1))
	const people, perPerson = 2500, 4
	f := TemplateFile{Model: testModel, Dim: testDim}
	for i := range people {
		id := fmt.Sprintf("p%05d", i)
		f.People = append(f.People, Enrollment{Person{ID: id, Name: id, Active: true}, makeTemplates(rng, testModel, perPerson, testDim)})
	}
	if _, err := db.Import(ctx, f, false); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(people * perPerson * testDim * 4)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_, _, templates, err := db.Gallery(ctx, testModel)
		if err != nil {
			b.Fatal(err)
		}
		if len(templates) != people*perPerson {
			b.Fatalf("%d templates", len(templates))
		}
	}
}
