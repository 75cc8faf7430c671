package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestOpenSettings(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "facegate.db")
	db := openAt(t, path, testModel)
	if err := db.Enroll(ctx, Person{ID: "ada", Name: "Ada", Active: true}, makeTemplates(rand.New(rand.NewPCG(1, 1)), testModel, 1, testDim), false); err != nil {
		t.Fatal(err)
	}

	// The file and SQLite's own files beside it hold faces: owner only.
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %o, want 600", filepath.Base(name), mode)
		}
	}

	// Per-connection settings must hold on every pooled connection, not just
	// the first: hold several at once so the pool must open new ones.
	for _, pool := range []struct {
		name    string
		db      *sql.DB
		conns   int
		txlock  string
		queryOK bool
	}{
		{"writer", db.rw, 1, "BEGIN IMMEDIATE", false},
		{"reader", db.ro, 4, "BEGIN", true},
	} {
		var conns []*sql.Conn
		for range pool.conns {
			c, err := pool.db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		for i, c := range conns {
			for pragma, want := range map[string]string{
				"journal_mode":  "wal",
				"foreign_keys":  "1",
				"busy_timeout":  fmt.Sprint(BusyTimeout.Milliseconds()),
				"synchronous":   "1", // NORMAL
				"secure_delete": "1",
			} {
				var got string
				if err := c.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("%s connection %d: PRAGMA %s = %s, want %s", pool.name, i, pragma, got, want)
				}
			}
			var queryOnly bool
			if err := c.QueryRowContext(ctx, "PRAGMA query_only").Scan(&queryOnly); err != nil {
				t.Fatal(err)
			}
			if queryOnly != pool.queryOK {
				t.Errorf("%s connection %d: query_only = %v", pool.name, i, queryOnly)
			}
		}
		for _, c := range conns {
			c.Close()
		}
	}
}

func TestOpenBadInputs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	notSQLite := filepath.Join(dir, "notes.txt")
	os.WriteFile(notSQLite, []byte("this is not a database, but it is long enough\n"), 0o600)

	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("SQLite"), 0o600)

	// Another application's SQLite file, in rollback journal mode: Open
	// must refuse it without touching it (not even switching it to WAL).
	otherApp := filepath.Join(dir, "other.sqlite")
	{
		other, err := sql.Open("sqlite3", otherApp)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Exec(`CREATE TABLE songs (id INTEGER PRIMARY KEY, title TEXT); INSERT INTO songs (title) VALUES ('So What')`); err != nil {
			t.Fatal(err)
		}
		other.Close()
	}

	// A meta table, but not ours.
	metaNoVersion := filepath.Join(dir, "meta.sqlite")
	{
		other, err := sql.Open("sqlite3", metaNoVersion)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Exec(`CREATE TABLE meta (key TEXT, value TEXT); INSERT INTO meta VALUES ('owner', 'someone else')`); err != nil {
			t.Fatal(err)
		}
		other.Close()
	}

	for _, tc := range []struct {
		name string
		path string
		kind error // nil: any error
		want []string
	}{
		{"not SQLite", notSQLite, ErrNotDatabase, []string{notSQLite, "is not a facegate database (not an SQLite file)"}},
		{"shorter than a header", short, ErrNotDatabase, []string{short, "not an SQLite file"}},
		{"another application's SQLite", otherApp, ErrNotDatabase, []string{otherApp, "another application", "songs"}},
		{"meta without schema_version", metaNoVersion, ErrNotDatabase, []string{metaNoVersion, "schema_version"}},
		{"missing directory", filepath.Join(dir, "nowhere", "facegate.db"), nil, []string{filepath.Join(dir, "nowhere"), "does not exist"}},
		{"a directory", dir, ErrNotDatabase, []string{dir, "not a regular file"}},
		{"no path", "", ErrInvalid, []string{"no path"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.ReadFile(tc.path)
			db, err := Open(ctx, tc.path, testModel)
			if err == nil {
				db.Close()
				t.Fatalf("Open(%q) succeeded", tc.path)
			}
			checkOneLine(t, err, tc.want...)
			if tc.kind != nil && !errors.Is(err, tc.kind) {
				t.Errorf("error %q is not %v", err, tc.kind)
			}
			if after, _ := os.ReadFile(tc.path); !bytes.Equal(before, after) {
				t.Errorf("Open changed %s", tc.path)
			}
			for _, suffix := range []string{"-wal", "-shm"} {
				if _, err := os.Stat(tc.path + suffix); err == nil {
					t.Errorf("Open left %s%s behind", tc.path, suffix)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "nowhere")); err == nil {
		t.Error("Open created the missing directory")
	}
}

func TestOpenExistingEmptyFile(t *testing.T) {
	// An empty file (touch facegate.db) is an empty database, and keeps the
	// mode its owner gave it.
	path := filepath.Join(t.TempDir(), "facegate.db")
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	db := openAt(t, path, testModel)
	if n := rawCount(t, db, `SELECT count(*) FROM people`); n != 0 {
		t.Errorf("%d people in a new database", n)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode changed to %o", fi.Mode().Perm())
	}
}

func TestOpenMigratesOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "facegate.db")
	// Several processes may open a new file at once (the daemon starting as
	// an admin enrolls): each migration must run exactly once.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			db, err := Open(ctx, path, testModel)
			if err == nil {
				err = db.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		// One of them created the file; the others found it, perhaps still
		// empty, and must have waited for the migration rather than fail.
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
	db := openAt(t, path, testModel)
	var version string
	if err := db.ro.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'schema_version'`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != fmt.Sprint(SchemaVersion()) {
		t.Errorf("schema_version %s, want %d", version, SchemaVersion())
	}
	if n := rawCount(t, db, `SELECT count(*) FROM meta WHERE key = 'gallery_version'`); n != 1 {
		t.Errorf("%d gallery_version rows", n)
	}
	for _, table := range []string{"people", "templates", "events", "outbox", "meta"} {
		if n := rawCount(t, db, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, table); n != 1 {
			t.Errorf("table %s: %d", table, n)
		}
	}
}

func TestOpenNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "facegate.db")
	db, err := Open(ctx, path, testModel)
	if err != nil {
		t.Fatal(err)
	}
	newer := SchemaVersion() + 1
	if _, err := db.rw.ExecContext(ctx, `UPDATE meta SET value = ? WHERE key = 'schema_version'`, fmt.Sprint(newer)); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = Open(ctx, path, testModel)
	if err == nil {
		db.Close()
		t.Fatal("Open of a newer schema succeeded")
	}
	if !errors.Is(err, ErrNewerSchema) {
		t.Errorf("error %q is not ErrNewerSchema", err)
	}
	checkOneLine(t, err, path, "written by a newer facegate", fmt.Sprintf("schema version %d", newer), fmt.Sprintf("up to %d", SchemaVersion()), "upgrade facegate")
}

func TestOpenOtherModel(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "facegate.db")
	db, err := Open(ctx, path, testModel)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Enroll(ctx, Person{ID: "ada", Name: "Ada", Active: true}, makeTemplates(rand.New(rand.NewPCG(1, 2)), testModel, 2, testDim), false); err != nil {
		t.Fatal(err)
	}
	db.Close()

	for _, tc := range []struct {
		name  string
		model string
		err   string // "" : opens
	}{
		{"same encoder", testModel, ""},
		{"no encoder (people, remove)", "", ""},
		{"another encoder", otherModel,
			path + " holds templates made by encoder 87aacdfe5751…, but this facegate uses 1234abcd5678…: re-enroll everyone with this encoder (facegate import), or point --encoder at the old one"},
		{"a short identity", "mine", "but this facegate uses mine:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := Open(ctx, path, tc.model)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				db.Close()
				return
			}
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, ErrOtherModel) {
				t.Errorf("error %q is not ErrOtherModel", err)
			}
			checkOneLine(t, err, tc.err)
		})
	}
}

func TestFileURI(t *testing.T) {
	// Paths with characters that mean something in a URI must open the file
	// they name.
	dir := t.TempDir()
	for _, name := range []string{"a?b.db", "50%.db", "x#y.db", "with space.db"} {
		path := filepath.Join(dir, name)
		db := openAt(t, path, testModel)
		if _, err := os.Stat(path); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if n := rawCount(t, db, `SELECT count(*) FROM meta`); n != 2 {
			t.Errorf("%s: meta has %d rows", name, n)
		}
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), "-wal") && !strings.HasSuffix(e.Name(), "-shm") {
			names = append(names, e.Name())
		}
	}
	if len(names) != 4 {
		t.Errorf("files made: %q", names)
	}
}
