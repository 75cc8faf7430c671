package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// migrationHeads adds the learned heads (schema version 2): scoring
// functions trained on the site's own people, or plain cosine with a
// calibrated threshold. At most one head per encoder is active; the
// partial unique index enforces it. A change to heads bumps the gallery
// version like a change to people does, so that a daemon polling it
// reloads the scoring with the gallery.
const migrationHeads = `
CREATE TABLE heads (
	name    TEXT PRIMARY KEY,
	method  TEXT NOT NULL,          -- cosine, triplet, logistic, chi2
	model   TEXT NOT NULL,          -- identity of the encoder whose embeddings it scores
	blob    BLOB NOT NULL,          -- the serialised head (package learn)
	metrics TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metrics) AND json_type(metrics) = 'object'),
	created TEXT NOT NULL,
	active  INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
	CHECK (typeof(blob) = 'blob' AND length(blob) > 0)
);
CREATE UNIQUE INDEX heads_one_active_per_model ON heads(model) WHERE active = 1;
CREATE TRIGGER heads_insert_bumps_gallery AFTER INSERT ON heads
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'gallery_version'; END;
CREATE TRIGGER heads_update_bumps_gallery AFTER UPDATE ON heads
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'gallery_version'; END;
CREATE TRIGGER heads_delete_bumps_gallery AFTER DELETE ON heads
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'gallery_version'; END;
`

// MaxHeadBytes bounds a head's serialised size (a 512×512 float32
// projection is 1 MiB).
const MaxHeadBytes = 64 << 20

// ErrExists is returned when saving a head under a name already taken
// without asking to replace it.
var ErrExists = errors.New("already exists")

// Head is a stored learned head: how pairs of one encoder's embeddings
// are scored, and at what threshold. store keeps it as an opaque blob.
type Head struct {
	Name    string
	Method  string
	Model   string // encoder identity
	Blob    []byte
	Metrics json.RawMessage // a JSON object; nil reads as {}
	Created time.Time
	Active  bool
}

const headColumns = `name, method, model, blob, metrics, created, active`

// SaveHead writes a head. A name already taken fails with ErrExists
// unless replace is set; a replaced head keeps its active flag if it still
// applies to the same encoder. h.Active makes the new head the active one
// of its encoder, in the same transaction.
func (db *DB) SaveHead(ctx context.Context, h Head, replace bool) error {
	op := fmt.Sprintf("save head %q", h.Name)
	if err := checkHead(h); err != nil {
		return &kindError{ErrInvalid, fmt.Sprintf("%s in %s: %v", op, db.path, err), err}
	}
	metrics := []byte(h.Metrics)
	if len(bytes.TrimSpace(metrics)) == 0 {
		metrics = []byte("{}")
	}
	if h.Created.IsZero() {
		h.Created = time.Now()
	}
	tx, err := db.rw.BeginTx(ctx, nil)
	if err != nil {
		return db.sqlError(op, err)
	}
	defer tx.Rollback()
	var oldModel string
	var oldActive bool
	err = tx.QueryRowContext(ctx, `SELECT model, active FROM heads WHERE name = ?`, h.Name).Scan(&oldModel, &oldActive)
	exists := err == nil
	switch {
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return db.sqlError(op, err)
	case exists && !replace:
		return newError(ErrExists, "%s: %s already holds a head named %q (choose another name, or replace it)", op, db.path, h.Name)
	}
	active := h.Active || (exists && oldActive && oldModel == h.Model)
	if active {
		if _, err := tx.ExecContext(ctx, `UPDATE heads SET active = 0 WHERE model = ? AND active = 1 AND name != ?`, h.Model, h.Name); err != nil {
			return db.sqlError(op, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO heads (`+headColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET method = excluded.method, model = excluded.model, blob = excluded.blob,
			metrics = excluded.metrics, created = excluded.created, active = excluded.active`,
		h.Name, h.Method, h.Model, h.Blob, string(metrics), formatTime(h.Created), active); err != nil {
		return db.sqlError(op, err)
	}
	if err := tx.Commit(); err != nil {
		return db.sqlError(op, err)
	}
	return nil
}

func checkHead(h Head) error {
	if err := checkText("name", h.Name, MaxIDBytes); err != nil {
		return err
	}
	if err := checkText("method", h.Method, MaxIDBytes); err != nil {
		return err
	}
	if err := checkText("model", h.Model, MaxNameBytes); err != nil {
		return err
	}
	switch {
	case len(h.Blob) == 0:
		return errors.New("blob is empty")
	case len(h.Blob) > MaxHeadBytes:
		return fmt.Errorf("blob of %d bytes is over %d", len(h.Blob), MaxHeadBytes)
	}
	if m := bytes.TrimSpace(h.Metrics); len(m) > 0 {
		var obj map[string]any
		if err := json.Unmarshal(m, &obj); err != nil || obj == nil {
			return fmt.Errorf("metrics are not a JSON object")
		}
	}
	return nil
}

// Heads lists the stored heads of model (all encoders' if ""), by encoder
// then creation time then name.
func (db *DB) Heads(ctx context.Context, model string) ([]Head, error) {
	rows, err := db.ro.QueryContext(ctx, `SELECT `+headColumns+` FROM heads WHERE ?1 = '' OR model = ?1 ORDER BY model, created, name`, model)
	if err != nil {
		return nil, db.sqlError("list heads", err)
	}
	defer rows.Close()
	var hs []Head
	for rows.Next() {
		h, err := scanHead(rows)
		if err != nil {
			return nil, db.sqlError("list heads", err)
		}
		hs = append(hs, h)
	}
	if err := rows.Err(); err != nil {
		return nil, db.sqlError("list heads", err)
	}
	return hs, nil
}

// Head reads one head by name; ErrNotFound if absent.
func (db *DB) Head(ctx context.Context, name string) (Head, error) {
	h, err := scanHead(db.ro.QueryRowContext(ctx, `SELECT `+headColumns+` FROM heads WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Head{}, newError(ErrNotFound, "no head named %q in %s (facegate heads lists them)", name, db.path)
	}
	if err != nil {
		return Head{}, db.sqlError(fmt.Sprintf("read head %q", name), err)
	}
	return h, nil
}

// ActiveHead reads the active head of model (the DB's if ""); ok is false
// when none is active, and pairs are then scored by plain cosine.
func (db *DB) ActiveHead(ctx context.Context, model string) (h Head, ok bool, err error) {
	if model == "" {
		model = db.model
	}
	h, err = scanHead(db.ro.QueryRowContext(ctx, `SELECT `+headColumns+` FROM heads WHERE model = ? AND active = 1`, model))
	if errors.Is(err, sql.ErrNoRows) {
		return Head{}, false, nil
	}
	if err != nil {
		return Head{}, false, db.sqlError("read active head", err)
	}
	return h, true, nil
}

// ActivateHead makes the named head the active one of its encoder, and
// every other head of that encoder inactive; ErrNotFound if absent.
func (db *DB) ActivateHead(ctx context.Context, name string) error {
	op := fmt.Sprintf("activate head %q", name)
	tx, err := db.rw.BeginTx(ctx, nil)
	if err != nil {
		return db.sqlError(op, err)
	}
	defer tx.Rollback()
	var model string
	err = tx.QueryRowContext(ctx, `SELECT model FROM heads WHERE name = ?`, name).Scan(&model)
	if errors.Is(err, sql.ErrNoRows) {
		return newError(ErrNotFound, "%s: no head named %q in %s", op, name, db.path)
	}
	if err != nil {
		return db.sqlError(op, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE heads SET active = 0 WHERE model = ? AND active = 1 AND name != ?`, model, name); err != nil {
		return db.sqlError(op, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE heads SET active = 1 WHERE name = ? AND active = 0`, name); err != nil {
		return db.sqlError(op, err)
	}
	if err := tx.Commit(); err != nil {
		return db.sqlError(op, err)
	}
	return nil
}

// DeactivateHeads makes no head of model (the DB's if "") active, so
// that plain cosine scores pairs at the built-in threshold. It returns the
// name of the head that was active, "" if none.
func (db *DB) DeactivateHeads(ctx context.Context, model string) (string, error) {
	if model == "" {
		model = db.model
	}
	var name string
	err := db.rw.QueryRowContext(ctx, `UPDATE heads SET active = 0 WHERE model = ? AND active = 1 RETURNING name`, model).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", db.sqlError("deactivate heads", err)
	}
	return name, nil
}

// RemoveHead deletes a head; ErrNotFound if absent.
func (db *DB) RemoveHead(ctx context.Context, name string) error {
	op := fmt.Sprintf("remove head %q", name)
	res, err := db.rw.ExecContext(ctx, `DELETE FROM heads WHERE name = ?`, name)
	if err != nil {
		return db.sqlError(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return db.sqlError(op, err)
	}
	if n == 0 {
		return newError(ErrNotFound, "%s: no head named %q in %s", op, name, db.path)
	}
	return nil
}

func scanHead(s scanner) (Head, error) {
	var h Head
	var metrics, created string
	if err := s.Scan(&h.Name, &h.Method, &h.Model, &h.Blob, &metrics, &created, &h.Active); err != nil {
		return Head{}, err
	}
	h.Metrics = json.RawMessage(metrics)
	var err error
	if h.Created, err = parseTime(created); err != nil {
		return Head{}, fmt.Errorf("head %q: created: %w", h.Name, err)
	}
	return h, nil
}
