package main

import (
	"encoding/json"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/facegate/facegate/verify"
)

// enrollLFW enrolls one LFW photo as a person.
func enrollLFW(t *testing.T, db, id, name, photo string) result {
	t.Helper()
	return facegate(t, "enroll", "--db", db, "--id", id, "--name", name, lfw(photo))
}

func identify(t *testing.T, db, photo string) identifyJSON {
	t.Helper()
	r := facegate(t, "identify", "--db", db, "--json", photo)
	if r.code != 0 {
		t.Fatalf("identify %s: exit %d: %s", photo, r.code, r.stderr)
	}
	var out identifyJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("identify %s: %v in %q", photo, err, r.stdout)
	}
	return out
}

func TestEnrollThenIdentify(t *testing.T) {
	db := filepath.Join(t.TempDir(), "g.db")
	for _, p := range []struct{ id, name, photo string }{
		{"gwb", "George W Bush", "George_W_Bush_0001"},
		{"ae", "Aaron Eckhart", "Aaron_Eckhart_0001"},
	} {
		if r := enrollLFW(t, db, p.id, p.name, p.photo); r.code != 0 {
			t.Fatalf("enroll %s: exit %d: %s", p.id, r.code, r.stderr)
		}
	}
	st, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("database mode %v, want 0600", st.Mode().Perm())
	}
	// Another photo of an enrolled man is known, and is him.
	got := identify(t, db, lfw("George_W_Bush_0002"))
	if !got.Known || got.Person == nil || got.Person.ID != "gwb" {
		t.Errorf("George_W_Bush_0002: %+v, want known as gwb", got)
	}
	// A stranger (another LFW person) scores below the threshold.
	got = identify(t, db, lfw("Zico_0001"))
	if got.Known || got.Person != nil || got.Score >= verify.IdentifyThreshold {
		t.Errorf("stranger Zico_0001: %+v, want unknown below %.2f", got, verify.IdentifyThreshold)
	}
	// The people list shows both, and export → import loads another door.
	r := facegate(t, "people", "--db", db, "--json")
	if n := len(lines(r.stdout)); r.code != 0 || n != 2 {
		t.Errorf("people: exit %d, %d lines: %s", r.code, n, r.stdout)
	}
	file := filepath.Join(t.TempDir(), "templates.json")
	if r := facegate(t, "export", "--db", db, file); r.code != 0 {
		t.Fatalf("export: exit %d: %s", r.code, r.stderr)
	}
	door2 := filepath.Join(t.TempDir(), "door2.db")
	if r := facegate(t, "import", "--db", door2, file); r.code != 0 {
		t.Fatalf("import: exit %d: %s", r.code, r.stderr)
	}
	if got := identify(t, door2, lfw("George_W_Bush_0002")); !got.Known || got.Person.ID != "gwb" {
		t.Errorf("door 2 loaded from the export: %+v, want gwb", got)
	}
}

func TestRefusedEnrollmentWritesNothing(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "g.db")
	if r := enrollLFW(t, db, "ae", "Aaron Eckhart", "Aaron_Eckhart_0001"); r.code != 0 {
		t.Fatalf("enroll: %s", r.stderr)
	}
	grey := filepath.Join(dir, "grey.png")
	if err := writePNG(grey, greyImage(200, 200)); err != nil {
		t.Fatal(err)
	}
	two := filepath.Join(dir, "two.png")
	if err := writeTwoFaces(two); err != nil {
		t.Fatal(err)
	}
	// One good photo and two refused ones: nothing at all is written.
	r := facegate(t, "enroll", "--db", db, "--id", "gwb", "--name", "George W Bush",
		lfw("George_W_Bush_0001"), grey, two)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1: %s", r.code, r.stderr)
	}
	for _, want := range []string{"refused " + grey + ": no face", "refused " + two + ": 2 faces", "nothing written"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	r = facegate(t, "people", "--db", db, "--json")
	if strings.Contains(r.stdout, "gwb") || len(lines(r.stdout)) != 1 {
		t.Errorf("a refused enrollment left a trace: %s", r.stdout)
	}
}

func TestGalleryBadInput(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "g.db")
	if r := enrollLFW(t, db, "ae", "Aaron Eckhart", "Aaron_Eckhart_0001"); r.code != 0 {
		t.Fatalf("enroll: %s", r.stderr)
	}
	notSQLite := writeFile(t, filepath.Join(dir, "notes.db"), []byte("not a database\n"))
	mixed := filepath.Join(dir, "people")
	for _, d := range []string{"ae2", "empty"} {
		if err := os.MkdirAll(filepath.Join(mixed, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(lfw("Aaron_Eckhart_0001"))
	writeFile(t, filepath.Join(mixed, "ae2", "a.jpg"), b)
	writeFile(t, filepath.Join(mixed, "ae2", "notes.txt"), []byte("hello"))
	writeFile(t, filepath.Join(mixed, "empty", "fake.jpg"), []byte("not a jpeg"))

	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // every stderr line of a one-line case must hold these
		one  bool     // exactly one stderr line
	}{
		{"unknown id on remove", []string{"remove", "--db", db, "nobody"}, 1, []string{`"nobody"`, "no person"}, true},
		{"same id, another name", []string{"enroll", "--db", db, "--id", "ae", "--name", "Somebody Else", lfw("George_W_Bush_0002")}, 1,
			[]string{`"ae"`, "Aaron Eckhart", "Somebody Else"}, true},
		{"not an SQLite file", []string{"people", "--db", notSQLite}, 1, []string{notSQLite, "not a facegate database"}, true},
		{"no database given", []string{"people"}, 2, []string{"--db"}, true},
		{"identify in an empty database", []string{"identify", "--db", filepath.Join(dir, "new.db"), lfw("Zico_0001")}, 1, []string{"nobody is enrolled"}, true},
		{"import a folder with non-images", []string{"import", "--db", filepath.Join(dir, "imp.db"), mixed}, 1,
			[]string{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := facegate(t, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", r.code, tc.code, r.stderr)
			}
			ls := lines(r.stderr)
			if tc.one && len(ls) != 1 {
				t.Fatalf("%d stderr lines, want 1:\n%s", len(ls), r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
		})
	}
	// The mixed folder: ae2 enrolled from its one photo, notes.txt and the
	// fake JPEG reported, "empty" refused for want of a usable photo.
	r := facegate(t, "import", "--db", filepath.Join(dir, "imp2.db"), mixed)
	for _, want := range []string{"skipped " + filepath.Join(mixed, "ae2", "notes.txt") + ": not an image",
		"skipped " + filepath.Join(mixed, "empty", "fake.jpg"), "refused empty: no usable photo", "imported 1 people, refused 1"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("import stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

// TestReadOnlyDatabase opens the database through a read-only bind mount in
// a mount namespace of its own: root writes any file whatever its mode, so
// a chmod would prove nothing.
func TestReadOnlyDatabase(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("unshare (util-linux) is needed for this test: %v", err)
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "g.db")
	if r := enrollLFW(t, db, "ae", "Aaron Eckhart", "Aaron_Eckhart_0001"); r.code != 0 {
		t.Fatalf("enroll: %s", r.stderr)
	}
	script := `mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"`
	args := []string{"-m", "sh", "-c", script, "sh", dir, binPath, "enroll", "--db", db, "--id", "gwb", "--name", "George W Bush", lfw("George_W_Bush_0001")}
	cmd := exec.Command("unshare", args...)
	cmd.Env = cliEnv
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("enroll on a read-only database: %v, want exit 1:\n%s", err, out)
	}
	ls := lines(string(out))
	if len(ls) != 1 || !strings.Contains(ls[0], db) || !strings.Contains(ls[0], "read-only") {
		t.Errorf("want one line naming %s and saying read-only:\n%s", db, out)
	}
}

func greyImage(w, h int) image.Image {
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 128
	}
	return img
}
