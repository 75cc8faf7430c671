package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on what a person or template may hold.
const (
	MaxIDBytes   = 256   // of a person's id
	MaxNameBytes = 1024  // of a person's name, or a model file's
	MaxDim       = 16384 // of a template's vector
	// UnitTolerance is how far a vector's L2 norm may be from 1: templates
	// are L2-normalised embeddings, and anything else is a bug upstream.
	UnitTolerance = 1e-3
)

// Person is someone enrolled. The door lets a person in only while Active
// and inside [ValidFrom, ValidUntil]; the caller applies that rule.
type Person struct {
	ID, Name   string
	Active     bool
	ValidFrom  time.Time // zero: no bound
	ValidUntil time.Time // zero: no bound
	Created    time.Time
}

// Template is one enrolled face encoding.
type Template struct {
	ID           int64
	Person       string
	Model        string    // encoder identity
	ModelName    string    // e.g. "fr_feature.onnx"
	Vector       []float32 // stored as little-endian float32, dim = len(Vector)
	Quality      float32
	SourceSHA256 string // of the photo it came from; the photo itself is never stored
	Created      time.Time
}

// PersonInfo is a person with the number of their templates.
type PersonInfo struct {
	Person
	Templates int
}

// EnrollStatus says what an enrollment did.
type EnrollStatus int

// What an enrollment did.
const (
	PersonRefused     EnrollStatus = iota // nothing was written
	PersonCreated                         // a new person with their templates
	TemplatesAdded                        // templates added to an existing person
	TemplatesReplaced                     // an existing person's templates replaced
)

func (s EnrollStatus) String() string {
	switch s {
	case PersonRefused:
		return "refused"
	case PersonCreated:
		return "created"
	case TemplatesAdded:
		return "added"
	case TemplatesReplaced:
		return "replaced"
	}
	return fmt.Sprintf("EnrollStatus(%d)", int(s))
}

// Enroll writes the person and their templates in one transaction.
//
// A new id creates the person. An id already enrolled under the same name
// gets the templates added or, with replace, in place of its old ones; its
// other fields (active, validity) are kept: SetActive and SetValidity
// change those. An id enrolled under another name fails with
// ErrNameMismatch. Every template must be of the encoder the DB was opened
// with (ErrOtherModel) and hold a finite, unit-length vector of the same
// dimension as the others (ErrInvalid). On any error nothing is written.
func (db *DB) Enroll(ctx context.Context, p Person, ts []Template, replace bool) error {
	_, err := db.enroll(ctx, p, ts, replace)
	return err
}

func (db *DB) enroll(ctx context.Context, p Person, ts []Template, replace bool) (EnrollStatus, error) {
	op := fmt.Sprintf("enroll %q in %s", p.ID, db.path)
	if err := db.checkEnrollment(op, p, ts); err != nil {
		return PersonRefused, err
	}
	now := time.Now().UTC()
	if p.Created.IsZero() {
		p.Created = now
	}

	tx, err := db.rw.BeginTx(ctx, nil)
	if err != nil {
		return PersonRefused, db.sqlError(fmt.Sprintf("enroll %q", p.ID), err)
	}
	defer tx.Rollback()
	status, err := db.enrollTx(ctx, tx, op, p, ts, replace, now)
	if err != nil {
		return PersonRefused, err
	}
	if err := tx.Commit(); err != nil {
		return PersonRefused, db.sqlError(fmt.Sprintf("enroll %q", p.ID), err)
	}
	return status, nil
}

// enrollTx does Enroll's writes in tx. op names the enrollment and the
// file for messages of its own; sqlError adds the file to sqlOp.
func (db *DB) enrollTx(ctx context.Context, tx *sql.Tx, op string, p Person, ts []Template, replace bool, now time.Time) (EnrollStatus, error) {
	sqlOp := fmt.Sprintf("enroll %q", p.ID)
	var status EnrollStatus
	var name string
	err := tx.QueryRowContext(ctx, `SELECT name FROM people WHERE id = ?`, p.ID).Scan(&name)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		status = PersonCreated
		if _, err := tx.ExecContext(ctx, `INSERT INTO people (id, name, active, valid_from, valid_until, created) VALUES (?, ?, ?, ?, ?, ?)`,
			p.ID, p.Name, p.Active, formatTime(p.ValidFrom), formatTime(p.ValidUntil), formatTime(p.Created)); err != nil {
			return PersonRefused, db.sqlError(sqlOp, err)
		}
	case err != nil:
		return PersonRefused, db.sqlError(sqlOp, err)
	case name != p.Name:
		return PersonRefused, newError(ErrNameMismatch, "%s: id %q is already enrolled as %q, not %q (remove it first, or choose another id)", op, p.ID, name, p.Name)
	case replace:
		status = TemplatesReplaced
		if _, err := tx.ExecContext(ctx, `DELETE FROM templates WHERE person = ?`, p.ID); err != nil {
			return PersonRefused, db.sqlError(sqlOp, err)
		}
	default:
		status = TemplatesAdded
	}

	// All templates of one encoder have one dimension, or the gallery could
	// not compare them; since Enroll keeps them so, one template tells.
	dim := len(ts[0].Vector)
	var dbDim int
	err = tx.QueryRowContext(ctx, `SELECT dim FROM templates WHERE model = ? LIMIT 1`, db.model).Scan(&dbDim)
	switch {
	case err == nil && dbDim != dim:
		return PersonRefused, newError(ErrInvalid, "%s: encoder %s's templates in this database have %d dimensions, these have %d", op, shortModel(db.model), dbDim, dim)
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return PersonRefused, db.sqlError(sqlOp, err)
	}

	insert, err := tx.PrepareContext(ctx, `INSERT INTO templates (person, model, model_name, dim, vector, quality, source_sha256, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return PersonRefused, db.sqlError(sqlOp, err)
	}
	defer insert.Close()
	for _, t := range ts {
		created := t.Created
		if created.IsZero() {
			created = now
		}
		var source any
		if t.SourceSHA256 != "" {
			source = t.SourceSHA256
		}
		if _, err := insert.ExecContext(ctx, p.ID, t.Model, t.ModelName, len(t.Vector), encodeVector(t.Vector), float64(t.Quality), source, formatTime(created)); err != nil {
			return PersonRefused, db.sqlError(sqlOp, err)
		}
	}
	return status, nil
}

// checkEnrollment validates a person and templates before anything is
// written.
func (db *DB) checkEnrollment(op string, p Person, ts []Template) error {
	if db.model == "" {
		return newError(ErrInvalid, "%s: the database was opened without an encoder identity, so it cannot enroll", op)
	}
	if err := checkPerson(p); err != nil {
		return &kindError{ErrInvalid, fmt.Sprintf("%s: %v", op, err), err}
	}
	if len(ts) == 0 {
		return newError(ErrInvalid, "%s: no templates", op)
	}
	for i, t := range ts {
		where := fmt.Sprintf("%s: template %d of %d", op, i+1, len(ts))
		if t.Model != db.model {
			return newError(ErrOtherModel, "%s was made by encoder %s, but this database uses %s", where, shortModel(t.Model), shortModel(db.model))
		}
		if t.Person != "" && t.Person != p.ID {
			return newError(ErrInvalid, "%s belongs to person %q", where, t.Person)
		}
		if err := checkTemplate(t); err != nil {
			return &kindError{ErrInvalid, fmt.Sprintf("%s: %v", where, err), err}
		}
		if len(t.Vector) != len(ts[0].Vector) {
			return newError(ErrInvalid, "%s: vector has %d dimensions, template 1's has %d", where, len(t.Vector), len(ts[0].Vector))
		}
	}
	return nil
}

// checkPerson says what is wrong with a person's fields, naming the field.
func checkPerson(p Person) error {
	if err := checkText("id", p.ID, MaxIDBytes); err != nil {
		return err
	}
	if err := checkText("name", p.Name, MaxNameBytes); err != nil {
		return err
	}
	return checkValidity(p.ValidFrom, p.ValidUntil)
}

func checkValidity(from, until time.Time) error {
	if !from.IsZero() && !until.IsZero() && from.After(until) {
		return fmt.Errorf("valid_from %s is after valid_until %s", from.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
	}
	return nil
}

// checkText refuses text that would make an unclear one-line message or
// look like another value: empty, too long, not UTF-8, control characters,
// surrounding spaces.
func checkText(field, s string, max int) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty", field)
	case len(s) > max:
		return fmt.Errorf("%s is longer than %d bytes", field, max)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not UTF-8", field)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fmt.Errorf("%s %q holds control characters", field, s)
	case strings.TrimSpace(s) != s:
		return fmt.Errorf("%s %q has leading or trailing spaces", field, s)
	}
	return nil
}

// checkTemplate says what is wrong with a template's own fields.
func checkTemplate(t Template) error {
	if err := checkVector(t.Vector); err != nil {
		return err
	}
	if f := float64(t.Quality); math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("quality is %v", t.Quality)
	}
	if t.SourceSHA256 != "" && !isSHA256Hex(t.SourceSHA256) {
		return fmt.Errorf("source_sha256 %q is not a lowercase hex sha256", t.SourceSHA256)
	}
	if len(t.ModelName) > MaxNameBytes || strings.IndexFunc(t.ModelName, unicode.IsControl) >= 0 || !utf8.ValidString(t.ModelName) {
		return fmt.Errorf("model_name %q is not a file name", t.ModelName)
	}
	return nil
}

// checkVector refuses a vector that cannot be a template: empty, too long,
// not finite, not unit length.
func checkVector(v []float32) error {
	if len(v) == 0 {
		return errors.New("vector is empty")
	}
	if len(v) > MaxDim {
		return fmt.Errorf("vector has %d dimensions, more than %d", len(v), MaxDim)
	}
	var sum float64
	for i, x := range v {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("vector[%d] is %v", i, x)
		}
		sum += f * f
	}
	if norm := math.Sqrt(sum); math.Abs(norm-1) > UnitTolerance {
		return fmt.Errorf("vector is not L2-normalised (norm %.4g)", norm)
	}
	return nil
}

// isSHA256Hex reports whether s is a sha256 in lowercase hex.
func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Remove deletes a person and their templates; ErrNotFound if absent.
func (db *DB) Remove(ctx context.Context, id string) error {
	op := fmt.Sprintf("remove %q", id)
	// Templates go by ON DELETE CASCADE.
	res, err := db.rw.ExecContext(ctx, `DELETE FROM people WHERE id = ?`, id)
	if err != nil {
		return db.sqlError(op, err)
	}
	return db.oneRow(op, id, res)
}

// SetActive marks a person active or not; ErrNotFound if absent.
func (db *DB) SetActive(ctx context.Context, id string, active bool) error {
	op := fmt.Sprintf("set active for %q", id)
	res, err := db.rw.ExecContext(ctx, `UPDATE people SET active = ? WHERE id = ?`, active, id)
	if err != nil {
		return db.sqlError(op, err)
	}
	return db.oneRow(op, id, res)
}

// SetValidity sets the window in which a person may enter; a zero time is
// no bound. from after until is refused; ErrNotFound if absent.
func (db *DB) SetValidity(ctx context.Context, id string, from, until time.Time) error {
	op := fmt.Sprintf("set validity for %q", id)
	if err := checkValidity(from, until); err != nil {
		return &kindError{ErrInvalid, fmt.Sprintf("%s in %s: %v", op, db.path, err), err}
	}
	res, err := db.rw.ExecContext(ctx, `UPDATE people SET valid_from = ?, valid_until = ? WHERE id = ?`, formatTime(from), formatTime(until), id)
	if err != nil {
		return db.sqlError(op, err)
	}
	return db.oneRow(op, id, res)
}

func (db *DB) oneRow(op, id string, res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return db.sqlError(op, err)
	}
	if n == 0 {
		return newError(ErrNotFound, "%s: no person with id %q in %s", op, id, db.path)
	}
	return nil
}

const personColumns = `id, name, active, valid_from, valid_until, created`

// Person reads one person; ErrNotFound if absent.
func (db *DB) Person(ctx context.Context, id string) (Person, error) {
	row := db.ro.QueryRowContext(ctx, `SELECT `+personColumns+` FROM people WHERE id = ?`, id)
	p, err := scanPerson(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Person{}, newError(ErrNotFound, "no person with id %q in %s", id, db.path)
	}
	if err != nil {
		return Person{}, db.sqlError(fmt.Sprintf("read person %q", id), err)
	}
	return p, nil
}

// People lists everyone enrolled with their number of templates, ordered by
// id.
func (db *DB) People(ctx context.Context) ([]PersonInfo, error) {
	rows, err := db.ro.QueryContext(ctx, `SELECT `+personColumns+`, (SELECT count(*) FROM templates WHERE templates.person = people.id) FROM people ORDER BY id`)
	if err != nil {
		return nil, db.sqlError("list people", err)
	}
	defer rows.Close()
	var people []PersonInfo
	for rows.Next() {
		var info PersonInfo
		if info.Person, err = scanPerson(rows, &info.Templates); err != nil {
			return nil, db.sqlError("list people", err)
		}
		people = append(people, info)
	}
	if err := rows.Err(); err != nil {
		return nil, db.sqlError("list people", err)
	}
	return people, nil
}

type scanner interface{ Scan(dest ...any) error }

// scanPerson reads personColumns and then any extra columns into extra.
func scanPerson(s scanner, extra ...any) (Person, error) {
	var p Person
	var from, until sql.NullString
	var created string
	if err := s.Scan(append([]any{&p.ID, &p.Name, &p.Active, &from, &until, &created}, extra...)...); err != nil {
		return Person{}, err
	}
	var err error
	if p.ValidFrom, err = parseTime(from.String); err != nil {
		return Person{}, fmt.Errorf("person %q: valid_from: %w", p.ID, err)
	}
	if p.ValidUntil, err = parseTime(until.String); err != nil {
		return Person{}, fmt.Errorf("person %q: valid_until: %w", p.ID, err)
	}
	if p.Created, err = parseTime(created); err != nil {
		return Person{}, fmt.Errorf("person %q: created: %w", p.ID, err)
	}
	return p, nil
}

// formatTime is how times are stored: RFC 3339 in UTC, NULL for zero.
func formatTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// encodeVector is a vector as stored: little-endian float32.
func encodeVector(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// decodeVector reads a stored vector into v, which has len(b)/4 elements.
func decodeVector(v []float32, b []byte) {
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
}
