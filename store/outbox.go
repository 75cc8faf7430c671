package store

// The daemon's decisions and their outbox.
//
// Every decision is recorded as an event and, in the same transaction, an
// outbox row holding the exact message to publish for it. A publisher reads
// the outbox oldest first and deletes a row only once the broker has
// acknowledged its message, so a decision survives broker outages and
// crashes of the daemon (SIGKILL, power loss within the limits of
// synchronous=NORMAL) until it is delivered. The events table keeps every
// decision after delivery, as the door's audit log, until PruneEvents
// removes it.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mattn/go-sqlite3"
)

// Limits on what an event or outbox row may hold.
const (
	MaxEventPayloadBytes = 64 << 10 // of an event's message
	MaxTopicBytes        = 65535    // of a topic (MQTT's own limit)
)

// Event kinds, as the events table allows them.
const (
	EventUnlock = "unlock"
	EventDeny   = "deny"
)

// Event is one decision of the daemon: its fields, for queries of the audit
// log, and Payload, the message published for it, byte for byte.
type Event struct {
	ID                      string // unique
	Time                    time.Time
	Door, Kind              string // Kind is EventUnlock or EventDeny
	Person, Reason          string // "" when none
	Score, Margin, Liveness float32
	Frames                  int
	Payload                 []byte
}

// OutboxEntry is an event's message not yet acknowledged by the broker.
type OutboxEntry struct {
	Event    string    // the event's id
	Kind     string    // the event's kind: EventUnlock or EventDeny
	Time     time.Time // the event's time (events.time), by which a publisher ages unlocks
	Topic    string
	Payload  []byte
	Created  time.Time // when the row was written
	Attempts int       // publishes tried so far
}

// RecordDecision writes the event and its outbox row, to be published on
// topic, in one transaction: on any error nothing is written. An event id
// already recorded, or fields that cannot be stored, fail with ErrInvalid.
func (db *DB) RecordDecision(ctx context.Context, e Event, topic string) error {
	op := fmt.Sprintf("record event %q", e.ID)
	if err := checkEvent(e); err != nil {
		return &kindError{ErrInvalid, fmt.Sprintf("%s in %s: %v", op, db.path, err), err}
	}
	if err := checkTopic(topic); err != nil {
		return &kindError{ErrInvalid, fmt.Sprintf("%s in %s: %v", op, db.path, err), err}
	}
	tx, err := db.rw.BeginTx(ctx, nil)
	if err != nil {
		return db.sqlError(op, err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, `INSERT INTO events (id, time, door, kind, person, score, margin, liveness, frames, reason, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, formatTime(e.Time), e.Door, e.Kind, nullString(e.Person), float64(e.Score), float64(e.Margin), float64(e.Liveness), e.Frames, nullString(e.Reason), string(e.Payload))
	if isPrimaryKeyConflict(err) {
		return &kindError{ErrInvalid, fmt.Sprintf("%s in %s: an event with this id is already recorded", op, db.path), err}
	}
	if err != nil {
		return db.sqlError(op, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (event, topic, payload, created, attempts) VALUES (?, ?, ?, ?, 0)`,
		e.ID, topic, e.Payload, formatTime(time.Now())); err != nil {
		return db.sqlError(op, err)
	}
	if err := tx.Commit(); err != nil {
		return db.sqlError(op, err)
	}
	return nil
}

// OutboxTriesInOrder is how many publishes of a row are tried in order:
// a row tried this often without an acknowledgement (one the broker keeps
// refusing, say) goes behind every other, so that it cannot hold back the
// decisions written after it.
const OutboxTriesInOrder = 5

// PendingOutbox returns up to limit outbox rows, oldest (first written)
// first, except that rows tried OutboxTriesInOrder times or more come
// after all the others (in their own written order).
func (db *DB) PendingOutbox(ctx context.Context, limit int) ([]OutboxEntry, error) {
	const op = "read outbox"
	if limit < 1 {
		return nil, newError(ErrInvalid, "%s of %s: limit %d is less than 1", op, db.path, limit)
	}
	// The rowid orders rows as they were written: SQLite gives a new row one
	// more than the largest rowid in the table, so a row written later always
	// has a larger rowid than every row still present.
	rows, err := db.ro.QueryContext(ctx, `SELECT o.event, e.kind, e.time, o.topic, o.payload, o.created, o.attempts
		FROM outbox o JOIN events e ON e.id = o.event
		ORDER BY o.attempts >= ?, o.rowid LIMIT ?`, OutboxTriesInOrder, limit)
	if err != nil {
		return nil, db.sqlError(op, err)
	}
	defer rows.Close()
	var entries []OutboxEntry
	for rows.Next() {
		var o OutboxEntry
		var eventTime, created string
		if err := rows.Scan(&o.Event, &o.Kind, &eventTime, &o.Topic, &o.Payload, &created, &o.Attempts); err != nil {
			return nil, db.sqlError(op, err)
		}
		if o.Time, err = parseTime(eventTime); err != nil {
			return nil, fmt.Errorf("%s of %s: event %q: time: %w", op, db.path, o.Event, err)
		}
		if o.Created, err = parseTime(created); err != nil {
			return nil, fmt.Errorf("%s of %s: event %q: created: %w", op, db.path, o.Event, err)
		}
		entries = append(entries, o)
	}
	if err := rows.Err(); err != nil {
		return nil, db.sqlError(op, err)
	}
	return entries, nil
}

// OutboxDepth is the number of messages not yet delivered.
func (db *DB) OutboxDepth(ctx context.Context) (int, error) {
	var n int
	if err := db.ro.QueryRowContext(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		return 0, db.sqlError("count outbox", err)
	}
	return n, nil
}

// Delivered deletes the event's outbox row, once the broker has
// acknowledged its message. The event stays in the audit log. Deleting a row
// that is not there is not an error: a delivery is recorded at most once
// however often it is reported.
func (db *DB) Delivered(ctx context.Context, event string) error {
	if _, err := db.rw.ExecContext(ctx, `DELETE FROM outbox WHERE event = ?`, event); err != nil {
		return db.sqlError(fmt.Sprintf("mark event %q delivered", event), err)
	}
	return nil
}

// Reroute rewrites a pending row's topic and message, for an unlock that aged
// out before it could be delivered and must now go out as an expired audit
// event. The event's own record (its payload in the audit log) is left as
// decided. ErrNotFound if the row is not pending.
func (db *DB) Reroute(ctx context.Context, event, topic string, payload []byte) error {
	op := fmt.Sprintf("reroute event %q", event)
	if err := checkTopic(topic); err != nil {
		return &kindError{ErrInvalid, fmt.Sprintf("%s in %s: %v", op, db.path, err), err}
	}
	if err := checkPayload(payload); err != nil {
		return &kindError{ErrInvalid, fmt.Sprintf("%s in %s: %v", op, db.path, err), err}
	}
	res, err := db.rw.ExecContext(ctx, `UPDATE outbox SET topic = ?, payload = ? WHERE event = ?`, topic, payload, event)
	if err != nil {
		return db.sqlError(op, err)
	}
	return db.onePending(op, event, res)
}

// Attempted counts one more attempt to publish the event's message.
// ErrNotFound if the row is not pending.
func (db *DB) Attempted(ctx context.Context, event string) error {
	op := fmt.Sprintf("count an attempt for event %q", event)
	res, err := db.rw.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1 WHERE event = ?`, event)
	if err != nil {
		return db.sqlError(op, err)
	}
	return db.onePending(op, event, res)
}

func (db *DB) onePending(op, event string, res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return db.sqlError(op, err)
	}
	if n == 0 {
		return newError(ErrNotFound, "%s: event %q is not in the outbox of %s", op, event, db.path)
	}
	return nil
}

// checkEvent says what is wrong with an event's fields, naming the field.
func checkEvent(e Event) error {
	if err := checkText("id", e.ID, MaxIDBytes); err != nil {
		return err
	}
	if e.Time.IsZero() {
		return errors.New("time is not set")
	}
	if err := checkText("door", e.Door, MaxIDBytes); err != nil {
		return err
	}
	if e.Kind != EventUnlock && e.Kind != EventDeny {
		return fmt.Errorf("kind %q is neither %q nor %q", e.Kind, EventUnlock, EventDeny)
	}
	if e.Person != "" {
		if err := checkText("person", e.Person, MaxIDBytes); err != nil {
			return err
		}
	}
	if len(e.Reason) > MaxNameBytes || !utf8.ValidString(e.Reason) {
		return fmt.Errorf("reason is not UTF-8 text of at most %d bytes", MaxNameBytes)
	}
	for _, f := range []struct {
		name string
		v    float32
	}{{"score", e.Score}, {"margin", e.Margin}, {"liveness", e.Liveness}} {
		if v := float64(f.v); math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%s is %v", f.name, f.v)
		}
	}
	if e.Frames < 0 {
		return fmt.Errorf("frames is %d", e.Frames)
	}
	return checkPayload(e.Payload)
}

func checkPayload(p []byte) error {
	switch {
	case len(p) == 0:
		return errors.New("payload is empty")
	case len(p) > MaxEventPayloadBytes:
		return fmt.Errorf("payload has %d bytes, more than %d", len(p), MaxEventPayloadBytes)
	case !utf8.Valid(p):
		// events.payload is TEXT.
		return errors.New("payload is not UTF-8")
	}
	return nil
}

// checkTopic refuses a topic no broker would accept for a publish.
func checkTopic(topic string) error {
	switch {
	case topic == "":
		return errors.New("topic is empty")
	case len(topic) > MaxTopicBytes:
		return fmt.Errorf("topic is longer than %d bytes", MaxTopicBytes)
	case !utf8.ValidString(topic):
		return errors.New("topic is not UTF-8")
	case strings.ContainsAny(topic, "+#\x00"):
		return fmt.Errorf("topic %q holds a wildcard or NUL", topic)
	}
	return nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func isPrimaryKeyConflict(err error) bool {
	var e sqlite3.Error
	return errors.As(err, &e) && e.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
}
