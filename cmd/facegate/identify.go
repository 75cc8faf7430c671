package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/facegate/facegate/daemon"
	"github.com/facegate/facegate/verify"
)

// IdentifyCommand says who is in a photo.
type IdentifyCommand struct {
	stdout, stderr io.Writer
}

const identifyUsage = `Usage: facegate identify --db DB [flags] PHOTO...

Searches the gallery for the largest face of each photo: the best person,
their score, the runner-up, and whether the face is known: score at or above
the threshold and ahead of the runner-up by the margin, as the door decides.
Faces are scored as the door scores them: with the active head (facegate
heads) at its door threshold, or by plain cosine at 0.55.

Examples:

	facegate identify --db /var/lib/facegate/facegate.db visitor.jpg
	facegate identify --db gallery.db --json *.jpg
`

type identifyJSON struct {
	File      string      `json:"file"`
	Person    *personJSON `json:"person"`
	Score     float32     `json:"score"`
	RunnerUp  *runnerJSON `json:"runner_up"`
	Known     bool        `json:"known"`
	Head      string      `json:"head,omitempty"`
	Threshold float32     `json:"threshold"`
	Error     string      `json:"error,omitempty"`
}

type personJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type runnerJSON struct {
	ID    string  `json:"id"`
	Score float32 `json:"score"`
}

func (c *IdentifyCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("identify", flag.ContinueOnError)
	var mf modelFlags
	mf.register(fs)
	var dbf dbFlag
	dbf.register(fs)
	asJSON := fs.Bool("json", false, "one JSON line per photo")
	threshold := fs.Float64("threshold", 0, "score a known face needs (default: the active head's door threshold, else 0.55, the plain cosine 1:N threshold; see README)")
	margin := fs.Float64("margin", 0.05, "how far a known face must lead the runner-up person")
	maxPixels := maxPixelsFlag(fs)
	if err := parseFlags(fs, args, c.stderr, identifyUsage); err != nil {
		return err
	}
	if err := checkMaxPixels(*maxPixels); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("no photo given (facegate identify PHOTO...)")
	}
	p, db, closeAll, err := openWithDB(ctx, &mf, &dbf)
	if err != nil {
		return err
	}
	defer closeAll()
	roster, err := daemon.LoadRoster(ctx, db, p.EncoderID(), p.Dim())
	if err != nil {
		return err
	}
	g := roster.Gallery
	if g.Len() == 0 {
		return fmt.Errorf("%s: nobody is enrolled (facegate enroll)", dbf.path)
	}
	for _, w := range roster.Scoring.Warnings {
		fmt.Fprintf(c.stderr, "warning: %s\n", w)
	}
	bar := float32(*threshold)
	if bar == 0 {
		bar = roster.Scoring.ThresholdOr(verify.IdentifyThreshold)
	}
	if s := roster.Scoring; s.Head != "" {
		fmt.Fprintf(c.stderr, "scoring with head %q (%s) at threshold %.4g\n", s.Head, s.Method, bar)
	}
	query := make([]float32, roster.QueryLen())

	failed := 0
	enc := json.NewEncoder(c.stdout)
	for _, path := range fs.Args() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		out := identifyJSON{File: path, Head: roster.Scoring.Head, Threshold: bar}
		e, _, err := embedPhoto(p, path, verify.Largest, *maxPixels)
		var m verify.Match
		if err == nil {
			m, err = roster.Search(e, query)
		}
		if err != nil {
			failed++
			fmt.Fprintf(c.stderr, "facegate identify: %v\n", err)
			out.Error = err.Error()
		} else {
			id, name := g.Person(m.Person)
			out.Person, out.Score = &personJSON{id, name}, m.Score
			if m.RunnerUp >= 0 {
				rid, _ := g.Person(m.RunnerUp)
				out.RunnerUp = &runnerJSON{rid, m.RunnerUpScore}
			}
			out.Known = m.Score >= bar && float64(m.Margin()) >= *margin
			if !out.Known {
				out.Person = nil // nearest is not a verdict
			}
		}
		if *asJSON {
			if err := enc.Encode(out); err != nil {
				return err
			}
			continue
		}
		if out.Error == "" {
			printIdentity(c.stdout, out, m, g)
		}
	}
	if failed > 0 {
		return reportedError{fmt.Errorf("%d of %d photos failed", failed, fs.NArg())}
	}
	return nil
}

func printIdentity(w io.Writer, out identifyJSON, m verify.Match, g *verify.Gallery) {
	id, name := g.Person(m.Person)
	if out.Known {
		fmt.Fprintf(w, "%s: %s (%s), score %.3f", out.File, id, name, m.Score)
	} else {
		fmt.Fprintf(w, "%s: unknown (nearest %s, score %.3f)", out.File, id, m.Score)
	}
	if out.RunnerUp != nil {
		fmt.Fprintf(w, ", runner-up %s %.3f", out.RunnerUp.ID, out.RunnerUp.Score)
	}
	fmt.Fprintln(w)
}
