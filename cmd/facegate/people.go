package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// PeopleCommand lists the enrolled people.
type PeopleCommand struct {
	stdout, stderr io.Writer
}

const peopleUsage = `Usage: facegate people --db DB [--json]

Lists the enrolled people: id, name, whether active, validity window, number
of templates, and when enrolled.

Examples:

	facegate people --db /var/lib/facegate/facegate.db
	facegate people --db gallery.db --json | jq -r .id
`

func (c *PeopleCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("people", flag.ContinueOnError)
	var dbf dbFlag
	dbf.register(fs)
	asJSON := fs.Bool("json", false, "one JSON line per person")
	if err := parseFlags(fs, args, c.stderr, peopleUsage); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	db, err := dbf.open(ctx, "")
	if err != nil {
		return err
	}
	defer db.Close()
	people, err := db.People(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		for _, p := range people {
			if err := enc.Encode(map[string]any{
				"id": p.ID, "name": p.Name, "active": p.Active, "valid_from": day(p.ValidFrom),
				"valid_until": day(p.ValidUntil), "templates": p.Templates, "created": p.Created.Format(time.RFC3339),
			}); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tACTIVE\tVALID FROM\tVALID UNTIL\tTEMPLATES\tENROLLED")
	for _, p := range people {
		fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\t%d\t%s\n", p.ID, p.Name, p.Active, orDash(day(p.ValidFrom)), orDash(day(p.ValidUntil)),
			p.Templates, p.Created.Local().Format("2006-01-02 15:04"))
	}
	tw.Flush()
	fmt.Fprintf(c.stderr, "%d people\n", len(people))
	return nil
}

func day(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format(time.DateOnly)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
