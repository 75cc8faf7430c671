package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// helperMountEnv names a directory the read-only helper bind-mounts onto
// itself read-only, in its own mount namespace, before opening the database.
const helperMountEnv = "FACEGATE_STORE_RO_MOUNT"

// readOnlyReport is what the read-only helper saw.
type readOnlyReport struct {
	Setup        string            // why the helper could not set up; "" when it could
	Open         string            // Open's error
	OpenReadOnly bool              // whether it was ErrReadOnly
	People       int               // read through People
	Templates    int               // read through Gallery
	Writes       map[string]string // each write's error
	ReadOnly     map[string]bool   // whether it was ErrReadOnly
}

// TestHelperReadOnly is not a test: TestReadOnly runs the test binary as a
// child that cannot write the database (as another user, or on a read-only
// mount), tries reads and writes, and prints a readOnlyReport.
func TestHelperReadOnly(t *testing.T) {
	if os.Getenv(helperEnv) != "readonly" {
		t.Skip("helper process for TestReadOnly")
	}
	var report readOnlyReport
	defer func() {
		json.NewEncoder(os.Stdout).Encode(report)
		os.Exit(0)
	}()
	path := os.Getenv(helperDBEnv)
	if dir := os.Getenv(helperMountEnv); dir != "" {
		// The parent started us in a mount namespace of our own: make it
		// private so nothing propagates back, then bind the directory onto
		// itself and make that read-only.
		for _, m := range []struct {
			source, target string
			flags          uintptr
		}{
			{"", "/", syscall.MS_REC | syscall.MS_PRIVATE},
			{dir, dir, syscall.MS_BIND},
			{"", dir, syscall.MS_BIND | syscall.MS_REMOUNT | syscall.MS_RDONLY},
		} {
			if err := syscall.Mount(m.source, m.target, "", m.flags, ""); err != nil {
				report.Setup = "mount " + m.target + ": " + err.Error()
				return
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "probe"), nil, 0o600); !errors.Is(err, syscall.EROFS) {
			report.Setup = "the mount is not read-only: " + errString(err)
			return
		}
	} else if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		f.Close()
		report.Setup = "the database file is writable by this process"
		return
	}

	ctx := context.Background()
	db, err := Open(ctx, path, testModel)
	report.Open, report.OpenReadOnly = errString(err), errors.Is(err, ErrReadOnly)
	if err != nil {
		return
	}
	defer db.Close()
	people, err := db.People(ctx)
	if err != nil {
		report.Open = "People: " + err.Error()
		return
	}
	report.People = len(people)
	if _, _, templates, err := db.Gallery(ctx, testModel); err == nil {
		report.Templates = len(templates)
	}
	report.Writes = map[string]string{}
	report.ReadOnly = map[string]bool{}
	for name, write := range map[string]func() error{
		"enroll": func() error {
			return db.Enroll(ctx, Person{ID: "bob", Name: "Bob"}, makeTemplates(rand.New(rand.NewPCG(18, 1)), testModel, 1, testDim), false)
		},
		"remove":     func() error { return db.Remove(ctx, "ada") },
		"set active": func() error { return db.SetActive(ctx, "ada", false) },
		"set validity": func() error {
			return db.SetValidity(ctx, "ada", time.Time{}, time.Now())
		},
	} {
		err := write()
		report.Writes[name] = errString(err)
		report.ReadOnly[name] = errors.Is(err, ErrReadOnly)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestReadOnly opens a database the process cannot write: reads work,
// writes fail with ErrReadOnly and a message naming the file. Root may write
// any file whatever its mode, so the test makes the file read-only for real,
// in a child process: one that runs as an unprivileged user (when the test
// runs as root) against a 0400 file, or one that sees the database's
// directory through a read-only bind mount in a mount namespace of its own.
func TestReadOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	asNobody := func(t *testing.T, dir, path string, child *exec.Cmd) {
		if err := os.Chmod(path, 0o400); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() != 0 {
			return
		}
		// As root, hand the file and its directory to nobody and run the
		// child as nobody, from a copy of the test binary nobody can reach.
		const nobody = 65534
		for _, d := range []string{filepath.Dir(filepath.Dir(dir)), filepath.Dir(dir)} {
			if err := os.Chmod(d, 0o755); err != nil { // t.TempDir makes them 0700
				t.Fatal(err)
			}
		}
		for _, p := range []string{dir, path} {
			if err := os.Chown(p, nobody, nobody); err != nil {
				t.Skipf("cannot chown %s: %v", p, err)
			}
		}
		child.Path = copyTestBinary(t)
		child.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	}
	readOnlyMount := func(t *testing.T, dir, path string, child *exec.Cmd) {
		child.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
		child.Env = append(child.Env, helperMountEnv+"="+dir)
	}

	for _, tc := range []struct {
		name     string
		setup    func(t *testing.T, dir, path string, child *exec.Cmd)
		keepOpen bool     // the parent keeps the database open, so its -wal and -shm exist
		openErr  []string // nil: Open succeeds
	}{
		{"file mode 0400", asNobody, false, nil},
		{"read-only mount, in use by another process", readOnlyMount, true, nil},
		// SQLite reads a WAL database only with a -shm file, which it cannot
		// create here: Open must say so, and what to do.
		{"read-only mount, not in use", readOnlyMount, false, []string{"is read-only to this process", "facegate.db-shm", "make ", " writable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := filepath.Join(t.TempDir(), "db")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "facegate.db")
			db, err := Open(ctx, path, testModel)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.Enroll(ctx, Person{ID: "ada", Name: "Ada", Active: true}, makeTemplates(rand.New(rand.NewPCG(19, 1)), testModel, 2, testDim), false); err != nil {
				t.Fatal(err)
			}
			if !tc.keepOpen {
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
			}
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			child := exec.Command(os.Args[0], "-test.run=^TestHelperReadOnly$", "-test.count=1")
			child.Env = append(os.Environ(), helperEnv+"=readonly", helperDBEnv+"="+path)
			child.Stderr = os.Stderr
			tc.setup(t, dir, path, child)
			out, err := child.Output()
			if err != nil {
				if errors.Is(err, syscall.EPERM) {
					t.Skipf("this process may not start the child (%v): nothing tested", err)
				}
				t.Fatalf("child: %v\n%s", err, out)
			}
			var report readOnlyReport
			if err := json.Unmarshal(out, &report); err != nil {
				t.Fatalf("child said %q: %v", out, err)
			}
			if report.Setup != "" {
				t.Fatalf("child could not set up: %s", report.Setup)
			}
			if after, err := os.ReadFile(path); err != nil || !bytes.Equal(before, after) {
				t.Errorf("the database changed (%v)", err)
			}
			if tc.openErr != nil {
				if !report.OpenReadOnly {
					t.Errorf("Open: error %q is not ErrReadOnly", report.Open)
				}
				checkOneLine(t, errors.New(report.Open), append(tc.openErr, path)...)
				t.Logf("open: %s", report.Open)
				return
			}
			if report.Open != "" {
				t.Fatalf("Open of a read-only database: %s", report.Open)
			}
			if report.People != 1 || report.Templates != 2 {
				t.Errorf("read %d people, %d templates; want 1, 2", report.People, report.Templates)
			}
			if len(report.Writes) != 4 {
				t.Errorf("writes tried: %v", report.Writes)
			}
			for name, msg := range report.Writes {
				if !report.ReadOnly[name] {
					t.Errorf("%s: error %q is not ErrReadOnly", name, msg)
				}
				checkOneLine(t, errors.New(msg), path+" is read-only")
			}
			t.Logf("enroll: %s", report.Writes["enroll"])
		})
	}
}

// copyTestBinary copies the running test binary where another user can run
// it: go test builds it in a directory only its owner can enter.
func copyTestBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// t.TempDir's parent is this test's own directory, made 0700.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	exe := filepath.Join(dir, filepath.Base(os.Args[0]))
	dst, err := os.OpenFile(exe, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return exe
}
