package store

// The audit log: the events table, read and pruned.

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrationEventsTime (schema version 3) indexes events by time, for
// PruneEvents.
const migrationEventsTime = `CREATE INDEX events_time ON events(time);`

// pruneBatch bounds the rows one PruneEvents transaction deletes, so that
// the daemon's own writes wait at most one short batch.
const pruneBatch = 1000

// PruneEvents deletes the events older than before, except those whose
// message is still in the outbox: an undelivered decision is never lost to
// retention. It deletes in short transactions and returns how many it
// deleted. Times compare as stored text, so events within the second of
// before may fall either side.
func (db *DB) PruneEvents(ctx context.Context, before time.Time) (int64, error) {
	const op = "prune events"
	cutoff := before.UTC().Truncate(time.Second).Format(time.RFC3339)
	var total int64
	for {
		res, err := db.rw.ExecContext(ctx, `DELETE FROM events WHERE rowid IN (
			SELECT rowid FROM events WHERE time < ? AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.event = events.id) LIMIT ?)`,
			cutoff, pruneBatch)
		if err != nil {
			return total, db.sqlError(op, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, db.sqlError(op, err)
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}

// EventQuery selects events of the audit log. Zero fields select all.
type EventQuery struct {
	Since, Until       time.Time // both inclusive
	Door, Person, Kind string
	Limit              int // the newest Limit events that match; at least 1
}

// LoggedEvent is an event as the audit log holds it.
type LoggedEvent struct {
	Event
	Pending bool // its message still waits in the outbox for the broker
}

// Events returns the newest q.Limit events that match q, oldest first.
func (db *DB) Events(ctx context.Context, q EventQuery) ([]LoggedEvent, error) {
	const op = "read events"
	if q.Limit < 1 {
		return nil, newError(ErrInvalid, "%s of %s: limit %d is less than 1", op, db.path, q.Limit)
	}
	// Stored times are RFC 3339 text with trimmed fractions, which sorts
	// right only to the second: select by whole seconds, widened by one
	// (the index on time serves that), judge each time exactly, and order
	// by julianday (to the millisecond, as events are published).
	where, args := "1", []any{}
	if !q.Since.IsZero() {
		where += " AND time >= ?"
		args = append(args, q.Since.UTC().Truncate(time.Second).Add(-time.Second).Format(time.RFC3339))
	}
	if !q.Until.IsZero() {
		where += " AND time <= ?"
		args = append(args, q.Until.UTC().Truncate(time.Second).Add(2*time.Second).Format(time.RFC3339))
	}
	for _, f := range []struct{ col, v string }{{"door", q.Door}, {"person", q.Person}, {"kind", q.Kind}} {
		if f.v != "" {
			where += " AND " + f.col + " = ?"
			args = append(args, f.v)
		}
	}
	rows, err := db.ro.QueryContext(ctx, `SELECT id, time, door, kind, person, score, margin, liveness, frames, reason, payload,
			EXISTS (SELECT 1 FROM outbox WHERE outbox.event = events.id)
		FROM events WHERE `+where+` ORDER BY julianday(time) DESC, rowid DESC`, args...)
	if err != nil {
		return nil, db.sqlError(op, err)
	}
	defer rows.Close()
	var out []LoggedEvent
	for rows.Next() && len(out) < q.Limit {
		var e LoggedEvent
		var at, payload string
		var person, reason sql.NullString
		var score, margin, liveness sql.NullFloat64
		var frames sql.NullInt64
		if err := rows.Scan(&e.ID, &at, &e.Door, &e.Kind, &person, &score, &margin, &liveness, &frames, &reason, &payload, &e.Pending); err != nil {
			return nil, db.sqlError(op, err)
		}
		if e.Time, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("%s of %s: event %q: time: %w", op, db.path, e.ID, err)
		}
		if !q.Since.IsZero() && e.Time.Before(q.Since) || !q.Until.IsZero() && e.Time.After(q.Until) {
			continue
		}
		e.Person, e.Reason, e.Payload = person.String, reason.String, []byte(payload)
		e.Score, e.Margin, e.Liveness, e.Frames = float32(score.Float64), float32(margin.Float64), float32(liveness.Float64), int(frames.Int64)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, db.sqlError(op, err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
