package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// The environment that turns the test binary into a helper process.
const (
	helperEnv   = "FACEGATE_STORE_HELPER"
	helperDBEnv = "FACEGATE_STORE_DB"
)

const (
	crashPeople    = 5000
	crashTemplates = 3
)

// TestHelperImport is not a test: TestKillDuringImport runs the test binary
// as a child that imports crashPeople people into a database and prints each
// id once its transaction has committed, until it is killed.
func TestHelperImport(t *testing.T) {
	if os.Getenv(helperEnv) != "import" {
		t.Skip("helper process for TestKillDuringImport")
	}
	ctx := context.Background()
	db, err := Open(ctx, os.Getenv(helperDBEnv), testModel)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	rng := rand.New(rand.NewPCG(17, 1))
	f := TemplateFile{Model: testModel, ModelName: "fr_feature.onnx", Dim: testDim}
	for i := range crashPeople {
		id := fmt.Sprintf("p%05d", i)
		f.People = append(f.People, Enrollment{Person{ID: id, Name: "Person " + id, Active: true}, makeTemplates(rng, testModel, crashTemplates, testDim)})
	}
	err = db.ImportEach(ctx, f, false, func(r ImportResult) error {
		// Unbuffered: the parent must learn of each commit at once.
		_, err := fmt.Fprintln(os.Stdout, r.ID)
		return err
	})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("done")
	os.Exit(0)
}

// TestKillDuringImport kills a process with SIGKILL in the middle of a large
// import: the database must open, pass integrity_check, hold every person
// the process reported committed, and every person it holds complete.
func TestKillDuringImport(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	for _, killAfter := range []int{1, 200, 1200} {
		t.Run(fmt.Sprintf("after %d", killAfter), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "facegate.db")
			child := exec.Command(os.Args[0], "-test.run=^TestHelperImport$", "-test.count=1")
			child.Env = append(os.Environ(), helperEnv+"=import", helperDBEnv+"="+path)
			child.Stderr = os.Stderr
			stdout, err := child.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			committed := map[string]bool{}
			lines := bufio.NewScanner(stdout)
			for len(committed) < killAfter && lines.Scan() {
				committed[lines.Text()] = true
			}
			if err := child.Process.Kill(); err != nil { // SIGKILL: no deferred code, no Close
				t.Fatal(err)
			}
			// Ids printed before the kill landed were committed too.
			for lines.Scan() {
				committed[lines.Text()] = true
			}
			err = child.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child was not killed: %v (lines %v)", err, len(committed))
			}
			if committed["done"] || len(committed) >= crashPeople {
				t.Fatalf("the import finished before the kill (%d committed): nothing was tested", len(committed))
			}
			for id := range committed {
				if len(id) != 6 || id[0] != 'p' {
					t.Fatalf("child said %q", id)
				}
			}

			db := openAt(t, path, testModel)
			ctx := context.Background()
			var integrity string
			if err := db.ro.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&integrity); err != nil {
				t.Fatal(err)
			}
			if integrity != "ok" {
				t.Fatalf("integrity_check: %s", integrity)
			}
			if n := rawCount(t, db, `SELECT count(*) FROM pragma_foreign_key_check`); n != 0 {
				t.Errorf("%d foreign key violations", n)
			}
			people, err := db.People(ctx)
			if err != nil {
				t.Fatal(err)
			}
			present := map[string]bool{}
			for _, p := range people {
				present[p.ID] = true
				if p.Templates != crashTemplates {
					t.Errorf("%s has %d templates, want %d", p.ID, p.Templates, crashTemplates)
				}
			}
			for id := range committed {
				if !present[id] {
					t.Errorf("%s was reported committed but is missing", id)
				}
			}
			// At most one person can have committed without being reported:
			// the kill may land between a commit and its line.
			if len(people) > len(committed)+1 {
				t.Errorf("%d people in the database, %d reported", len(people), len(committed))
			}
			// The gallery of a killed import loads whole.
			if _, _, templates, err := db.Gallery(ctx, testModel); err != nil || len(templates) != crashTemplates*len(people) {
				t.Errorf("gallery: %d templates, %v", len(templates), err)
			}
			t.Logf("killed after %d reported commits; %d people present, all complete", len(committed), len(people))
		})
	}
}
