package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/facegate/facegate/camera"
	"github.com/facegate/facegate/daemon"
	"github.com/facegate/facegate/detect"
	"github.com/facegate/facegate/store"
	"github.com/facegate/facegate/verify"
)

// EnrollCommand adds a person and their templates to the gallery.
type EnrollCommand struct {
	stdout, stderr io.Writer
}

const enrollUsage = `Usage: facegate enroll --db DB --id ID --name NAME [flags] PHOTO...

Enrolls one person from one or more photos: each photo must show exactly one
face that passes the quality gates (size, sharpness, light, pose). Each
photo gives one template; the photos themselves are not kept, only their
sha256. It is all or nothing: if any photo is refused, nothing is written
and each refusal is explained. Enrolling an existing id adds templates;
--replace replaces them. A warning is printed when the new face is already
close to another enrolled person (a duplicate, or a twin the door could mix
up).

Examples:

	facegate enroll --db /var/lib/facegate/facegate.db --id e1042 --name "Ada Lovelace" ada.jpg
	facegate enroll --db gallery.db --id e1042 --name "Ada Lovelace" --replace new1.jpg new2.jpg
`

func (c *EnrollCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	var mf modelFlags
	mf.register(fs)
	var dbf dbFlag
	dbf.register(fs)
	id := fs.String("id", "", "the person's id (badge or employee number); required")
	name := fs.String("name", "", "the person's name; required")
	replace := fs.Bool("replace", false, "replace the person's templates instead of adding to them")
	validFrom := fs.String("valid-from", "", "first day the person may enter, YYYY-MM-DD (default: now)")
	validUntil := fs.String("valid-until", "", "last day the person may enter, YYYY-MM-DD (default: no end)")
	maxPixels := maxPixelsFlag(fs)
	if err := parseFlags(fs, args, c.stderr, enrollUsage); err != nil {
		return err
	}
	if err := checkMaxPixels(*maxPixels); err != nil {
		return err
	}
	switch {
	case strings.TrimSpace(*id) == "":
		return usagef("--id is required")
	case strings.TrimSpace(*name) == "":
		return usagef("--name is required")
	case fs.NArg() == 0:
		return usagef("no photo given (facegate enroll --id ID --name NAME PHOTO...)")
	}
	person := store.Person{ID: *id, Name: *name, Active: true}
	var err error
	if person.ValidFrom, err = parseDay("--valid-from", *validFrom, false); err != nil {
		return err
	}
	if person.ValidUntil, err = parseDay("--valid-until", *validUntil, true); err != nil {
		return err
	}
	if !person.ValidFrom.IsZero() && !person.ValidUntil.IsZero() && person.ValidUntil.Before(person.ValidFrom) {
		return usagef("--valid-until %s is before --valid-from %s", *validUntil, *validFrom)
	}

	p, db, closeAll, err := openWithDB(ctx, &mf, &dbf)
	if err != nil {
		return err
	}
	defer closeAll()

	ts, refusals := enrollmentTemplates(p, fs.Args(), *maxPixels)
	for _, r := range refusals {
		fmt.Fprintf(c.stderr, "refused %s\n", r)
	}
	if len(refusals) > 0 {
		return fmt.Errorf("%s not enrolled: %d of %d photos refused, nothing written", *id, len(refusals), fs.NArg())
	}
	if err := warnLookalikes(ctx, c.stderr, db, p.EncoderID(), *id, ts); err != nil {
		return err
	}
	if err := db.Enroll(ctx, person, ts, *replace); err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "enrolled %s (%s) with %d template(s)\n", *id, *name, len(ts))
	return nil
}

// enrollmentTemplates turns photos into templates, and lists each photo it
// refuses with the reason.
func enrollmentTemplates(p *verify.Pipeline, photos []string, maxPixels int) ([]store.Template, []string) {
	var ts []store.Template
	var refusals []string
	for _, path := range photos {
		t, err := photoTemplate(p, path, maxPixels)
		if err != nil {
			refusals = append(refusals, err.Error())
			continue
		}
		ts = append(ts, t)
	}
	return ts, refusals
}

func photoTemplate(p *verify.Pipeline, path string, maxPixels int) (store.Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return store.Template{}, fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	img, err := camera.DecodeImage(path, data, maxPixels)
	if err != nil {
		return store.Template{}, err
	}
	defer img.Close()
	e, q, err := p.EnrollmentEmbedding(img, detect.DefaultGates())
	if err != nil {
		return store.Template{}, fmt.Errorf("%s: %w", path, err)
	}
	sum := sha256.Sum256(data)
	return store.Template{
		Model: e.Model, ModelName: "fr_feature.onnx", Vector: e.Vector,
		Quality: q.Sharpness, SourceSHA256: hex.EncodeToString(sum[:]),
	}, nil
}

// warnLookalikes warns when a new template already matches another person
// at the door's threshold: a duplicate enrollment, or two people the door
// could mistake for each other.
func warnLookalikes(ctx context.Context, w io.Writer, db *store.DB, model, id string, ts []store.Template) error {
	if len(ts) == 0 {
		return nil
	}
	roster, err := daemon.LoadRoster(ctx, db, model, len(ts[0].Vector))
	if err != nil {
		return err
	}
	g := roster.Gallery
	if g.Len() == 0 {
		return nil
	}
	bar := roster.Scoring.ThresholdOr(verify.IdentifyThreshold)
	query := make([]float32, roster.QueryLen())
	for _, t := range ts {
		m, err := roster.Search(verify.Embedding{Model: model, Vector: t.Vector}, query)
		if err != nil {
			return err
		}
		for _, k := range []struct {
			i int
			s float32
		}{{m.Person, m.Score}, {m.RunnerUp, m.RunnerUpScore}} {
			if k.i < 0 || k.s < bar {
				continue
			}
			if other, name := g.Person(k.i); other != id {
				fmt.Fprintf(w, "warning: %s looks like %s (%s), score %.2f at threshold %.2f: a duplicate, or people the door could mix up\n",
					id, other, name, k.s, bar)
			}
		}
	}
	return nil
}

// parseDay reads YYYY-MM-DD in local time; end means the end of that day.
func parseDay(flagName, s string, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	d, err := time.ParseInLocation(time.DateOnly, s, time.Local)
	if err != nil {
		return time.Time{}, usagef("%s %q: want a date YYYY-MM-DD", flagName, s)
	}
	if end {
		d = d.AddDate(0, 0, 1).Add(-time.Nanosecond)
	}
	return d, nil
}
