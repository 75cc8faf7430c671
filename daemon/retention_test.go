package daemon

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/facegate/facegate/store"
)

// TestPruneEventsLoop checks that the door's retention loop deletes old
// delivered decisions when it starts, keeps recent and undelivered ones,
// and returns when its context ends.
func TestPruneEventsLoop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "facegate.db")
	db := openTestDB(t, path)
	ctx := context.Background()
	now := time.Now()
	for _, e := range []struct {
		id        string
		age       time.Duration
		delivered bool
	}{{"old", 100 * 24 * time.Hour, true}, {"old-undelivered", 100 * 24 * time.Hour, false}, {"recent", time.Hour, true}} {
		ev := store.Event{ID: e.id, Time: now.Add(-e.age), Door: "front", Kind: store.EventDeny, Reason: ReasonUnknown, Payload: []byte("{}")}
		if err := db.RecordDecision(ctx, ev, "facegate/front/events/deny"); err != nil {
			t.Fatal(err)
		}
		if e.delivered {
			if err := db.Delivered(ctx, e.id); err != nil {
				t.Fatal(err)
			}
		}
	}
	ids := func() (out []string) {
		events, err := db.Events(ctx, store.EventQuery{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			out = append(out, e.ID)
		}
		slices.Sort(out)
		return out
	}

	loopCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- pruneEvents(loopCtx, db, 90*24*time.Hour, testLogger(t)) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(ids()) != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("pruneEvents returned %v when stopped", err)
	}
	if got := ids(); len(got) != 2 || got[0] != "old-undelivered" || got[1] != "recent" {
		t.Errorf("events left %q, want old-undelivered and recent", got)
	}
}
