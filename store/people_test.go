package store

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEnrollAndRead(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, testModel)
	rng := rand.New(rand.NewPCG(2, 1))
	from := time.Date(2024, 5, 1, 8, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	until := time.Date(2025, 5, 1, 0, 0, 0, 123456789, time.UTC)
	ada := Person{ID: "ada", Name: "Ada Lovelace", Active: true, ValidFrom: from, ValidUntil: until}
	adaTemplates := makeTemplates(rng, testModel, 3, testDim)
	adaTemplates[1].SourceSHA256 = "" // optional
	adaTemplates[2].Created = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	bob := Person{ID: "bob", Name: "Bob", Active: false}

	before := time.Now().Add(-time.Second)
	// Out of id order, to see People and Gallery sort.
	if err := db.Enroll(ctx, bob, makeTemplates(rng, testModel, 1, testDim), false); err != nil {
		t.Fatal(err)
	}
	if err := db.Enroll(ctx, ada, adaTemplates, false); err != nil {
		t.Fatal(err)
	}

	got, err := db.Person(ctx, "ada")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != ada.ID || got.Name != ada.Name || got.Active != ada.Active ||
		!got.ValidFrom.Equal(from) || !got.ValidUntil.Equal(until) || got.Created.Before(before) {
		t.Errorf("Person(ada) = %+v, enrolled %+v", got, ada)
	}
	if got, _ := db.Person(ctx, "bob"); got.Active || !got.ValidFrom.IsZero() || !got.ValidUntil.IsZero() {
		t.Errorf("Person(bob) = %+v", got)
	}
	_, err = db.Person(ctx, "carol")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("Person(carol): %v, want ErrNotFound", err)
	}
	checkOneLine(t, err, `"carol"`, db.Path())

	people, err := db.People(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(people) != 2 || people[0].ID != "ada" || people[0].Templates != 3 || people[1].ID != "bob" || people[1].Templates != 1 {
		t.Errorf("People() = %+v", people)
	}

	_, gotPeople, templates, err := db.Gallery(ctx, testModel)
	if err != nil {
		t.Fatal(err)
	}
	if len(gotPeople) != 2 || len(templates) != 4 {
		t.Fatalf("gallery: %d people, %d templates", len(gotPeople), len(templates))
	}
	for i, want := range adaTemplates {
		got := templates[i]
		if got.Person != "ada" || got.Model != testModel || got.ModelName != want.ModelName ||
			got.Quality != want.Quality || got.SourceSHA256 != want.SourceSHA256 || got.ID == 0 {
			t.Errorf("template %d = %+v", i, got)
		}
		if !equalBits(got.Vector, want.Vector) {
			t.Errorf("template %d: vector differs", i)
		}
	}
	if !templates[2].Created.Equal(adaTemplates[2].Created) || templates[0].Created.Before(before) {
		t.Errorf("created: %v, %v", templates[0].Created, templates[2].Created)
	}
}

// equalBits compares vectors bit for bit.
func equalBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestEnrollExistingID(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 1))
	for _, tc := range []struct {
		name      string
		again     Person
		replace   bool
		templates int   // ada's afterwards
		kind      error // of the second enrollment's error
	}{
		{"same name adds", Person{ID: "ada", Name: "Ada", Active: false}, false, 2 + 3, nil},
		{"same name replaces", Person{ID: "ada", Name: "Ada"}, true, 3, nil},
		{"another name", Person{ID: "ada", Name: "Adam", Active: true}, false, 2, ErrNameMismatch},
		{"another name, replace", Person{ID: "ada", Name: "Adam", Active: true}, true, 2, ErrNameMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openTest(t, testModel)
			first := makeTemplates(rng, testModel, 2, testDim)
			if err := db.Enroll(ctx, Person{ID: "ada", Name: "Ada", Active: true}, first, false); err != nil {
				t.Fatal(err)
			}
			second := makeTemplates(rng, testModel, 3, testDim)
			err := db.Enroll(ctx, tc.again, second, tc.replace)
			if tc.kind == nil && err != nil {
				t.Fatal(err)
			}
			if tc.kind != nil {
				if !errors.Is(err, tc.kind) {
					t.Fatalf("error %v, want %v", err, tc.kind)
				}
				checkOneLine(t, err, `"ada"`, `"Ada"`, `"Adam"`)
			}
			_, _, templates, err := db.Gallery(ctx, testModel)
			if err != nil {
				t.Fatal(err)
			}
			if len(templates) != tc.templates {
				t.Errorf("ada has %d templates, want %d", len(templates), tc.templates)
			}
			if tc.replace && tc.kind == nil && !equalBits(templates[0].Vector, second[0].Vector) {
				t.Error("replace kept an old template first")
			}
			// The person's own fields are the first enrollment's: a second
			// enrollment does not reactivate or deactivate anyone.
			p, err := db.Person(ctx, "ada")
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != "Ada" || !p.Active {
				t.Errorf("ada is now %+v", p)
			}
		})
	}
}

// TestRefusedEnrollmentWritesNothing: whatever is wrong with an enrollment,
// and wherever in the list, nothing of it is written.
func TestRefusedEnrollmentWritesNothing(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(4, 1))
	good := func() []Template { return makeTemplates(rng, testModel, 3, testDim) }
	withBad := func(f func(*Template)) []Template {
		ts := good()
		f(&ts[1]) // in the middle: the first is fine, so a half-write would show
		return ts
	}
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	newcomer := Person{ID: "eve", Name: "Eve", Active: true}

	for _, tc := range []struct {
		name      string
		person    Person
		templates []Template
		kind      error
		want      []string
	}{
		{"wrong model in the middle", newcomer, withBad(func(t *Template) { t.Model = otherModel }), ErrOtherModel,
			[]string{`"eve"`, "template 2 of 3", "1234abcd5678…", "87aacdfe5751…"}},
		{"empty vector", newcomer, withBad(func(t *Template) { t.Vector = nil }), ErrInvalid, []string{`"eve"`, "template 2", "vector is empty"}},
		{"NaN", newcomer, withBad(func(t *Template) { t.Vector[7] = nan }), ErrInvalid, []string{`"eve"`, "vector[7] is NaN"}},
		{"Inf", newcomer, withBad(func(t *Template) { t.Vector[0] = inf }), ErrInvalid, []string{`"eve"`, "vector[0] is +Inf"}},
		{"not unit length", newcomer, withBad(func(t *Template) { t.Vector[0] += 0.5 }), ErrInvalid, []string{`"eve"`, "not L2-normalised"}},
		{"dimensions differ", newcomer, withBad(func(t *Template) { t.Vector = unitVector(rng, 128) }), ErrInvalid, []string{`"eve"`, "128 dimensions", "512"}},
		{"NaN quality", newcomer, withBad(func(t *Template) { t.Quality = nan }), ErrInvalid, []string{"quality"}},
		{"bad source sha256", newcomer, withBad(func(t *Template) { t.SourceSHA256 = "photo.jpg" }), ErrInvalid, []string{"source_sha256", "photo.jpg"}},
		{"someone else's template", newcomer, withBad(func(t *Template) { t.Person = "mallory" }), ErrInvalid, []string{`"mallory"`}},
		{"no templates", newcomer, nil, ErrInvalid, []string{`"eve"`, "no templates"}},
		{"empty id", Person{Name: "Eve"}, good(), ErrInvalid, []string{"id is empty"}},
		{"empty name", Person{ID: "eve"}, good(), ErrInvalid, []string{`"eve"`, "name is empty"}},
		{"control characters", Person{ID: "eve\n", Name: "Eve"}, good(), ErrInvalid, []string{"control characters"}},
		{"validity inverted", Person{ID: "eve", Name: "Eve", ValidFrom: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), ValidUntil: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)},
			good(), ErrInvalid, []string{`"eve"`, "valid_from 2025-01-01T00:00:00Z is after valid_until 2024-01-01T00:00:00Z"}},
		{"existing id, other name", Person{ID: "ada", Name: "Eve"}, good(), ErrNameMismatch, []string{`"ada"`, `"Ada"`, `"Eve"`}},
		{"dimension differs from the database's", newcomer, makeTemplates(rng, testModel, 2, 128), ErrInvalid, []string{`"eve"`, "512 dimensions", "128"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openTest(t, testModel)
			if err := db.Enroll(ctx, Person{ID: "ada", Name: "Ada", Active: true}, good(), false); err != nil {
				t.Fatal(err)
			}
			version, _ := db.GalleryVersion(ctx)
			peopleBefore, _ := db.People(ctx)
			templatesBefore := rawCount(t, db, `SELECT count(*) FROM templates`)

			err := db.Enroll(ctx, tc.person, tc.templates, false)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("error %v, want %v", err, tc.kind)
			}
			checkOneLine(t, err, tc.want...)
			// Replacing must not be a way around the checks either.
			if err := db.Enroll(ctx, tc.person, tc.templates, true); !errors.Is(err, tc.kind) {
				t.Errorf("with replace: error %v, want %v", err, tc.kind)
			}

			if v, _ := db.GalleryVersion(ctx); v != version {
				t.Errorf("gallery version %d → %d", version, v)
			}
			if people, _ := db.People(ctx); !reflect.DeepEqual(people, peopleBefore) {
				t.Errorf("people %+v → %+v", peopleBefore, people)
			}
			if n := rawCount(t, db, `SELECT count(*) FROM templates`); n != templatesBefore {
				t.Errorf("templates %d → %d", templatesBefore, n)
			}
			if n := rawCount(t, db, `SELECT count(*) FROM people WHERE id = ?`, tc.person.ID); tc.person.ID != "ada" && n != 0 {
				t.Errorf("%q was written", tc.person.ID)
			}
		})
	}
}

func TestEnrollNeedsModel(t *testing.T) {
	db := openTest(t, "")
	err := db.Enroll(context.Background(), Person{ID: "ada", Name: "Ada"}, makeTemplates(rand.New(rand.NewPCG(5, 1)), testModel, 1, testDim), false)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v, want ErrInvalid", err)
	}
	checkOneLine(t, err, "without an encoder identity")
}

func TestRemove(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, testModel)
	rng := rand.New(rand.NewPCG(6, 1))
	for _, id := range []string{"ada", "bob"} {
		if err := db.Enroll(ctx, Person{ID: id, Name: strings.ToUpper(id), Active: true}, makeTemplates(rng, testModel, 3, testDim), false); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		id        string
		kind      error
		people    int
		templates int
	}{
		{"ada", nil, 1, 3},
		{"ada", ErrNotFound, 1, 3},
		{"nobody", ErrNotFound, 1, 3},
		{"bob", nil, 0, 0},
	} {
		err := db.Remove(ctx, tc.id)
		if !errors.Is(err, tc.kind) || (tc.kind == nil) != (err == nil) {
			t.Errorf("Remove(%q): %v, want %v", tc.id, err, tc.kind)
		}
		if tc.kind != nil {
			checkOneLine(t, err, `"`+tc.id+`"`, "no person", db.Path())
		}
		// Templates go with their person (ON DELETE CASCADE, which needs
		// foreign_keys on).
		if n := rawCount(t, db, `SELECT count(*) FROM people`); n != tc.people {
			t.Errorf("after Remove(%q): %d people, want %d", tc.id, n, tc.people)
		}
		if n := rawCount(t, db, `SELECT count(*) FROM templates`); n != tc.templates {
			t.Errorf("after Remove(%q): %d templates, want %d", tc.id, n, tc.templates)
		}
	}
}

func TestSetActiveAndValidity(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, testModel)
	if err := db.Enroll(ctx, Person{ID: "ada", Name: "Ada", Active: true}, makeTemplates(rand.New(rand.NewPCG(7, 1)), testModel, 1, testDim), false); err != nil {
		t.Fatal(err)
	}
	jan := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	dec := time.Date(2025, 12, 31, 23, 59, 59, 0, time.UTC)

	for _, tc := range []struct {
		name        string
		do          func() error
		kind        error
		want        []string
		active      bool
		from, until time.Time
	}{
		{"deactivate", func() error { return db.SetActive(ctx, "ada", false) }, nil, nil, false, time.Time{}, time.Time{}},
		{"window", func() error { return db.SetValidity(ctx, "ada", jan, dec) }, nil, nil, false, jan, dec},
		{"reactivate", func() error { return db.SetActive(ctx, "ada", true) }, nil, nil, true, jan, dec},
		{"open end", func() error { return db.SetValidity(ctx, "ada", jan, time.Time{}) }, nil, nil, true, jan, time.Time{}},
		{"inverted window", func() error { return db.SetValidity(ctx, "ada", dec, jan) }, ErrInvalid, []string{`"ada"`, "after"}, true, jan, time.Time{}},
		{"unknown id, active", func() error { return db.SetActive(ctx, "zed", false) }, ErrNotFound, []string{`"zed"`}, true, jan, time.Time{}},
		{"unknown id, validity", func() error { return db.SetValidity(ctx, "zed", jan, dec) }, ErrNotFound, []string{`"zed"`}, true, jan, time.Time{}},
	} {
		err := tc.do()
		if !errors.Is(err, tc.kind) || (tc.kind == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.kind)
		}
		if tc.kind != nil {
			checkOneLine(t, err, tc.want...)
		}
		p, err := db.Person(ctx, "ada")
		if err != nil {
			t.Fatal(err)
		}
		if p.Active != tc.active || !p.ValidFrom.Equal(tc.from) || !p.ValidUntil.Equal(tc.until) {
			t.Errorf("%s: ada is %+v", tc.name, p)
		}
	}
}
