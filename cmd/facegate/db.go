package main

import (
	"context"
	"flag"
	"os"

	"github.com/facegate/facegate/store"
	"github.com/facegate/facegate/verify"
)

// dbFlag is the --db flag the gallery commands share.
type dbFlag struct{ path string }

func (f *dbFlag) register(fs *flag.FlagSet) {
	fs.StringVar(&f.path, "db", os.Getenv("FACEGATE_DB"), "the gallery database, created if absent (env FACEGATE_DB)")
}

// openWithDB loads the models and then opens the database for their
// encoder: the start of every command that embeds faces into the gallery.
// close releases all three.
func openWithDB(ctx context.Context, mf *modelFlags, dbf *dbFlag) (p *verify.Pipeline, db *store.DB, close func(), err error) {
	rt, p, err := mf.open()
	if err != nil {
		return nil, nil, nil, err
	}
	db, err = dbf.open(ctx, p.EncoderID())
	if err != nil {
		p.Close()
		rt.Close()
		return nil, nil, nil, err
	}
	return p, db, func() { db.Close(); p.Close(); rt.Close() }, nil
}

// open opens the database for an encoder identity ("" for commands that do
// not embed faces).
func (f *dbFlag) open(ctx context.Context, model string) (*store.DB, error) {
	if f.path == "" {
		return nil, usagef("no database: give --db FILE or set FACEGATE_DB")
	}
	return store.Open(ctx, f.path, model)
}

// openForEncoder opens the database for the encoder the model flags name,
// without loading the models: for commands that work on stored templates.
func (f *dbFlag) openForEncoder(ctx context.Context, mf *modelFlags) (db *store.DB, model string, err error) {
	if model, err = mf.encoderID(); err != nil {
		return nil, "", err
	}
	db, err = f.open(ctx, model)
	return db, model, err
}
