package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/facegate/facegate/daemon"
	"github.com/facegate/facegate/store"
)

func TestEventsCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "door.db")
	db, err := store.Open(ctx, path, "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.Local)
	var ids []string
	for i, d := range []daemon.Decision{
		{Kind: daemon.KindUnlock, PersonID: "m001", PersonName: "The man", Score: 0.9, Margin: 0.5, Liveness: 0.99, Frames: 5, At: now.Add(-48 * time.Hour)},
		{Kind: daemon.KindDeny, Reason: daemon.ReasonSpoof, Score: 0.7, Liveness: 0.1, Frames: 3, At: now.Add(-2 * time.Hour)},
		{Kind: daemon.KindUnlock, PersonID: "w002", PersonName: "A woman", Score: 0.8, Margin: 0.4, Liveness: 0.97, Frames: 3, At: now.Add(-time.Hour)},
	} {
		e := daemon.NewEvent("front", d, now)
		s, err := e.StoreEvent()
		if err != nil {
			t.Fatal(err)
		}
		if err := db.RecordDecision(ctx, s, e.Topic(daemon.DefaultTopicPrefix)); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			if err := db.Delivered(ctx, e.ID); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, e.ID)
	}
	db.Close()
	events := func(args ...string) result {
		t.Helper()
		return runIn(t, func(o, e io.Writer) command {
			return &EventsCommand{stdout: o, stderr: e, now: func() time.Time { return now }}
		}, args...)
	}

	r := events("--db", path)
	out := lines(r.stdout)
	if r.code != 0 || len(out) != 3 || !strings.Contains(out[0], "UNLOCK  The man (m001)") || !strings.Contains(out[1], "reason spoof") ||
		!strings.HasSuffix(out[2], "PENDING") || strings.Contains(out[0], "PENDING") || !strings.Contains(r.stderr, "3 decisions") {
		t.Errorf("events: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, c := range []struct {
		args []string
		want []string // ids, in order
	}{
		{[]string{"--since", "24h"}, ids[1:]},
		{[]string{"--since", "3h", "--kind", "unlock"}, ids[2:]},
		{[]string{"--person", "m001"}, ids[:1]},
		{[]string{"--until", now.Add(-90 * time.Minute).Format(time.RFC3339)}, ids[:2]},
		{[]string{"--since", now.AddDate(0, 0, -2).Format(time.DateOnly), "--until", now.AddDate(0, 0, -2).Format(time.DateOnly)}, ids[:1]},
		{[]string{"--limit", "2"}, ids[1:]},
		{[]string{"--door", "back"}, nil},
	} {
		r := events(append([]string{"--db", path, "--json"}, c.args...)...)
		var got []string
		for _, l := range lines(r.stdout) {
			var e struct{ ID string }
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("events %v: line %q: %v", c.args, l, err)
			}
			got = append(got, e.ID)
		}
		if r.code != 0 || strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("events %v: exit %d, ids %v, want %v: %s", c.args, r.code, got, c.want, r.stderr)
		}
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--db", path, "--limit", "0"}, 2, "--limit 0"},
		{[]string{"--db", path, "--kind", "open"}, 2, `--kind "open"`},
		{[]string{"--db", path, "--since", "yesterday"}, 2, `--since "yesterday": want a date`},
		{[]string{"--db", path, "--until", "24h"}, 2, `--until "24h": want a date`},
		{[]string{"--db", path, "--since", "2026-02-30"}, 2, `--since "2026-02-30"`},
		{[]string{"--db", path, "--since", "1h", "--until", "2026-01-01"}, 2, "is before --since"},
		{[]string{"--db", filepath.Join(dir, "none.db")}, 1, "no such database"},
		{[]string{"--db", path, "extra"}, 2, `unexpected argument "extra"`},
	} {
		r := events(c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) || len(lines(r.stderr)) != 1 {
			t.Errorf("events %v: exit %d, want %d with one line saying %q:\n%s", c.args, r.code, c.code, c.want, r.stderr)
		}
	}
	if r := events("-h"); r.code != 0 || !strings.Contains(r.stderr, "Examples:") {
		t.Errorf("-h: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "none.db")); err == nil {
		t.Error("events created the database it was asked to read")
	}
}
