package main

import (
	"context"
	"flag"
	"fmt"
	"io"
)

// RemoveCommand deletes a person and their templates.
type RemoveCommand struct {
	stdout, stderr io.Writer
}

const removeUsage = `Usage: facegate remove --db DB ID...

Deletes each person and all their templates. A running door picks the
change up without a restart.

Example:

	facegate remove --db /var/lib/facegate/facegate.db e1042
`

func (c *RemoveCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("remove", flag.ContinueOnError)
	var dbf dbFlag
	dbf.register(fs)
	if err := parseFlags(fs, args, c.stderr, removeUsage); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("no id given (facegate remove ID...)")
	}
	db, err := dbf.open(ctx, "")
	if err != nil {
		return err
	}
	defer db.Close()
	for _, id := range fs.Args() {
		if err := db.Remove(ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "removed %s\n", id)
	}
	return nil
}
