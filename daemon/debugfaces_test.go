package daemon

import (
	"image"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

func TestDebugFaces(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	frame := gocv.NewMatWithSize(300, 400, gocv.MatTypeCV8UC3)
	defer frame.Close()
	box := image.Rect(100, 80, 200, 180)

	// Off unless configured: nothing to save into, and save is a no-op.
	off, err := newDebugFaces(DebugFacesConfig{}, log)
	if err != nil || off != nil {
		t.Fatalf("debug faces without a dir: %v, %v; want off", off, err)
	}
	off.save(frame, box, "id0", "spoof") // must not panic or write

	dir := filepath.Join(t.TempDir(), "faces")
	on, err := newDebugFaces(DebugFacesConfig{Dir: dir, Keep: time.Hour}, log)
	if err != nil {
		t.Fatal(err)
	}
	on.save(frame, box, "id1", "unknown")
	on.save(frame, image.Rectangle{}, "id2", "unknown") // no face: nothing
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("%d files kept, want 1", len(entries))
	}
	st, _ := os.Stat(dir)
	info, _ := entries[0].Info()
	if st.Mode().Perm() != 0o700 || info.Mode().Perm() != 0o600 {
		t.Errorf("modes: dir %v, file %v; want 0700 and 0600", st.Mode().Perm(), info.Mode().Perm())
	}
	on.prune(time.Now())
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Error("a fresh face was pruned")
	}
	on.prune(time.Now().Add(2 * time.Hour))
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("%d faces kept past their time", len(entries))
	}
}
