package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// enrollSome enrolls people with templates and returns them as enrolled.
func enrollSome(t testing.TB, db *DB, rng *rand.Rand) []Enrollment {
	t.Helper()
	ctx := context.Background()
	from := time.Date(2024, 3, 1, 9, 30, 0, 0, time.UTC)
	until := time.Date(2026, 3, 1, 0, 0, 0, 500, time.UTC)
	es := []Enrollment{
		{Person{ID: "ada", Name: "Ada Lovelace", Active: true}, makeTemplates(rng, testModel, 3, testDim)},
		{Person{ID: "bob", Name: "Bob “Bobby” Tables", Active: false, ValidFrom: from}, makeTemplates(rng, testModel, 1, testDim)},
		{Person{ID: "zoë", Name: "Zoë", Active: true, ValidFrom: from, ValidUntil: until}, makeTemplates(rng, testModel, 2, testDim)},
	}
	// Vectors with awkward bits: a negative zero and a subnormal must come
	// back exactly.
	v := es[0].Templates[0].Vector
	v[3] = float32(math.Copysign(0, -1))
	v[4] = math.SmallestNonzeroFloat32
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(sum)) // keeps the zero negative and the subnormal tiny
	}
	es[0].Templates[1].SourceSHA256 = ""
	es[0].Templates[2].Quality = 0.1 // not exact in binary
	for _, e := range es {
		if err := db.Enroll(ctx, e.Person, e.Templates, false); err != nil {
			t.Fatal(err)
		}
	}
	return es
}

func TestExportImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := openTest(t, testModel)
	rng := rand.New(rand.NewPCG(12, 1))
	enrollSome(t, src, rng)

	var file bytes.Buffer
	people, templates, err := src.Export(ctx, &file, testModel)
	if err != nil {
		t.Fatal(err)
	}
	if people != 3 || templates != 6 {
		t.Errorf("Export: %d people, %d templates; want 3, 6", people, templates)
	}
	if !json.Valid(file.Bytes()) {
		t.Fatalf("Export wrote invalid JSON:\n%s", file.Bytes())
	}

	f, err := ReadTemplates(bytes.NewReader(file.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if f.Model != testModel || f.ModelName != "fr_feature.onnx" || f.Dim != testDim || time.Since(f.Exported) > time.Minute {
		t.Errorf("header: %q %q %d %v", f.Model, f.ModelName, f.Dim, f.Exported)
	}

	dst := openTest(t, testModel)
	results, err := dst.Import(ctx, f, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Status != PersonCreated || r.Err != nil {
			t.Errorf("import %s: %v %v", r.ID, r.Status, r.Err)
		}
	}

	// Everything but the database's own row ids and the people's creation
	// times (the file does not carry them) comes back bit for bit.
	_, wantPeople, wantTemplates, err := src.Gallery(ctx, testModel)
	if err != nil {
		t.Fatal(err)
	}
	_, gotPeople, gotTemplates, err := dst.Gallery(ctx, testModel)
	if err != nil {
		t.Fatal(err)
	}
	for i := range wantPeople {
		wantPeople[i].Created, gotPeople[i].Created = time.Time{}, time.Time{}
	}
	if !reflect.DeepEqual(gotPeople, wantPeople) {
		t.Errorf("people:\n got %+v\nwant %+v", gotPeople, wantPeople)
	}
	if len(gotTemplates) != len(wantTemplates) {
		t.Fatalf("%d templates, want %d", len(gotTemplates), len(wantTemplates))
	}
	for i := range wantTemplates {
		got, want := gotTemplates[i], wantTemplates[i]
		if !equalBits(got.Vector, want.Vector) {
			t.Errorf("template %d of %s: vector differs", i, want.Person)
		}
		got.ID, want.ID = 0, 0
		got.Vector, want.Vector = nil, nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("template %d:\n got %+v\nwant %+v", i, got, want)
		}
	}

	// Exporting the copy gives the same file, but for the export time.
	var again bytes.Buffer
	if _, _, err := dst.Export(ctx, &again, ""); err != nil {
		t.Fatal(err)
	}
	if stripExported(again.String()) != stripExported(file.String()) {
		t.Errorf("export of the import differs:\n%s\n%s", again.String(), file.String())
	}
}

func stripExported(s string) string {
	i := strings.Index(s, `"exported":`)
	return s[:i] + s[i+len(`"exported":"2006-01-02T15:04:05Z"`):]
}

func TestExportNothing(t *testing.T) {
	db := openTest(t, testModel)
	var buf bytes.Buffer
	_, _, err := db.Export(context.Background(), &buf, testModel)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Export of an empty database: %v, want ErrNotFound", err)
	}
	checkOneLine(t, err, db.Path(), "no templates", "87aacdfe5751…")
	if buf.Len() != 0 {
		t.Errorf("wrote %q", buf.String())
	}
}

// validFile is a small, valid template file as JSON values, for tests to
// spoil.
func validFile(rng *rand.Rand, dim int) map[string]any {
	vec := func() string { return base64.StdEncoding.EncodeToString(encodeVector(unitVector(rng, dim))) }
	return map[string]any{
		"format": "facegate-templates", "version": 1, "model": testModel, "model_name": "fr_feature.onnx",
		"dim": dim, "exported": "2024-05-01T12:00:00Z",
		"people": []any{
			map[string]any{"id": "ada", "name": "Ada", "active": true, "valid_from": nil, "valid_until": "2030-01-01T00:00:00Z",
				"templates": []any{
					map[string]any{"vector": vec(), "quality": 0.9, "source_sha256": strings.Repeat("0f", 32), "created": "2024-04-01T10:00:00Z"},
					map[string]any{"vector": vec(), "quality": 0.8},
				}},
			map[string]any{"id": "bob", "name": "Bob", "active": false,
				"templates": []any{map[string]any{"vector": vec()}}},
		},
	}
}

func TestReadTemplatesRefuses(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 1))
	const dim = 8
	person := func(doc map[string]any, i int) map[string]any { return doc["people"].([]any)[i].(map[string]any) }
	template := func(doc map[string]any, i, j int) map[string]any {
		return person(doc, i)["templates"].([]any)[j].(map[string]any)
	}
	vector := func(v []float32) string { return base64.StdEncoding.EncodeToString(encodeVector(v)) }
	nanVector := unitVector(rng, dim)
	nanVector[5] = float32(math.NaN())

	for _, tc := range []struct {
		name  string
		spoil func(doc map[string]any)
		raw   string // instead of the spoiled document
		want  []string
	}{
		{"not JSON", nil, "PK\x03\x04 a zip file", []string{"not a facegate template file"}},
		{"a JSON array", nil, `[1, 2]`, []string{"not a facegate template file"}},
		{"other format", func(d map[string]any) { d["format"] = "faces" }, "", []string{"not a facegate template file", `"faces"`}},
		{"newer version", func(d map[string]any) { d["version"] = 2 }, "", []string{"version 2", "newer facegate", "upgrade"}},
		{"no version", func(d map[string]any) { delete(d, "version") }, "", []string{"version is missing"}},
		{"no model", func(d map[string]any) { delete(d, "model") }, "", []string{"model is missing"}},
		{"zero dim", func(d map[string]any) { d["dim"] = 0 }, "", []string{"dim 0"}},
		{"dim too large", func(d map[string]any) { d["dim"] = 1 << 30 }, "", []string{"dim 1073741824"}},
		{"unknown field", func(d map[string]any) { d["photos"] = []any{} }, "", []string{`unknown field "photos"`}},
		{"no people", func(d map[string]any) { delete(d, "people") }, "", []string{"people is missing"}},
		{"bad exported", func(d map[string]any) { d["exported"] = "yesterday" }, "", []string{"exported"}},
		{"empty id", func(d map[string]any) { person(d, 1)["id"] = "" }, "", []string{"person #2", "id is empty"}},
		{"duplicate id", func(d map[string]any) { person(d, 1)["id"] = "ada" }, "", []string{`person "ada"`, "twice"}},
		{"empty name", func(d map[string]any) { person(d, 1)["name"] = "" }, "", []string{`person "bob"`, "name is empty"}},
		{"no active", func(d map[string]any) { delete(person(d, 1), "active") }, "", []string{`person "bob"`, "active is missing"}},
		{"unknown person field", func(d map[string]any) { person(d, 1)["photo"] = "x.jpg" }, "", []string{"person #2", `"photo"`}},
		{"bad valid_until", func(d map[string]any) { person(d, 0)["valid_until"] = "2030-13-01" }, "", []string{`person "ada"`, "valid_until"}},
		{"inverted validity", func(d map[string]any) { person(d, 0)["valid_from"] = "2031-01-01T00:00:00Z" }, "", []string{`person "ada"`, "after valid_until"}},
		{"no templates", func(d map[string]any) { person(d, 1)["templates"] = []any{} }, "", []string{`person "bob"`, "templates: none"}},
		{"not base64", func(d map[string]any) { template(d, 0, 1)["vector"] = "!!!" }, "", []string{`person "ada"`, "templates[1].vector", "base64"}},
		{"ragged bytes", func(d map[string]any) {
			template(d, 0, 1)["vector"] = base64.StdEncoding.EncodeToString([]byte{1, 2, 3})
		}, "",
			[]string{`person "ada"`, "templates[1].vector", "3 bytes"}},
		{"wrong length", func(d map[string]any) { template(d, 1, 0)["vector"] = vector(unitVector(rng, dim*2)) }, "",
			[]string{`person "bob"`, "templates[0].vector", "64 bytes", "4×dim = 32"}},
		{"NaN", func(d map[string]any) { template(d, 0, 0)["vector"] = vector(nanVector) }, "", []string{`person "ada"`, "templates[0]", "vector[5] is NaN"}},
		{"not unit length", func(d map[string]any) { template(d, 0, 0)["vector"] = vector(make([]float32, dim)) }, "",
			[]string{`person "ada"`, "templates[0]", "not L2-normalised (norm 0)"}},
		{"bad source_sha256", func(d map[string]any) { template(d, 0, 0)["source_sha256"] = "abc" }, "", []string{`person "ada"`, "source_sha256"}},
		{"bad created", func(d map[string]any) { template(d, 0, 0)["created"] = "now" }, "", []string{`person "ada"`, "templates[0].created"}},
		{"quality a string", func(d map[string]any) { template(d, 0, 0)["quality"] = "high" }, "", []string{"person #1", "quality"}},
		{"trailing data", nil, "", []string{"after the end"}},
		{"duplicate field", nil, "", []string{`"model" appears twice`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := validFile(rng, dim)
			if tc.spoil != nil {
				tc.spoil(doc)
			}
			b, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.raw != "":
				b = []byte(tc.raw)
			case tc.name == "trailing data":
				b = append(b, " {}"...)
			case tc.name == "duplicate field":
				b = append([]byte(`{"model":"x",`), b[1:]...)
			}
			_, err = ReadTemplates(bytes.NewReader(b))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v, want ErrInvalid", err)
			}
			checkOneLine(t, err, tc.want...)
		})
	}

	// And the unspoiled file reads, or the cases above prove nothing.
	b, _ := json.Marshal(validFile(rng, dim))
	f, err := ReadTemplates(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.People) != 2 || len(f.People[0].Templates) != 2 || f.People[0].Templates[0].Model != testModel ||
		f.People[0].Person.ValidUntil.Year() != 2030 || f.People[1].Person.Active {
		t.Errorf("read %+v", f)
	}
}

// TestReadTemplatesBounds feeds files past the size and template limits
// (scaled down, so the test is quick; ReadTemplates uses the same code with
// the real limits).
func TestReadTemplatesBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 1))
	b, _ := json.Marshal(validFile(rng, 8))
	for _, tc := range []struct {
		name              string
		input             string
		maxBytes, maxTpls int64
		want              string
	}{
		{"fits", string(b), int64(len(b)), 3, ""},
		{"a byte too large", string(b), int64(len(b)) - 1, 3, "larger than"},
		{"one template too many", string(b), int64(len(b)), 2, "more than 2 templates"},
		{"endless whitespace", `{"people":` + strings.Repeat(" ", 10000), 5000, 3, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readTemplatesLimited(strings.NewReader(tc.input), tc.maxBytes, int(tc.maxTpls))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v, want ErrInvalid", err)
			}
			checkOneLine(t, err, tc.want)
		})
	}
}

func TestImport(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(15, 1))
	file := func() TemplateFile {
		b, _ := json.Marshal(validFile(rng, testDim))
		f, err := ReadTemplates(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}

	for _, tc := range []struct {
		name      string
		existing  []Person // enrolled first, 2 templates each
		replace   bool
		model     string // of the file, if not testModel
		kind      error  // of Import's error
		statuses  string
		templates map[string]int
	}{
		{"new database", nil, false, "", nil, "ada:created bob:created", map[string]int{"ada": 2, "bob": 1}},
		{"ada there", []Person{{ID: "ada", Name: "Ada"}}, false, "", nil, "ada:added bob:created", map[string]int{"ada": 4, "bob": 1}},
		{"ada there, replace", []Person{{ID: "ada", Name: "Ada"}}, true, "", nil, "ada:replaced bob:created", map[string]int{"ada": 2, "bob": 1}},
		{"ada is someone else", []Person{{ID: "ada", Name: "Ada Byron"}}, true, "", nil, "ada:refused bob:created", map[string]int{"ada": 2, "bob": 1}},
		{"another encoder", []Person{{ID: "ada", Name: "Ada"}}, false, otherModel, ErrOtherModel, "", map[string]int{"ada": 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openTest(t, testModel)
			for _, p := range tc.existing {
				if err := db.Enroll(ctx, p, makeTemplates(rng, testModel, 2, testDim), false); err != nil {
					t.Fatal(err)
				}
			}
			version, _ := db.GalleryVersion(ctx)
			f := file()
			if tc.model != "" {
				f.Model = tc.model
			}
			results, err := db.Import(ctx, f, tc.replace)
			if !errors.Is(err, tc.kind) || (tc.kind == nil) != (err == nil) {
				t.Fatalf("Import: %v, want %v", err, tc.kind)
			}
			if tc.kind != nil {
				checkOneLine(t, err, db.Path(), "1234abcd5678…", "87aacdfe5751…")
				if v, _ := db.GalleryVersion(ctx); v != version {
					t.Error("a refused file changed the gallery")
				}
			}
			var statuses []string
			for _, r := range results {
				statuses = append(statuses, r.ID+":"+r.Status.String())
				if (r.Status == PersonRefused) != errors.Is(r.Err, ErrNameMismatch) {
					t.Errorf("%s: %v with error %v", r.ID, r.Status, r.Err)
				}
				if r.Err != nil {
					checkOneLine(t, r.Err, `"ada"`, `"Ada Byron"`, `"Ada"`)
				}
			}
			if got := strings.Join(statuses, " "); got != tc.statuses {
				t.Errorf("results %q, want %q", got, tc.statuses)
			}
			people, err := db.People(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			for _, p := range people {
				got[p.ID] = p.Templates
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.templates) {
				t.Errorf("templates per person %v, want %v", got, tc.templates)
			}
		})
	}
}

func TestImportRefusesOtherDimension(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(16, 1))
	db := openTest(t, testModel)
	if err := db.Enroll(ctx, Person{ID: "zed", Name: "Zed"}, makeTemplates(rng, testModel, 1, testDim), false); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(validFile(rng, 128))
	f, err := ReadTemplates(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	results, err := db.Import(ctx, f, false)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Import: %v, want ErrInvalid", err)
	}
	checkOneLine(t, err, "128 dimensions", "512")
	if len(results) != 0 || rawCount(t, db, `SELECT count(*) FROM people`) != 1 {
		t.Errorf("wrote something: %+v", results)
	}
}
