// Package store keeps facegate's state in one SQLite file: the enrolled
// people, their face templates (encodings computed once at enrollment; the
// photos are never stored), and the daemon's events and outbox.
//
// The file runs in WAL mode, so the daemon can read the gallery while an
// admin enrolls from another process, and every change to people or
// templates bumps a gallery version counter (by triggers, in the same
// transaction) that the daemon polls to know when to reload.
//
// store knows nothing of images or encoders: a template is a vector and the
// opaque identity of the encoder that made it.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

// BusyTimeout is how long a statement waits for another process's lock on
// the file before it fails.
const BusyTimeout = 5 * time.Second

// Error kinds: every error this package returns for one of these causes
// satisfies errors.Is(err, ErrX), and its message names the file, person or
// setting at fault.
var (
	ErrNotFound     = errors.New("not found")
	ErrNameMismatch = errors.New("id enrolled under another name")
	ErrOtherModel   = errors.New("templates of another encoder")
	ErrNewerSchema  = errors.New("database written by a newer facegate")
	ErrNotDatabase  = errors.New("not a facegate database")
	ErrReadOnly     = errors.New("database is read-only")
	ErrInvalid      = errors.New("invalid person, template or template file")
)

// kindError is an error with its own one-line message that also matches one
// of the Err kinds above and unwraps to its cause, if any.
type kindError struct {
	kind  error
	msg   string
	cause error
}

func (e *kindError) Error() string { return e.msg }

func (e *kindError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func newError(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// DB is an open facegate database. It is safe for concurrent use.
type DB struct {
	path  string
	model string // encoder identity of the caller; "" when it does not embed

	// Writes go through one connection that begins transactions with BEGIN
	// IMMEDIATE: a deferred transaction that reads before it writes fails
	// with SQLITE_BUSY, without waiting, when another process wrote in
	// between. Reads go through their own pool, in deferred transactions
	// that WAL serves from a snapshot without blocking the writer.
	rw *sql.DB
	ro *sql.DB
}

// Open opens the database at path, creating it with mode 0600 if it does
// not exist, and applies the migrations this code knows.
//
// model is the identity of the encoder the caller uses (opaque, e.g. the
// model file's sha256). If the database holds templates made by any other
// encoder, Open fails with ErrOtherModel: such templates cannot be compared
// with this encoder's embeddings. model == "" skips that check, for callers
// that never embed (listing people, removing them); such a DB refuses to
// enroll or import.
func Open(ctx context.Context, path string, model string) (*DB, error) {
	if path == "" {
		return nil, newError(ErrInvalid, "open database: no path given")
	}
	created, err := createFile(path)
	if err != nil {
		return nil, err
	}
	db := &DB{path: path, model: model}
	if err := db.open(ctx, created); err != nil {
		db.Close()
		if created {
			// Leave nothing behind of a database we made and then refused.
			for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
				os.Remove(path + suffix)
			}
		}
		return nil, err
	}
	return db, nil
}

func (db *DB) open(ctx context.Context, created bool) error {
	if !created {
		if err := checkHeader(db.path); err != nil {
			return err
		}
	}
	// The pools open connections later, as they need them: a relative path
	// would be taken relative to whatever the working directory is by then.
	abs, err := filepath.Abs(db.path)
	if err != nil {
		return fmt.Errorf("open database %s: %w", db.path, err)
	}

	// Options every connection gets as it is opened (foreign_keys and
	// busy_timeout are per connection, so they cannot be set once). mode=rw
	// keeps SQLite from creating the file: we created it with the right mode,
	// and a file that vanished later must not come back empty.
	options := url.Values{
		"mode":           {"rw"},
		"_foreign_keys":  {"on"},
		"_busy_timeout":  {fmt.Sprint(BusyTimeout.Milliseconds())},
		"_synchronous":   {"NORMAL"}, // durable across process crashes in WAL; a power cut may lose the last commits, never consistency
		"_txlock":        {"immediate"},
		"_cache_size":    {"-4096"}, // KiB; a door controller has little memory
		"_secure_delete": {"on"},    // removed people's templates are overwritten, not left in free pages
	}
	db.rw, err = sql.Open("sqlite3", fileURI(abs)+"?"+options.Encode())
	if err != nil {
		return fmt.Errorf("open database %s: %w", db.path, err)
	}
	db.rw.SetMaxOpenConns(1)
	options.Set("_txlock", "deferred")
	options.Set("_query_only", "on") // this pool must never write
	db.ro, err = sql.Open("sqlite3", fileURI(abs)+"?"+options.Encode())
	if err != nil {
		return fmt.Errorf("open database %s: %w", db.path, err)
	}
	db.ro.SetMaxOpenConns(4)

	// Refuse a file that is not ours, or too new, before changing anything.
	if err := db.checkApplication(ctx); err != nil {
		return db.cannotReadWAL(err)
	}
	version, err := db.checkSchemaVersion(ctx)
	if err != nil {
		return err
	}
	// WAL is a property of the file: setting it once suffices, and it must not
	// be set before we know the file is ours (it rewrites the header).
	var mode string
	if err := db.rw.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode); err != nil {
		return db.sqlError("open database", err)
	}
	if !strings.EqualFold(mode, "wal") {
		// A read-only file not already in WAL mode cannot be switched.
		return newError(ErrReadOnly, "open database: %s is in %s journal mode and cannot be switched to WAL (read-only?)", db.path, mode)
	}
	if err := db.migrate(ctx, version); err != nil {
		return err
	}
	if db.model != "" {
		return db.checkModel(ctx)
	}
	return nil
}

// createFile creates path with mode 0600 unless it exists, before SQLite
// sees it: SQLite would create it 0644 less the umask, readable by everyone,
// and it gives the -wal and -shm files the main file's mode.
func createFile(path string) (created bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		// A umask such as 0277 would have left it unwritable even to us.
		err = f.Chmod(0o600)
		if closeErr := f.Close(); err == nil {
			err = closeErr
		}
		if err != nil {
			os.Remove(path)
			return false, fmt.Errorf("create database %s: %w", path, err)
		}
		return true, nil
	case errors.Is(err, os.ErrExist):
		fi, err := os.Stat(path)
		if err != nil {
			return false, fmt.Errorf("open database %s: %w", path, err)
		}
		if !fi.Mode().IsRegular() {
			return false, newError(ErrNotDatabase, "%s is not a facegate database (not a regular file)", path)
		}
		return false, nil
	case errors.Is(err, os.ErrNotExist):
		return false, fmt.Errorf("create database %s: directory %s does not exist", path, filepath.Dir(path))
	default:
		// err names the path already (an *os.PathError).
		return false, fmt.Errorf("create database: %w", err)
	}
}

// sqliteHeader opens every SQLite 3 database file.
const sqliteHeader = "SQLite format 3\x00"

// checkHeader refuses a file that is not SQLite. SQLite itself says so only
// at the first query, and with a message that names no file.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer f.Close()
	head := make([]byte, len(sqliteHeader))
	n, err := io.ReadFull(f, head)
	if n == 0 && err == io.EOF {
		return nil // an empty file is an empty database
	}
	if err != nil && err != io.ErrUnexpectedEOF {
		return fmt.Errorf("open database %s: %w", path, err)
	}
	if string(head[:n]) != sqliteHeader {
		return newError(ErrNotDatabase, "%s is not a facegate database (not an SQLite file)", path)
	}
	return nil
}

// fileURI is path as an SQLite URI filename, escaping what would end the
// path or start an escape.
func fileURI(path string) string {
	return "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

// cannotReadWAL explains the one way a file we may read still fails to
// open: SQLite reads a WAL database only with its -shm file, which it must
// create when no other connection has the database open, and cannot in a
// directory it may not write (a read-only mount, or someone else's
// directory).
func (db *DB) cannotReadWAL(err error) error {
	var e sqlite3.Error
	if !errors.As(err, &e) || e.Code != sqlite3.ErrCantOpen {
		return err
	}
	if _, statErr := os.Stat(db.path + "-shm"); !errors.Is(statErr, os.ErrNotExist) {
		return err
	}
	if f, openErr := os.Open(db.path); openErr == nil {
		f.Close()
	} else {
		return err
	}
	return &kindError{ErrReadOnly, fmt.Sprintf("open database: %s is read-only to this process, and SQLite cannot create %s-shm, which it needs to read a database in WAL mode: make %s writable for this user", db.path, db.path, filepath.Dir(db.path)), err}
}

// checkApplication refuses an SQLite file another application made: one
// with tables but no meta table. An empty file is ours to initialise.
func (db *DB) checkApplication(ctx context.Context) error {
	rows, err := db.ro.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return db.sqlError("open database", err)
	}
	defer rows.Close()
	var tables []string
	hasMeta := false
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return db.sqlError("open database", err)
		}
		tables = append(tables, name)
		hasMeta = hasMeta || name == "meta"
	}
	if err := rows.Err(); err != nil {
		return db.sqlError("open database", err)
	}
	if len(tables) > 0 && !hasMeta {
		shown := tables
		if len(shown) > 5 {
			shown = append(shown[:5:5], "…")
		}
		return newError(ErrNotDatabase, "%s is not a facegate database (an SQLite file of another application: tables %s, no meta)", db.path, strings.Join(shown, ", "))
	}
	return nil
}

// checkModel refuses a database holding templates of an encoder other than
// db.model.
func (db *DB) checkModel(ctx context.Context) error {
	var other string
	err := db.ro.QueryRowContext(ctx, `SELECT model FROM templates WHERE model != ? GROUP BY model ORDER BY count(*) DESC LIMIT 1`, db.model).Scan(&other)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return db.sqlError("open database", err)
	}
	return newError(ErrOtherModel, "%s holds templates made by encoder %s, but this facegate uses %s: re-enroll everyone with this encoder (facegate import), or point --encoder at the old one",
		db.path, shortModel(other), shortModel(db.model))
}

// shortModel shortens an encoder identity (a sha256 hex, perhaps with a
// suffix) for messages.
func shortModel(model string) string {
	const n = 12
	if r := []rune(model); len(r) > n {
		return string(r[:n]) + "…"
	}
	return model
}

// Close closes the database.
func (db *DB) Close() error {
	var errs []error
	if db.ro != nil {
		errs = append(errs, db.ro.Close())
	}
	// The writer last: the last connection to close checkpoints the WAL.
	if db.rw != nil {
		errs = append(errs, db.rw.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close database %s: %w", db.path, err)
	}
	return nil
}

// Path is the path the database was opened with.
func (db *DB) Path() string { return db.path }

// Model is the encoder identity the database was opened with.
func (db *DB) Model() string { return db.model }

// sqlError turns an error of SQLite into one that names the operation and
// the file, and says what the common causes mean.
func (db *DB) sqlError(op string, err error) error {
	if err == nil {
		return nil
	}
	var e sqlite3.Error
	if errors.As(err, &e) {
		switch e.Code {
		case sqlite3.ErrReadonly:
			return &kindError{ErrReadOnly, fmt.Sprintf("%s: %s is read-only", op, db.path), err}
		case sqlite3.ErrNotADB:
			return &kindError{ErrNotDatabase, fmt.Sprintf("%s: %s is not a facegate database (not an SQLite file)", op, db.path), err}
		case sqlite3.ErrBusy, sqlite3.ErrLocked:
			return fmt.Errorf("%s: %s is locked by another process (waited %v): %w", op, db.path, BusyTimeout, err)
		case sqlite3.ErrFull:
			return fmt.Errorf("%s: the disk holding %s is full: %w", op, db.path, err)
		case sqlite3.ErrCorrupt:
			return fmt.Errorf("%s: %s is corrupt: %w", op, db.path, err)
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %s: %w", op, db.path, err)
}
