package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/facegate/facegate/store"
)

// EventsCommand prints the audit log kept in the database.
type EventsCommand struct {
	stdout, stderr io.Writer
	now            func() time.Time // for tests; time.Now when nil
}

const eventsUsage = `Usage: facegate events --db DB [flags]

Prints the door's audit log: the decisions recorded in the database, oldest
first, one line each as facegate watch prints them, or with --json the
payloads as they were published, one per line. It prints the newest --limit
that match. A decision whose message still waits for the broker is marked
PENDING. The door deletes decisions older than events_keep (90 days).

--since and --until take a date (YYYY-MM-DD, local time: from the start of
the day, until its end), an RFC 3339 time, or for --since a duration back
from now (24h, 90m).

Examples:

	facegate events --db /var/lib/facegate/facegate.db --since 24h
	facegate events --db door.db --person m001 --kind unlock --since 2026-11-01 --until 2026-11-30
	facegate events --db door.db --json --limit 10000 | jq -r 'select(.kind == "deny") | .reason'
`

func (c *EventsCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	var dbf dbFlag
	dbf.register(fs)
	since := fs.String("since", "", "only decisions at or after this: a date, an RFC 3339 time or a duration back from now")
	until := fs.String("until", "", "only decisions at or before this: a date (to its end) or an RFC 3339 time")
	door := fs.String("door", "", "only this door's decisions")
	person := fs.String("person", "", "only decisions naming this person id")
	kind := fs.String("kind", "", "only unlock or deny decisions")
	limit := fs.Int("limit", 100, "print the newest this many that match")
	asJSON := fs.Bool("json", false, "print the published payloads, one JSON object per line")
	if err := parseFlags(fs, args, c.stderr, eventsUsage); err != nil {
		return err
	}
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	q := store.EventQuery{Door: *door, Person: *person, Kind: *kind, Limit: *limit}
	var err error
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected argument %q", fs.Arg(0))
	case *limit < 1:
		return usagef("--limit %d: must be at least 1", *limit)
	case *kind != "" && *kind != store.EventUnlock && *kind != store.EventDeny:
		return usagef("--kind %q: want unlock or deny", *kind)
	}
	if q.Since, err = parseWhen("--since", *since, false, now()); err != nil {
		return err
	}
	if q.Until, err = parseWhen("--until", *until, true, now()); err != nil {
		return err
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return usagef("--until %s is before --since %s", *until, *since)
	}
	if dbf.path != "" {
		if _, err := os.Stat(dbf.path); err != nil {
			return fmt.Errorf("--db %s: no such database", dbf.path)
		}
	}
	db, err := dbf.open(ctx, "")
	if err != nil {
		return err
	}
	defer db.Close()
	events, err := db.Events(ctx, q)
	if err != nil {
		return err
	}
	for _, e := range events {
		line := string(e.Payload)
		if !*asJSON {
			line = describeEvent("event "+e.ID, e.Payload)
			if e.Pending {
				line += "  PENDING"
			}
		}
		if _, err := fmt.Fprintln(c.stdout, line); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.stderr, "%d decisions\n", len(events))
	return nil
}

// parseWhen reads a --since or --until value: a date (its start, or its
// end when end is set), an RFC 3339 time, or (not for end) a duration
// back from now. "" is no bound.
func parseWhen(flagName, s string, end bool, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if !end {
		if d, err := time.ParseDuration(s); err == nil && d >= 0 {
			return now.Add(-d), nil
		}
	}
	if strings.Count(s, "-") == 2 && len(s) == len(time.DateOnly) {
		return parseDay(flagName, s, end)
	}
	want := "a date YYYY-MM-DD or an RFC 3339 time"
	if !end {
		want += ", or a duration such as 24h"
	}
	return time.Time{}, usagef("%s %q: want %s", flagName, s, want)
}
