package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
)

// migrations are the schema's steps: migrations()[i] takes schema_version i
// to i+1. Append; never edit a step that has shipped.
func migrations() []string {
	return []string{migration1, migrationHeads, migrationEventsTime}
}

// SchemaVersion is the schema version this code writes.
func SchemaVersion() int { return len(migrations()) }

const migration1 = `
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT
);
INSERT INTO meta (key, value) VALUES ('gallery_version', '0');

CREATE TABLE people (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL,
	active      INTEGER NOT NULL CHECK (active IN (0, 1)),
	valid_from  TEXT,    -- RFC 3339, UTC; NULL: no bound
	valid_until TEXT,    -- RFC 3339, UTC; NULL: no bound
	created     TEXT NOT NULL
);

CREATE TABLE templates (
	id            INTEGER PRIMARY KEY,
	person        TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
	model         TEXT NOT NULL,   -- encoder identity
	model_name    TEXT NOT NULL,
	dim           INTEGER NOT NULL CHECK (dim > 0),
	vector        BLOB NOT NULL,   -- dim little-endian float32
	quality       REAL,
	source_sha256 TEXT,            -- of the photo; the photo is never stored
	created       TEXT NOT NULL,
	CHECK (typeof(vector) = 'blob' AND length(vector) = 4 * dim)
);
CREATE INDEX templates_person ON templates(person); -- ON DELETE CASCADE, counts per person
-- Finds a model's templates already in gallery order (person, then id, which
-- every index entry ends with): loading the gallery needs no sort.
CREATE INDEX templates_model ON templates(model, person);

-- Every change to the gallery bumps gallery_version in its own transaction,
-- whatever code path makes it, so a reader polling the counter never misses
-- one.
CREATE TRIGGER people_insert_bumps_gallery AFTER INSERT ON people
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'gallery_version'; END;
CREATE TRIGGER people_update_bumps_gallery AFTER UPDATE ON people
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'gallery_version'; END;
CREATE TRIGGER people_delete_bumps_gallery AFTER DELETE ON people
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'gallery_version'; END;
CREATE TRIGGER templates_insert_bumps_gallery AFTER INSERT ON templates
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'gallery_version'; END;
CREATE TRIGGER templates_update_bumps_gallery AFTER UPDATE ON templates
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'gallery_version'; END;
CREATE TRIGGER templates_delete_bumps_gallery AFTER DELETE ON templates
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'gallery_version'; END;

-- The daemon's decisions, and those not yet delivered over MQTT.
CREATE TABLE events (
	id       TEXT PRIMARY KEY,
	time     TEXT NOT NULL,
	door     TEXT NOT NULL,
	kind     TEXT NOT NULL CHECK (kind IN ('unlock', 'deny')),
	person   TEXT NULL,
	score    REAL,
	margin   REAL,
	liveness REAL,
	frames   INTEGER,
	reason   TEXT,
	payload  TEXT NOT NULL
);
CREATE TABLE outbox (
	event    TEXT PRIMARY KEY REFERENCES events(id),
	topic    TEXT NOT NULL,
	payload  BLOB NOT NULL,
	created  TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0
);
`

// checkSchemaVersion reads the file's schema version and refuses one newer
// than this code knows.
func (db *DB) checkSchemaVersion(ctx context.Context) (int, error) {
	version, err := schemaVersion(ctx, db.ro)
	if err != nil {
		return 0, db.schemaError(err)
	}
	if known := SchemaVersion(); version > known {
		return 0, newError(ErrNewerSchema, "%s was written by a newer facegate (schema version %d; this facegate knows up to %d): upgrade facegate", db.path, version, known)
	}
	return version, nil
}

// migrate applies the migrations the file lacks, from version on, each in
// its own transaction that also records the new schema_version, so a crash
// leaves the file at one version or the next. A file already current is
// only read, which lets a read-only file open.
func (db *DB) migrate(ctx context.Context, version int) error {
	steps := migrations()
	var err error
	for version < len(steps) {
		if version, err = db.migrateOnce(ctx, steps); err != nil {
			return err
		}
	}
	return nil
}

// migrateOnce applies the next migration, reading the version again inside
// the write transaction: another process may have migrated meanwhile.
func (db *DB) migrateOnce(ctx context.Context, steps []string) (int, error) {
	tx, err := db.rw.BeginTx(ctx, nil)
	if err != nil {
		return 0, db.sqlError("migrate database", err)
	}
	defer tx.Rollback()
	version, err := schemaVersion(ctx, tx)
	if err != nil {
		return 0, db.schemaError(err)
	}
	if version >= len(steps) {
		return version, nil
	}
	op := fmt.Sprintf("migrate database to schema version %d", version+1)
	if _, err := tx.ExecContext(ctx, steps[version]); err != nil {
		return 0, db.sqlError(op, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('schema_version', ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, strconv.Itoa(version+1)); err != nil {
		return 0, db.sqlError(op, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, db.sqlError(op, err)
	}
	return version + 1, nil
}

// Why a file with a meta table is still not ours.
var (
	errNoSchemaVersion  = errors.New("meta has no schema_version")
	errBadSchemaVersion = errors.New("meta's schema_version is not a version")
)

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// schemaVersion is the file's schema_version; 0 for a file without tables.
func schemaVersion(ctx context.Context, q querier) (int, error) {
	var hasMeta bool
	if err := q.QueryRowContext(ctx, `SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'meta'`).Scan(&hasMeta); err != nil {
		return 0, err
	}
	if !hasMeta {
		return 0, nil
	}
	var value string
	err := q.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'schema_version'`).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, errNoSchemaVersion
	}
	if err != nil {
		return 0, err
	}
	version, err := strconv.Atoi(value)
	if err != nil || version < 1 {
		return 0, fmt.Errorf("%w: %q", errBadSchemaVersion, value)
	}
	return version, nil
}

func (db *DB) schemaError(err error) error {
	if errors.Is(err, errNoSchemaVersion) || errors.Is(err, errBadSchemaVersion) {
		return &kindError{ErrNotDatabase, fmt.Sprintf("%s is not a facegate database (%v)", db.path, err), err}
	}
	return db.sqlError("read schema version", err)
}
