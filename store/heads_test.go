package store

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
)

func testHead(name, method, model string) Head {
	return Head{Name: name, Method: method, Model: model, Blob: []byte("FGHD" + name), Metrics: json.RawMessage(`{"accuracy":0.99}`)}
}

func activeName(t *testing.T, db *DB, model string) string {
	t.Helper()
	h, ok, err := db.ActiveHead(context.Background(), model)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return ""
	}
	return h.Name
}

func TestHeadsSaveListActivate(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, testModel)
	if name := activeName(t, db, ""); name != "" {
		t.Fatalf("fresh database has active head %q", name)
	}
	for _, h := range []Head{
		testHead("t1", "triplet", testModel),
		testHead("l1", "logistic", testModel),
		testHead("x1", "chi2", otherModel),
	} {
		if err := db.SaveHead(ctx, h, false); err != nil {
			t.Fatal(err)
		}
	}
	hs, err := db.Heads(ctx, testModel)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 || hs[0].Name != "t1" || hs[1].Name != "l1" {
		t.Fatalf("heads of testModel: %+v", hs)
	}
	if string(hs[0].Blob) != "FGHDt1" || string(hs[0].Metrics) != `{"accuracy":0.99}` || hs[0].Method != "triplet" || hs[0].Created.IsZero() || hs[0].Active {
		t.Errorf("read back %+v", hs[0])
	}
	if all, _ := db.Heads(ctx, ""); len(all) != 3 {
		t.Errorf("all heads: %d, want 3", len(all))
	}

	// At most one active per encoder; activating one deactivates the other.
	if err := db.ActivateHead(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if err := db.ActivateHead(ctx, "x1"); err != nil {
		t.Fatal(err)
	}
	if a, b := activeName(t, db, testModel), activeName(t, db, otherModel); a != "t1" || b != "x1" {
		t.Fatalf("active %q and %q, want t1 and x1", a, b)
	}
	if err := db.ActivateHead(ctx, "l1"); err != nil {
		t.Fatal(err)
	}
	if a := activeName(t, db, ""); a != "l1" {
		t.Errorf("active %q after activating l1", a)
	}
	if n := rawCount(t, db, `SELECT count(*) FROM heads WHERE active = 1`); n != 2 {
		t.Errorf("%d active heads, want 2 (one per encoder)", n)
	}
	// The index refuses a second active head even to SQL that bypasses the API.
	if _, err := db.rw.ExecContext(ctx, `UPDATE heads SET active = 1 WHERE name = 't1'`); err == nil {
		t.Error("two active heads for one encoder accepted")
	}

	// Deactivate: plain cosine again.
	was, err := db.DeactivateHeads(ctx, "")
	if err != nil || was != "l1" {
		t.Fatalf("deactivate: %q, %v", was, err)
	}
	if a := activeName(t, db, ""); a != "" {
		t.Errorf("still active: %q", a)
	}
	if was, _ := db.DeactivateHeads(ctx, ""); was != "" {
		t.Errorf("second deactivate reports %q", was)
	}

	if err := db.ActivateHead(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("activate a missing head: %v", err)
	}
	if _, err := db.Head(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("read a missing head: %v", err)
	}
	if err := db.RemoveHead(ctx, "x1"); err != nil {
		t.Fatal(err)
	}
	if err := db.RemoveHead(ctx, "x1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("remove twice: %v", err)
	}
}

func TestSaveHeadReplace(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, testModel)
	h := testHead("cosine", "cosine", testModel)
	h.Active = true
	if err := db.SaveHead(ctx, h, false); err != nil {
		t.Fatal(err)
	}
	err := db.SaveHead(ctx, testHead("cosine", "cosine", testModel), false)
	if !errors.Is(err, ErrExists) {
		t.Fatalf("save over an existing name: %v, want ErrExists", err)
	}
	checkOneLine(t, err, "cosine", "already")
	// Replacing keeps the active flag (recalibrating the active head).
	h2 := testHead("cosine", "cosine", testModel)
	h2.Blob = []byte("new")
	h2.Metrics = json.RawMessage(`{"calibration":{"far":0.0001}}`)
	if err := db.SaveHead(ctx, h2, true); err != nil {
		t.Fatal(err)
	}
	got, err := db.Head(ctx, "cosine")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Blob) != "new" || !got.Active || string(got.Metrics) != `{"calibration":{"far":0.0001}}` {
		t.Errorf("replaced head: %+v", got)
	}
	// Saving a new head as active takes over.
	h3 := testHead("t2", "triplet", testModel)
	h3.Active = true
	if err := db.SaveHead(ctx, h3, false); err != nil {
		t.Fatal(err)
	}
	if a := activeName(t, db, ""); a != "t2" {
		t.Errorf("active %q, want t2", a)
	}
}

func TestSaveHeadRefusesBadHeads(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, testModel)
	for name, h := range map[string]Head{
		"no name":       testHead("", "triplet", testModel),
		"spaced name":   testHead(" t ", "triplet", testModel),
		"no method":     testHead("a", "", testModel),
		"no model":      testHead("b", "triplet", ""),
		"empty blob":    {Name: "c", Method: "triplet", Model: testModel},
		"metrics array": {Name: "d", Method: "triplet", Model: testModel, Blob: []byte{1}, Metrics: json.RawMessage(`[1]`)},
		"metrics junk":  {Name: "e", Method: "triplet", Model: testModel, Blob: []byte{1}, Metrics: json.RawMessage(`{`)},
	} {
		err := db.SaveHead(ctx, h, false)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
			continue
		}
		checkOneLine(t, err, db.Path())
	}
	if n := rawCount(t, db, `SELECT count(*) FROM heads`); n != 0 {
		t.Errorf("%d heads written", n)
	}
}

func TestHeadChangesBumpGalleryVersion(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, testModel)
	v0, err := db.GalleryVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SaveHead(ctx, testHead("t1", "triplet", testModel), false); err != nil {
		t.Fatal(err)
	}
	v1, _ := db.GalleryVersion(ctx)
	if err := db.ActivateHead(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	v2, _ := db.GalleryVersion(ctx)
	if !(v0 < v1 && v1 < v2) {
		t.Errorf("gallery version %d, %d, %d: saving and activating a head must bump it", v0, v1, v2)
	}
}

func TestHeadsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "g.db")
	db, err := Open(ctx, path, testModel)
	if err != nil {
		t.Fatal(err)
	}
	h := testHead("t1", "triplet", testModel)
	h.Active = true
	if err := db.SaveHead(ctx, h, false); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openAt(t, path, "")
	got, ok, err := db.ActiveHead(ctx, testModel)
	if err != nil || !ok || got.Name != "t1" {
		t.Errorf("after reopening: %+v %v %v", got, ok, err)
	}
}
