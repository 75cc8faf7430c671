package store

import (
	"context"
	"database/sql"
	"fmt"
)

// GalleryVersion is a counter that every change to people or templates bumps
// in its own transaction. It is cheap to read: a reader polls it and loads
// the gallery again when it changes.
func (db *DB) GalleryVersion(ctx context.Context) (int64, error) {
	var version int64
	if err := db.ro.QueryRowContext(ctx, `SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'gallery_version'`).Scan(&version); err != nil {
		return 0, db.sqlError("read gallery version", err)
	}
	return version, nil
}

// Gallery reads, from one consistent snapshot, the gallery version and every
// template of model (the DB's model if ""), ordered by person id then
// template id, with the people they belong to, ordered by id. Inactive
// people and people outside their validity window are included: the caller
// decides, and can tell them apart from strangers.
func (db *DB) Gallery(ctx context.Context, model string) (version int64, people []Person, templates []Template, err error) {
	if model == "" {
		model = db.model
	}
	if model == "" {
		return 0, nil, nil, newError(ErrInvalid, "read gallery of %s: no encoder identity given", db.path)
	}
	op := fmt.Sprintf("read gallery of encoder %s", shortModel(model))
	// A deferred transaction on the read pool: its first read fixes a WAL
	// snapshot that every later read in it sees, so a concurrent enrollment
	// is seen whole or not at all.
	tx, err := db.ro.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, nil, nil, db.sqlError(op, err)
	}
	defer tx.Rollback()

	// The count comes from the index alone; Enroll keeps every template of a
	// model the same dimension, so one row gives it.
	var count, dim int
	if err := tx.QueryRowContext(ctx, `SELECT (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'gallery_version'), count(*),
		coalesce((SELECT dim FROM templates WHERE model = ?1 LIMIT 1), 0) FROM templates WHERE model = ?1`, model).
		Scan(&version, &count, &dim); err != nil {
		return 0, nil, nil, db.sqlError(op, err)
	}

	rows, err := tx.QueryContext(ctx, `SELECT `+personColumns+` FROM people WHERE id IN (SELECT person FROM templates WHERE model = ?) ORDER BY id`, model)
	if err != nil {
		return 0, nil, nil, db.sqlError(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		p, err := scanPerson(rows)
		if err != nil {
			return 0, nil, nil, db.sqlError(op, err)
		}
		people = append(people, p)
	}
	if err := rows.Err(); err != nil {
		return 0, nil, nil, db.sqlError(op, err)
	}

	rows, err = tx.QueryContext(ctx, `SELECT id, person, model_name, vector, quality, source_sha256, created FROM templates WHERE model = ? ORDER BY person, id`, model)
	if err != nil {
		return 0, nil, nil, db.sqlError(op, err)
	}
	defer rows.Close()
	// One allocation for every vector: a gallery is loaded whole and dropped
	// whole.
	templates = make([]Template, 0, count)
	backing := make([]float32, count*dim)
	for rows.Next() {
		t := Template{Model: model}
		var vector sql.RawBytes // valid until Next: decoded at once, never copied
		var quality sql.NullFloat64
		var source sql.NullString
		var created string
		if err := rows.Scan(&t.ID, &t.Person, &t.ModelName, &vector, &quality, &source, &created); err != nil {
			return 0, nil, nil, db.sqlError(op, err)
		}
		if len(vector) != 4*dim || len(backing) < dim {
			return 0, nil, nil, fmt.Errorf("%s: template %d of %q in %s has %d bytes, not the %d dimensions of the first", op, t.ID, t.Person, db.path, len(vector), dim)
		}
		t.Vector, backing = backing[:dim:dim], backing[dim:]
		decodeVector(t.Vector, vector)
		t.Quality = float32(quality.Float64)
		t.SourceSHA256 = source.String
		if t.Created, err = parseTime(created); err != nil {
			return 0, nil, nil, fmt.Errorf("%s: template %d of %q in %s: created: %w", op, t.ID, t.Person, db.path, err)
		}
		templates = append(templates, t)
	}
	if err := rows.Err(); err != nil {
		return 0, nil, nil, db.sqlError(op, err)
	}
	return version, people, templates, nil
}
