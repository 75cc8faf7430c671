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

// open opens the database for an encoder identity ("" for commands that do
// not embed faces).
func (f *dbFlag) open(ctx context.Context, model string) (*store.DB, error) {
	if f.path == "" {
		return nil, usagef("no database: give --db FILE or set FACEGATE_DB")
	}
	return store.Open(ctx, f.path, model)
}

// loadGallery reads every template of model into a searchable gallery, in
// one consistent snapshot of the store. A person with several templates is
// searched by their mean: on LFW it let fewer strangers in than best-of at
// the same threshold, for as many enrolled people recognised (README).
func loadGallery(ctx context.Context, db *store.DB, model string, dim int) (*verify.Gallery, []store.Person, error) {
	version, people, templates, err := db.Gallery(ctx, model)
	if err != nil {
		return nil, nil, err
	}
	enrolled := make([]verify.Enrolled, len(people))
	index := make(map[string]int, len(people))
	for i, p := range people {
		enrolled[i] = verify.Enrolled{ID: p.ID, Name: p.Name}
		index[p.ID] = i
	}
	for _, t := range templates {
		i := index[t.Person]
		enrolled[i].Templates = append(enrolled[i].Templates, t.Vector)
	}
	g, err := verify.NewGallery(model, dim, enrolled, verify.MeanTemplate, version)
	return g, people, err
}
