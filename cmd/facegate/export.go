package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ExportCommand writes the gallery's templates to a portable file.
type ExportCommand struct {
	stdout, stderr io.Writer
}

const exportUsage = `Usage: facegate export --db DB [flags] FILE

Writes every enrolled person and their templates (no photos: the photos were
never kept) to FILE, so another door with the same encoder can be loaded
with facegate import FILE. The file is written whole or not at all.

Example:

	facegate export --db /var/lib/facegate/facegate.db front-door-templates.json
`

func (c *ExportCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	var mf modelFlags
	mf.register(fs)
	var dbf dbFlag
	dbf.register(fs)
	if err := parseFlags(fs, args, c.stderr, exportUsage); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one output file, got %d arguments", fs.NArg())
	}
	out := fs.Arg(0)
	db, model, err := dbf.openForEncoder(ctx, &mf)
	if err != nil {
		return err
	}
	defer db.Close()
	// Write beside the target and rename, so a failure leaves no half file.
	tmp, err := os.CreateTemp(filepath.Dir(out), filepath.Base(out)+".*.tmp")
	if err != nil {
		return fmt.Errorf("%s: %w", out, unwrapPath(err))
	}
	defer os.Remove(tmp.Name())
	people, templates, err := db.Export(ctx, tmp, model)
	if err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("%s: %w", out, unwrapPath(err))
	}
	fmt.Fprintf(c.stderr, "exported %d people, %d templates to %s\n", people, templates, out)
	return nil
}
