package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

const testTopic = "facegate/front/events/unlock"

// testEvent is a valid event with id and time of the test's choosing.
func testEvent(id string, at time.Time) Event {
	return Event{
		ID:       id,
		Time:     at,
		Door:     "front",
		Kind:     EventUnlock,
		Person:   "alice",
		Score:    0.71,
		Margin:   0.2,
		Liveness: 0.98,
		Frames:   3,
		Payload:  []byte(`{"id":"` + id + `"}`),
	}
}

var testTime = time.Date(2026, 3, 1, 8, 30, 0, 123_000_000, time.UTC)

func TestOutboxRecordDecision(t *testing.T) {
	db := openTest(t, "")
	ctx := context.Background()
	e := testEvent("e1", testTime.In(time.FixedZone("CET", 3600)))
	e.Reason = ""
	if err := db.RecordDecision(ctx, e, testTopic); err != nil {
		t.Fatal(err)
	}
	deny := testEvent("e2", testTime.Add(time.Second))
	deny.Kind, deny.Person, deny.Reason = EventDeny, "", "unknown"
	if err := db.RecordDecision(ctx, deny, "facegate/front/events/deny"); err != nil {
		t.Fatal(err)
	}

	got, err := db.PendingOutbox(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d pending, want 2: %+v", len(got), got)
	}
	o := got[0]
	if o.Event != "e1" || o.Kind != EventUnlock || o.Topic != testTopic || !bytes.Equal(o.Payload, e.Payload) || o.Attempts != 0 {
		t.Errorf("entry %+v does not match the event recorded", o)
	}
	if !o.Time.Equal(e.Time) {
		t.Errorf("entry time %v, want %v", o.Time, e.Time)
	}
	if o.Created.IsZero() {
		t.Error("entry has no creation time")
	}
	if got[1].Event != "e2" || got[1].Kind != EventDeny {
		t.Errorf("second entry %+v, want the deny", got[1])
	}

	// The audit log holds the fields, NULL where there is none.
	if n := rawCount(t, db, `SELECT count(*) FROM events WHERE id = 'e1' AND person = 'alice' AND reason IS NULL AND frames = 3 AND abs(score - 0.71) < 1e-6 AND door = 'front' AND payload = ?`, string(e.Payload)); n != 1 {
		t.Error("events row of e1 does not hold its fields")
	}
	if n := rawCount(t, db, `SELECT count(*) FROM events WHERE id = 'e2' AND person IS NULL AND reason = 'unknown' AND kind = 'deny'`); n != 1 {
		t.Error("events row of e2 does not hold its fields")
	}
	if depth, err := db.OutboxDepth(ctx); err != nil || depth != 2 {
		t.Errorf("OutboxDepth = %d, %v; want 2", depth, err)
	}
}

// TestOutboxRecordDecisionAtomic makes the second of RecordDecision's two
// writes fail: the first must not remain.
func TestOutboxRecordDecisionAtomic(t *testing.T) {
	db := openTest(t, "")
	ctx := context.Background()
	if _, err := db.rw.ExecContext(ctx, `CREATE TRIGGER outbox_refuses BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'outbox refuses'); END`); err != nil {
		t.Fatal(err)
	}
	err := db.RecordDecision(ctx, testEvent("e1", testTime), testTopic)
	checkOneLine(t, err, `record event "e1"`, "outbox refuses")
	if n := rawCount(t, db, `SELECT count(*) FROM events`); n != 0 {
		t.Errorf("%d events written by a failed RecordDecision", n)
	}
	if _, err := db.rw.ExecContext(ctx, `DROP TRIGGER outbox_refuses`); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordDecision(ctx, testEvent("e1", testTime), testTopic); err != nil {
		t.Fatalf("after the failure: %v", err)
	}
}

func TestOutboxRecordDecisionRefuses(t *testing.T) {
	db := openTest(t, "")
	ctx := context.Background()
	if err := db.RecordDecision(ctx, testEvent("dup", testTime), testTopic); err != nil {
		t.Fatal(err)
	}
	if err := db.Delivered(ctx, "dup"); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		edit  func(*Event)
		topic string
		want  string
	}{
		{"duplicate id", func(e *Event) { e.ID = "dup" }, testTopic, "already recorded"},
		{"empty id", func(e *Event) { e.ID = "" }, testTopic, "id is empty"},
		{"no time", func(e *Event) { e.Time = time.Time{} }, testTopic, "time is not set"},
		{"bad kind", func(e *Event) { e.Kind = "open" }, testTopic, `kind "open"`},
		{"no door", func(e *Event) { e.Door = "" }, testTopic, "door is empty"},
		{"NaN score", func(e *Event) { e.Score = float32(nan()) }, testTopic, "score is NaN"},
		{"negative frames", func(e *Event) { e.Frames = -1 }, testTopic, "frames is -1"},
		{"empty payload", func(e *Event) { e.Payload = nil }, testTopic, "payload is empty"},
		{"huge payload", func(e *Event) { e.Payload = bytes.Repeat([]byte("x"), MaxEventPayloadBytes+1) }, testTopic, "payload has"},
		{"binary payload", func(e *Event) { e.Payload = []byte{0xff, 0xfe} }, testTopic, "not UTF-8"},
		{"empty topic", func(e *Event) {}, "", "topic is empty"},
		{"wildcard topic", func(e *Event) {}, "facegate/+/events", "wildcard"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := testEvent("e-"+tc.name, testTime)
			tc.edit(&e)
			err := db.RecordDecision(ctx, e, tc.topic)
			checkOneLine(t, err, tc.want)
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
		})
	}
	if n := rawCount(t, db, `SELECT count(*) FROM events`); n != 1 {
		t.Errorf("%d events, want only the first", n)
	}
	if n := rawCount(t, db, `SELECT count(*) FROM outbox`); n != 0 {
		t.Errorf("%d outbox rows, want none", n)
	}
}

func nan() float64 {
	var zero float64
	return zero / zero
}

// TestOutboxOrder: rows come back in the order they were written, whatever
// the events' times, also after deletions in the middle and at the end.
func TestOutboxOrder(t *testing.T) {
	db := openTest(t, "")
	ctx := context.Background()
	var want []string
	for i := range 20 {
		id := fmt.Sprintf("e%02d", i)
		// Times run backwards: order is by writing, not by event time.
		if err := db.RecordDecision(ctx, testEvent(id, testTime.Add(-time.Duration(i)*time.Second)), testTopic); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	check := func(limit int, want []string) {
		t.Helper()
		got, err := db.PendingOutbox(ctx, limit)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, o := range got {
			ids = append(ids, o.Event)
		}
		if fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Errorf("PendingOutbox(%d) = %v, want %v", limit, ids, want)
		}
	}
	check(100, want)
	check(5, want[:5])
	check(1, want[:1])

	// Delete the newest and some in the middle, then write more: the new
	// rows come last even though the newest rowid was freed.
	for _, id := range []string{"e19", "e03", "e00", "e10"} {
		if err := db.Delivered(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"late1", "late2"} {
		if err := db.RecordDecision(ctx, testEvent(id, testTime.Add(-time.Hour)), testTopic); err != nil {
			t.Fatal(err)
		}
	}
	var rest []string
	for _, id := range want {
		if id != "e19" && id != "e03" && id != "e00" && id != "e10" {
			rest = append(rest, id)
		}
	}
	check(100, append(rest, "late1", "late2"))

	// A row tried OutboxTriesInOrder times without success goes behind
	// every other; one tried once less keeps its place.
	for i := range OutboxTriesInOrder {
		if err := db.Attempted(ctx, "e01"); err != nil {
			t.Fatal(err)
		}
		if i < OutboxTriesInOrder-1 {
			if err := db.Attempted(ctx, "e02"); err != nil {
				t.Fatal(err)
			}
		}
	}
	check(100, append(append(rest[1:], "late1", "late2"), "e01"))
	check(1, []string{"e02"})

	if _, err := db.PendingOutbox(ctx, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("PendingOutbox(0): %v, want ErrInvalid", err)
	}
}

func TestOutboxDeliveredIdempotent(t *testing.T) {
	db := openTest(t, "")
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if err := db.RecordDecision(ctx, testEvent(id, testTime), testTopic); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if err := db.Delivered(ctx, "a"); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Delivered(ctx, "never-recorded"); err != nil {
		t.Fatal(err)
	}
	if depth, err := db.OutboxDepth(ctx); err != nil || depth != 1 {
		t.Errorf("OutboxDepth = %d, %v; want 1", depth, err)
	}
	// The audit log keeps delivered events.
	if n := rawCount(t, db, `SELECT count(*) FROM events`); n != 2 {
		t.Errorf("%d events, want 2", n)
	}
	got, err := db.PendingOutbox(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Event != "b" {
		t.Errorf("pending %+v, want only b", got)
	}
}

func TestOutboxRerouteAndAttempted(t *testing.T) {
	db := openTest(t, "")
	ctx := context.Background()
	e := testEvent("e1", testTime)
	if err := db.RecordDecision(ctx, e, testTopic); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := db.Attempted(ctx, "e1"); err != nil {
			t.Fatal(err)
		}
	}
	expired := []byte(`{"expired":true,"id":"e1"}`)
	if err := db.Reroute(ctx, "e1", "facegate/front/events/expired", expired); err != nil {
		t.Fatal(err)
	}
	got, err := db.PendingOutbox(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("pending %+v", got)
	}
	o := got[0]
	if o.Topic != "facegate/front/events/expired" || !bytes.Equal(o.Payload, expired) || o.Attempts != 2 || o.Kind != EventUnlock {
		t.Errorf("rerouted entry %+v", o)
	}
	// The audit log keeps the decision as it was made.
	if n := rawCount(t, db, `SELECT count(*) FROM events WHERE id = 'e1' AND payload = ?`, string(e.Payload)); n != 1 {
		t.Error("Reroute changed the event's own payload")
	}

	if err := db.Reroute(ctx, "e1", "a/+/b", expired); !errors.Is(err, ErrInvalid) {
		t.Errorf("Reroute to a wildcard: %v, want ErrInvalid", err)
	}
	if err := db.Reroute(ctx, "e1", testTopic, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("Reroute with no payload: %v, want ErrInvalid", err)
	}
	if err := db.Delivered(ctx, "e1"); err != nil {
		t.Fatal(err)
	}
	err = db.Reroute(ctx, "e1", testTopic, expired)
	checkOneLine(t, err, `"e1"`, "not in the outbox")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("Reroute of a delivered event: %v, want ErrNotFound", err)
	}
	if err := db.Attempted(ctx, "e1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Attempted of a delivered event: %v, want ErrNotFound", err)
	}
}

func TestOutboxSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "facegate.db")
	ctx := context.Background()
	db, err := Open(ctx, path, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := db.RecordDecision(ctx, testEvent(id, testTime), testTopic); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Attempted(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := db.Delivered(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openAt(t, path, "")
	got, err := db.PendingOutbox(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Event != "b" || got[0].Attempts != 1 || got[1].Event != "c" || !got[1].Time.Equal(testTime) {
		t.Errorf("after reopening: %+v", got)
	}
}

// The environment value of helperEnv (crash_test.go) for the outbox helper.
const helperRecord = "record"

// TestOutboxHelperRecord is not a test: TestOutboxKillDuringRecord runs the
// test binary as a child that records decisions and prints each id once
// RecordDecision has returned, until it is killed.
func TestOutboxHelperRecord(t *testing.T) {
	if os.Getenv(helperEnv) != helperRecord {
		t.Skip("helper process for TestOutboxKillDuringRecord")
	}
	ctx := context.Background()
	db, err := Open(ctx, os.Getenv(helperDBEnv), "")
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		id := fmt.Sprintf("e%07d", i)
		if err := db.RecordDecision(ctx, testEvent(id, testTime), testTopic); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		if i%3 == 0 { // deliver some, as a publisher would
			if err := db.Delivered(ctx, id); err != nil {
				fmt.Println("error:", err)
				os.Exit(1)
			}
		}
		if _, err := fmt.Fprintln(os.Stdout, id); err != nil {
			os.Exit(1)
		}
	}
}

// TestOutboxKillDuringRecord kills a process with SIGKILL while it records
// decisions: every decision it reported is there with its outbox row (unless
// delivered), and no event lacks its row or the other way round.
func TestOutboxKillDuringRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	path := filepath.Join(t.TempDir(), "facegate.db")
	child := exec.Command(os.Args[0], "-test.run=^TestOutboxHelperRecord$", "-test.count=1")
	child.Env = append(os.Environ(), helperEnv+"="+helperRecord, helperDBEnv+"="+path)
	child.Stderr = os.Stderr
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var reported []string
	lines := bufio.NewScanner(stdout)
	for len(reported) < 300 && lines.Scan() {
		reported = append(reported, lines.Text())
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
		reported = append(reported, lines.Text())
	}
	err = child.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed: %v (last line %q)", err, reported[len(reported)-1])
	}

	db := openAt(t, path, "")
	var integrity string
	if err := db.ro.QueryRow(`PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check: %s %v", integrity, err)
	}
	for i, id := range reported {
		if n := rawCount(t, db, `SELECT count(*) FROM events WHERE id = ?`, id); n != 1 {
			t.Fatalf("reported event %s is not recorded", id)
		}
		wantRow := 1
		if i%3 == 0 {
			wantRow = 0
		}
		if n := rawCount(t, db, `SELECT count(*) FROM outbox WHERE event = ?`, id); n != wantRow {
			t.Errorf("reported event %s has %d outbox rows, want %d", id, n, wantRow)
		}
	}
	// Atomicity: an event lacks its row only if it was delivered (every
	// third), whatever the kill interrupted.
	if n := rawCount(t, db, `SELECT count(*) FROM events WHERE id NOT IN (SELECT event FROM outbox) AND CAST(substr(id, 2) AS INTEGER) % 3 != 0`); n != 0 {
		t.Errorf("%d undelivered events without their outbox row", n)
	}
	if n := rawCount(t, db, `SELECT count(*) FROM pragma_foreign_key_check`); n != 0 {
		t.Errorf("%d foreign key violations", n)
	}
	t.Logf("killed after %d reported decisions", len(reported))
}

func TestPruneEvents(t *testing.T) {
	db := openTest(t, "")
	ctx := context.Background()
	cutoff := testTime.Add(24 * time.Hour)
	record := func(id string, at time.Time, delivered bool) {
		t.Helper()
		if err := db.RecordDecision(ctx, testEvent(id, at), testTopic); err != nil {
			t.Fatal(err)
		}
		if delivered {
			if err := db.Delivered(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	// More old delivered events than one batch deletes.
	const old = pruneBatch + 100
	for i := range old {
		record(fmt.Sprintf("old%d", i), testTime.Add(time.Duration(i)*time.Second), true)
	}
	record("old-undelivered", testTime, false)
	record("new", cutoff.Add(time.Second), true)
	// 2 s after the cutoff in UTC, though its local clock reads earlier.
	record("new-east", cutoff.Add(2*time.Second).In(time.FixedZone("UTC+5", 5*3600)), true)
	remaining := func() []string {
		t.Helper()
		events, err := db.Events(ctx, EventQuery{Limit: 10 * old})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range events {
			ids = append(ids, e.ID)
		}
		slices.Sort(ids)
		return ids
	}
	n, err := db.PruneEvents(ctx, cutoff)
	if err != nil || n != old {
		t.Fatalf("pruned %d (%v), want %d", n, err, old)
	}
	if got := fmt.Sprint(remaining()); got != "[new new-east old-undelivered]" {
		t.Errorf("left %s, want the new events and the undelivered old one", got)
	}
	if pending, _ := db.OutboxDepth(ctx); pending != 1 {
		t.Errorf("outbox depth %d after pruning, want 1", pending)
	}
	if err := db.Delivered(ctx, "old-undelivered"); err != nil {
		t.Fatal(err)
	}
	if n, err := db.PruneEvents(ctx, cutoff); err != nil || n != 1 {
		t.Errorf("after delivery: pruned %d (%v), want 1", n, err)
	}
	if n, err := db.PruneEvents(ctx, cutoff); err != nil || n != 0 {
		t.Errorf("again: pruned %d (%v), want 0", n, err)
	}
}

func TestEvents(t *testing.T) {
	db := openTest(t, "")
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	rec := func(id string, at time.Time, person, kind string, delivered bool) {
		t.Helper()
		e := testEvent(id, at)
		e.Person, e.Kind = person, kind
		if kind == EventDeny {
			e.Reason = "unknown"
		}
		if err := db.RecordDecision(ctx, e, testTopic); err != nil {
			t.Fatal(err)
		}
		if delivered {
			if err := db.Delivered(ctx, e.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Written out of time order; a and b fall within one second, and a
	// has no fraction at all, so its stored text sorts after b's.
	rec("c", t0.Add(2*time.Hour), "bob", EventUnlock, true)
	rec("b", t0.Add(500*time.Millisecond), "alice", EventUnlock, true)
	rec("a", t0, "alice", EventUnlock, true)
	rec("d", t0.Add(3*time.Hour).In(time.FixedZone("UTC-4", -4*3600)), "", EventDeny, false)
	rec("e", t0.Add(-time.Hour), "alice", EventUnlock, true)
	for _, c := range []struct {
		name string
		q    EventQuery
		want string
	}{
		{"all, oldest first", EventQuery{Limit: 10}, "[e a b c d]"},
		{"the newest 2", EventQuery{Limit: 2}, "[c d]"},
		{"alice", EventQuery{Person: "alice", Limit: 10}, "[e a b]"},
		{"denies", EventQuery{Kind: EventDeny, Limit: 10}, "[d]"},
		{"since, exact below the second", EventQuery{Since: t0.Add(300 * time.Millisecond), Limit: 10}, "[b c d]"},
		{"since, inclusive", EventQuery{Since: t0, Limit: 10}, "[a b c d]"},
		{"until, inclusive", EventQuery{Until: t0, Limit: 10}, "[e a]"},
		{"until, exact below the second", EventQuery{Until: t0.Add(499 * time.Millisecond), Limit: 10}, "[e a]"},
		{"window", EventQuery{Since: t0, Until: t0.Add(2 * time.Hour), Limit: 10}, "[a b c]"},
		{"other door", EventQuery{Door: "back", Limit: 10}, "[]"},
	} {
		got, err := db.Events(ctx, c.q)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var ids []string
		for _, e := range got {
			ids = append(ids, e.ID)
		}
		if fmt.Sprint(ids) != c.want {
			t.Errorf("%s: %v, want %s", c.name, ids, c.want)
		}
	}
	all, _ := db.Events(ctx, EventQuery{Limit: 10})
	for _, e := range all {
		if e.Pending != (e.ID == "d") {
			t.Errorf("event %s: pending %v", e.ID, e.Pending)
		}
		if e.ID == "d" && (e.Kind != EventDeny || e.Reason != "unknown" || e.Person != "" || !e.Time.Equal(t0.Add(3*time.Hour)) || e.Frames != 3 || string(e.Payload) != `{"id":"d"}`) {
			t.Errorf("event d read back as %+v", e)
		}
	}
	if _, err := db.Events(ctx, EventQuery{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("limit 0: %v, want ErrInvalid", err)
	}
}
