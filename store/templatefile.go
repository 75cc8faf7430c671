package store

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The portable template file: one JSON document that loads a second door
// without the photos,
//
//	{"format":"facegate-templates","version":1,"model":"...","model_name":"...","dim":512,
//	 "exported":"2024-05-01T12:00:00Z","people":[
//	{"id":"...","name":"...","active":true,"valid_from":null,"valid_until":"2025-01-01T00:00:00Z",
//	 "templates":[{"vector":"<base64 of dim little-endian float32>","quality":0.9,
//	               "source_sha256":"...","created":"..."}]}
//	]}
const (
	TemplateFileFormat  = "facegate-templates"
	TemplateFileVersion = 1

	// Bounds on what ReadTemplates accepts, so a damaged or hostile file
	// cannot exhaust a door controller's memory.
	MaxTemplateFileBytes     = 512 << 20
	MaxTemplateFileTemplates = 1_000_000
)

// TemplateFile is a portable template file, read and validated.
type TemplateFile struct {
	Model     string // encoder identity
	ModelName string
	Dim       int
	Exported  time.Time
	People    []Enrollment
}

// Enrollment is a person and their templates.
type Enrollment struct {
	Person    Person
	Templates []Template
}

// ImportResult is what importing one person did.
type ImportResult struct {
	ID, Name  string
	Status    EnrollStatus
	Templates int   // in the file
	Err       error // why the person was refused
}

type filePerson struct {
	ID         string         `json:"id"`
	Name       string         `json:"name"`
	Active     *bool          `json:"active"`
	ValidFrom  *string        `json:"valid_from"`
	ValidUntil *string        `json:"valid_until"`
	Templates  []fileTemplate `json:"templates"`
}

type fileTemplate struct {
	Vector       string  `json:"vector"`
	Quality      float32 `json:"quality"`
	SourceSHA256 string  `json:"source_sha256,omitempty"`
	Created      string  `json:"created,omitempty"`
}

// Export writes every person with templates of model (the DB's model if
// "") and those templates as a portable template file, from one consistent
// snapshot. A database without such templates is ErrNotFound. On an error
// w may hold part of a file: write to a temporary file and rename it.
func (db *DB) Export(ctx context.Context, w io.Writer, model string) (people, templates int, err error) {
	if model == "" {
		model = db.model
	}
	op := fmt.Sprintf("export templates of encoder %s from %s", shortModel(model), db.path)
	if model == "" {
		return 0, 0, newError(ErrInvalid, "%s: no encoder identity given", op)
	}
	tx, err := db.ro.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, 0, db.sqlError(op, err)
	}
	defer tx.Rollback()

	var count, dims, dim int
	var modelName string
	if err := tx.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT dim), coalesce(min(dim), 0), coalesce((SELECT model_name FROM templates WHERE model = ?1 ORDER BY id LIMIT 1), '') FROM templates WHERE model = ?1`, model).
		Scan(&count, &dims, &dim, &modelName); err != nil {
		return 0, 0, db.sqlError(op, err)
	}
	if count == 0 {
		return 0, 0, newError(ErrNotFound, "%s: no templates of that encoder", op)
	}
	if dims != 1 {
		return 0, 0, fmt.Errorf("%s: templates of one encoder have %d different dimensions", op, dims)
	}

	rows, err := tx.QueryContext(ctx, `SELECT p.id, p.name, p.active, p.valid_from, p.valid_until, t.vector, t.quality, t.source_sha256, t.created
		FROM templates t JOIN people p ON p.id = t.person WHERE t.model = ? ORDER BY t.person, t.id`, model)
	if err != nil {
		return 0, 0, db.sqlError(op, err)
	}
	defer rows.Close()

	bw := bufio.NewWriter(w)
	header, err := json.Marshal(struct {
		Format    string `json:"format"`
		Version   int    `json:"version"`
		Model     string `json:"model"`
		ModelName string `json:"model_name"`
		Dim       int    `json:"dim"`
		Exported  string `json:"exported"`
	}{TemplateFileFormat, TemplateFileVersion, model, modelName, dim, time.Now().UTC().Format(time.RFC3339)})
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", op, err)
	}
	// The people are streamed, one a line, after the header's fields.
	bw.Write(header[:len(header)-1])
	bw.WriteString(`,"people":[`)
	var p *filePerson
	flush := func() error {
		if p == nil {
			return nil
		}
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		if people > 0 {
			bw.WriteByte(',')
		}
		bw.WriteByte('\n')
		bw.Write(b)
		people++
		return nil
	}
	for rows.Next() {
		var id, name string
		var active bool
		var from, until, source sql.NullString
		var vector []byte
		var quality sql.NullFloat64
		var created string
		if err := rows.Scan(&id, &name, &active, &from, &until, &vector, &quality, &source, &created); err != nil {
			return 0, 0, db.sqlError(op, err)
		}
		if p == nil || p.ID != id {
			if err := flush(); err != nil {
				return 0, 0, fmt.Errorf("%s: person %q: %w", op, p.ID, err)
			}
			p = &filePerson{ID: id, Name: name, Active: &active}
			if from.Valid {
				p.ValidFrom = &from.String
			}
			if until.Valid {
				p.ValidUntil = &until.String
			}
		}
		p.Templates = append(p.Templates, fileTemplate{
			Vector:       base64.StdEncoding.EncodeToString(vector),
			Quality:      float32(quality.Float64),
			SourceSHA256: source.String,
			Created:      created,
		})
		templates++
	}
	if err := rows.Err(); err != nil {
		return 0, 0, db.sqlError(op, err)
	}
	if err := flush(); err != nil {
		return 0, 0, fmt.Errorf("%s: person %q: %w", op, p.ID, err)
	}
	bw.WriteString("\n]}\n")
	if err := bw.Flush(); err != nil {
		return 0, 0, fmt.Errorf("%s: write: %w", op, err)
	}
	return people, templates, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// ReadTemplates reads a portable template file and validates all of it —
// format, version, encoder, dimensions, every vector (base64, 4·dim bytes,
// finite, unit length), ids (non-empty, unique), names, sizes — before the
// caller writes anything. Errors are ErrInvalid and name the person and the
// field; the caller adds the file's name.
func ReadTemplates(r io.Reader) (TemplateFile, error) {
	return readTemplatesLimited(r, MaxTemplateFileBytes, MaxTemplateFileTemplates)
}

func readTemplatesLimited(r io.Reader, maxBytes int64, maxTemplates int) (TemplateFile, error) {
	cr := &countingReader{r: io.LimitReader(r, maxBytes+1)}
	f, err := readTemplates(json.NewDecoder(cr), maxTemplates)
	if cr.n > maxBytes {
		return TemplateFile{}, newError(ErrInvalid, "template file is larger than %s", byteSize(maxBytes))
	}
	if err != nil {
		return TemplateFile{}, &kindError{ErrInvalid, oneLine(err.Error()), err}
	}
	return f, nil
}

// byteSize says n in MiB when it is whole MiB.
func byteSize(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

func readTemplates(dec *json.Decoder, maxTemplates int) (TemplateFile, error) {
	var f TemplateFile
	dec.DisallowUnknownFields()
	if err := expectDelim(dec, '{'); err != nil {
		return f, fmt.Errorf("not a facegate template file: %w", err)
	}
	var format, exported string
	version := -1
	seen := map[string]bool{}
	templates := 0
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return f, err
		}
		key, _ := tok.(string)
		if seen[key] {
			return f, fmt.Errorf("field %q appears twice", key)
		}
		seen[key] = true
		switch key {
		case "format":
			err = dec.Decode(&format)
		case "version":
			err = dec.Decode(&version)
		case "model":
			err = dec.Decode(&f.Model)
		case "model_name":
			err = dec.Decode(&f.ModelName)
		case "dim":
			err = dec.Decode(&f.Dim)
		case "exported":
			err = dec.Decode(&exported)
		case "people":
			// Its errors name the person and field.
			if err := readPeople(dec, &f, &templates, maxTemplates); err != nil {
				return f, err
			}
		default:
			return f, fmt.Errorf("not a facegate template file: unknown field %q", key)
		}
		if err != nil {
			return f, fmt.Errorf("%s: %w", key, err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return f, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return f, errors.New("data after the end of the document")
	}

	switch {
	case format != TemplateFileFormat:
		return f, fmt.Errorf("not a facegate template file: format is %q, not %q", format, TemplateFileFormat)
	case !seen["version"]:
		return f, errors.New("version is missing")
	case version > TemplateFileVersion:
		return f, fmt.Errorf("version %d was written by a newer facegate (this one reads version %d): upgrade facegate", version, TemplateFileVersion)
	case version != TemplateFileVersion:
		return f, fmt.Errorf("version %d is not a template file version", version)
	case f.Model == "":
		return f, errors.New("model is missing")
	case f.Dim < 1 || f.Dim > MaxDim:
		return f, fmt.Errorf("dim %d is not between 1 and %d", f.Dim, MaxDim)
	case !seen["people"]:
		return f, errors.New("people is missing")
	}
	if err := checkText("model", f.Model, MaxNameBytes); err != nil {
		return f, err
	}
	if exported != "" {
		var err error
		if f.Exported, err = time.Parse(time.RFC3339Nano, exported); err != nil {
			return f, fmt.Errorf("exported: %w", err)
		}
	}
	for i := range f.People {
		e := &f.People[i]
		for j := range e.Templates {
			t := &e.Templates[j]
			if len(t.Vector) != f.Dim {
				return f, fmt.Errorf("person %q: templates[%d].vector: %d bytes, want 4×dim = %d", e.Person.ID, j, 4*len(t.Vector), 4*f.Dim)
			}
			t.Model, t.ModelName = f.Model, f.ModelName
		}
	}
	return f, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("found %s where %q belongs", describeToken(tok), want)
	}
	return nil
}

// describeToken shows a JSON token in a message, quoted if it is text.
func describeToken(tok json.Token) string {
	switch tok := tok.(type) {
	case string:
		if len(tok) > 40 {
			tok = tok[:40] + "…"
		}
		return fmt.Sprintf("string %q", tok)
	case json.Delim:
		return fmt.Sprintf("%q", tok)
	case nil:
		return "null"
	}
	return fmt.Sprint(tok)
}

// oneLine escapes what would break a message over lines, should any error
// about a file's content still quote it raw.
func oneLine(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// readPeople reads the people array, one person at a time, so that only
// the decoded templates are held in memory, never the whole document.
func readPeople(dec *json.Decoder, f *TemplateFile, templates *int, maxTemplates int) error {
	if err := expectDelim(dec, '['); err != nil {
		return err
	}
	ids := map[string]bool{}
	for i := 0; dec.More(); i++ {
		var fp filePerson
		if err := dec.Decode(&fp); err != nil {
			return fmt.Errorf("person #%d: %w", i+1, err)
		}
		e, err := fp.enrollment()
		if err != nil {
			if fp.ID == "" || checkText("id", fp.ID, MaxIDBytes) != nil {
				return fmt.Errorf("person #%d: %w", i+1, err)
			}
			return fmt.Errorf("person %q: %w", fp.ID, err)
		}
		if ids[fp.ID] {
			return fmt.Errorf("person %q: id appears twice", fp.ID)
		}
		ids[fp.ID] = true
		if *templates += len(e.Templates); *templates > maxTemplates {
			return fmt.Errorf("more than %d templates", maxTemplates)
		}
		f.People = append(f.People, e)
	}
	return expectDelim(dec, ']')
}

// enrollment validates one person of the file, but for the vectors' length,
// which the header's dim (perhaps later in the file) decides.
func (fp filePerson) enrollment() (Enrollment, error) {
	p := Person{ID: fp.ID, Name: fp.Name}
	if err := checkText("id", fp.ID, MaxIDBytes); err != nil {
		return Enrollment{}, err
	}
	if err := checkText("name", fp.Name, MaxNameBytes); err != nil {
		return Enrollment{}, err
	}
	if fp.Active == nil {
		return Enrollment{}, errors.New("active is missing")
	}
	p.Active = *fp.Active
	var err error
	if fp.ValidFrom != nil {
		if p.ValidFrom, err = time.Parse(time.RFC3339Nano, *fp.ValidFrom); err != nil {
			return Enrollment{}, fmt.Errorf("valid_from: %w", err)
		}
	}
	if fp.ValidUntil != nil {
		if p.ValidUntil, err = time.Parse(time.RFC3339Nano, *fp.ValidUntil); err != nil {
			return Enrollment{}, fmt.Errorf("valid_until: %w", err)
		}
	}
	if err := checkValidity(p.ValidFrom, p.ValidUntil); err != nil {
		return Enrollment{}, err
	}
	if len(fp.Templates) == 0 {
		return Enrollment{}, errors.New("templates: none")
	}
	e := Enrollment{Person: p, Templates: make([]Template, len(fp.Templates))}
	for j, ft := range fp.Templates {
		t := &e.Templates[j]
		t.Person, t.Quality, t.SourceSHA256 = fp.ID, ft.Quality, ft.SourceSHA256
		b, err := base64.StdEncoding.DecodeString(ft.Vector)
		if err != nil {
			return Enrollment{}, fmt.Errorf("templates[%d].vector: not base64: %w", j, err)
		}
		if len(b)%4 != 0 || len(b) == 0 || len(b) > 4*MaxDim {
			return Enrollment{}, fmt.Errorf("templates[%d].vector: %d bytes is not 4×dim", j, len(b))
		}
		t.Vector = make([]float32, len(b)/4)
		decodeVector(t.Vector, b)
		if err := checkTemplate(*t); err != nil {
			return Enrollment{}, fmt.Errorf("templates[%d]: %w", j, err)
		}
		if ft.Created != "" {
			if t.Created, err = time.Parse(time.RFC3339Nano, ft.Created); err != nil {
				return Enrollment{}, fmt.Errorf("templates[%d].created: %w", j, err)
			}
		}
	}
	return e, nil
}

// Import writes every person of f, each in its own transaction, so a crash
// keeps every person already imported complete. A file of another encoder,
// or of another dimension than this database's templates, is refused before
// anything is written. An id already enrolled under the same name gets the
// file's templates added (with replace: in place of its own); under another
// name it is refused and reported, and the others go on. The results are in
// the file's order; err is set only when the import stopped.
func (db *DB) Import(ctx context.Context, f TemplateFile, replace bool) ([]ImportResult, error) {
	var results []ImportResult
	err := db.ImportEach(ctx, f, replace, func(r ImportResult) error {
		results = append(results, r)
		return nil
	})
	return results, err
}

// ImportEach is Import calling each with every person's result as soon as
// its transaction has committed (or it was refused), for progress. An error
// from each stops the import.
func (db *DB) ImportEach(ctx context.Context, f TemplateFile, replace bool, each func(ImportResult) error) error {
	op := fmt.Sprintf("import templates into %s", db.path)
	if db.model == "" {
		return newError(ErrInvalid, "%s: the database was opened without an encoder identity, so it cannot import", op)
	}
	if f.Model != db.model {
		return newError(ErrOtherModel, "%s: the file holds templates made by encoder %s, but this facegate uses %s: export them from a door with this encoder, or re-enroll from photos (facegate import DIR)",
			op, shortModel(f.Model), shortModel(db.model))
	}
	// Everything that would refuse the whole file, before writing anything.
	ids := make(map[string]bool, len(f.People))
	for _, e := range f.People {
		if ids[e.Person.ID] {
			return newError(ErrInvalid, "%s: person %q appears twice", op, e.Person.ID)
		}
		ids[e.Person.ID] = true
		if err := db.checkEnrollment(fmt.Sprintf("%s: person %q", op, e.Person.ID), e.Person, e.Templates); err != nil {
			return err
		}
	}
	if len(f.People) > 0 {
		dim := len(f.People[0].Templates[0].Vector)
		var dbDim int
		err := db.ro.QueryRowContext(ctx, `SELECT dim FROM templates WHERE model = ? LIMIT 1`, db.model).Scan(&dbDim)
		switch {
		case err == nil && dbDim != dim:
			return newError(ErrInvalid, "%s: the file's templates have %d dimensions, this database's of the same encoder %d", op, dim, dbDim)
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return db.sqlError(op, err)
		}
	}

	for _, e := range f.People {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		status, err := db.enroll(ctx, e.Person, e.Templates, replace)
		if err != nil && !errors.Is(err, ErrNameMismatch) {
			return err
		}
		r := ImportResult{ID: e.Person.ID, Name: e.Person.Name, Status: status, Templates: len(e.Templates), Err: err}
		if err := each(r); err != nil {
			return err
		}
	}
	return nil
}
