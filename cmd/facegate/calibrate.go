package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/facegate/facegate/learn"
	"github.com/facegate/facegate/store"
	"github.com/facegate/facegate/verify"
)

// CalibrateCommand sets a head's operating threshold for a target FAR.
type CalibrateCommand struct {
	stdout, stderr io.Writer
}

const calibrateUsage = `Usage: facegate calibrate --db DB [--far 1e-4] [--head NAME]

Sets the operating thresholds for a target false-accept rate: it scores every
impostor pair of the enrolled people's templates (two different people) and
every genuine pair (two templates of one person), takes the lowest threshold
that accepts at most that share of impostor pairs, and reports the
false-reject rate of the genuine pairs there. Without --head it calibrates
plain cosine, stored as the head named "cosine" (made active when no other
head is); with --head, that head, whose activation it leaves as it is.

Two thresholds come out, both for the same rate --far:
  1:1   one comparison: what facegate eval and compare use;
  door  a stranger at the door, compared with each of the N enrolled people
        (or --people N), passes any comparison with probability at most
        --far: each one must pass with at most far/N. The door and facegate
        identify use this one.
Resolving a rate r needs 1/r impostor pairs: a door of N people needs N/far,
more than a small site has. Then the door threshold only rejects every
impostor pair seen; for plain cosine the built-in 0.55 (measured on LFW) is
kept when it is higher. Run calibrate again when many people have been
enrolled since. A head calibrated on the people it was trained on looks
better there than it will on strangers: compare heads on other people with
facegate eval --head. Ends stdout with one JSON line.

Examples:

	facegate calibrate --db /var/lib/facegate/facegate.db --far 1e-4
	facegate calibrate --db gallery.db --far 1e-3 --head triplet-20260301-101500
	facegate calibrate --db gallery.db --far 1e-3 --people 300
`

type calibrateJSON struct {
	Head   string `json:"head"`
	Method string `json:"method"`
	Model  string `json:"model"`
	People int    `json:"people"`
	Active bool   `json:"active"`
	learn.Calibration
	Door learn.DoorCalibration `json:"door"`
}

func (c *CalibrateCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("calibrate", flag.ContinueOnError)
	var mf modelFlags
	mf.register(fs)
	var dbf dbFlag
	dbf.register(fs)
	far := fs.Float64("far", 1e-4, "target false-accept rate per comparison, between 0 and 1")
	headName := fs.String("head", "", "calibrate this head (default: plain cosine, as the head named \"cosine\")")
	maxImpostors := fs.Int("max-impostors", 25_000_000, "score at most this many impostor pairs (4 bytes each), drawn at random when there are more")
	seed := fs.Uint64("seed", 1, "random seed for drawing impostor pairs")
	doorPeople := fs.Int("people", 0, "the number of people the door threshold is for (default: the people enrolled in DB; give the expected headcount when calibrating before everyone is enrolled)")
	if err := parseFlags(fs, args, c.stderr, calibrateUsage); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected argument %q", fs.Arg(0))
	case !(*far > 0 && *far < 1):
		return usagef("--far %g: must be between 0 and 1", *far)
	case *maxImpostors < 1:
		return usagef("--max-impostors %d: must be at least 1", *maxImpostors)
	case *doorPeople < 0:
		return usagef("--people %d: must be at least 1", *doorPeople)
	}
	db, model, err := dbf.openForEncoder(ctx, &mf)
	if err != nil {
		return err
	}
	defer db.Close()
	_, _, templates, err := db.Gallery(ctx, model)
	if err != nil {
		return err
	}
	var set learn.Set
	for _, t := range templates {
		set.Add(t.Person, t.Vector)
	}
	if set.Len() == 0 {
		return fmt.Errorf("%s holds no templates of encoder %s to calibrate on: enroll people first", db.Path(), shortID(model))
	}
	dim := len(set.Vectors[0])

	name := *headName
	if name == "" {
		name = string(learn.Cosine)
	}
	var head learn.Head
	var stored store.Head
	stored, err = db.Head(ctx, name)
	switch {
	case err == nil:
		if stored.Model != model {
			return fmt.Errorf("head %q in %s applies to encoder %s, but this facegate uses %s", name, db.Path(), shortID(stored.Model), shortID(model))
		}
		if head, err = learn.Decode(stored.Blob); err != nil {
			return fmt.Errorf("head %q in %s: %w", name, db.Path(), err)
		}
		if head.Dim() != dim {
			return fmt.Errorf("head %q takes %d-dimensional embeddings, the templates have %d", name, head.Dim(), dim)
		}
	case errors.Is(err, store.ErrNotFound) && *headName == "":
		head = learn.NewCosine(dim, verify.DefaultThreshold)
		stored = store.Head{Name: name, Method: string(learn.Cosine), Model: model}
	default:
		return err
	}

	genuine, impostor, err := learn.PairScores(head, set, *maxImpostors, *seed)
	if err != nil {
		return err
	}
	people := len(set.People())
	if len(genuine) == 0 {
		return fmt.Errorf("%s: no person has two or more templates, so there is no genuine pair to measure the false-reject rate on: enroll some people with several photos", db.Path())
	}
	if len(impostor) == 0 {
		return fmt.Errorf("%s: only one person enrolled, so there is no impostor pair to calibrate on", db.Path())
	}
	scores, err := learn.NewScores(genuine, impostor)
	if err != nil {
		return err
	}
	cal, err := scores.Calibrate(*far)
	if err != nil {
		return err
	}
	atDoor := people
	if *doorPeople > 0 {
		atDoor = *doorPeople
	}
	door, err := scores.CalibrateDoor(*far, atDoor)
	if err != nil {
		return err
	}

	// Keep the head's other metrics; record the calibration with them.
	metrics := map[string]any{}
	if len(stored.Metrics) > 0 {
		if err := json.Unmarshal(stored.Metrics, &metrics); err != nil {
			metrics = map[string]any{}
		}
	}
	metrics["calibration"] = cal
	metrics["door"] = door
	metrics["calibrated"] = time.Now().UTC().Format(time.RFC3339)
	if stored.Method == string(learn.Cosine) {
		metrics["method"] = learn.Cosine
		metrics["model"] = model
	}
	stored.Metrics, err = json.Marshal(metrics)
	if err != nil {
		return err
	}
	if stored.Blob, err = head.WithThreshold(cal.Threshold).MarshalBinary(); err != nil {
		return err
	}
	stored.Created = time.Time{}
	_, hasActive, err := db.ActiveHead(ctx, model)
	if err != nil {
		return err
	}
	// Plain cosine takes effect at once unless another head is in use; a
	// named head is activated only by facegate heads.
	stored.Active = stored.Active || (stored.Method == string(learn.Cosine) && !hasActive)
	if err := db.SaveHead(ctx, stored, true); err != nil {
		return err
	}
	active, _, err := db.ActiveHead(ctx, model)
	if err != nil {
		return err
	}
	isActive := active.Name == name

	fmt.Fprintf(c.stderr, "%s (%s) on %d people: %d impostor and %d genuine pairs\n", name, head.Method(), people, cal.Impostors, cal.Genuine)
	fmt.Fprintf(c.stderr, "threshold %.4f: FAR %.2g (target %.0e), FRR %.2f%%\n", cal.Threshold, cal.FAR, cal.TargetFAR, 100*cal.FRR)
	if !cal.Resolved {
		fmt.Fprintf(c.stderr, "warning: %d impostor pairs cannot resolve a FAR of %.0e (that needs %d): the threshold only rejects every impostor pair seen; enroll more people\n",
			cal.Impostors, cal.TargetFAR, int(1/cal.TargetFAR))
	}
	fmt.Fprintf(c.stderr, "door threshold %.4f: a stranger matches one of %d people with probability at most about %.0e (each comparison %.2g), FRR %.2f%%\n",
		door.Threshold, atDoor, door.StrangerFAR, door.TargetFAR, 100*door.FRR)
	if !door.Resolved {
		fmt.Fprintf(c.stderr, "warning: the door threshold is unresolved: %d people at %.0e need %d impostor pairs, there are %d; it only rejects every impostor pair seen\n",
			people, door.StrangerFAR, int(math.Ceil(float64(people)/door.StrangerFAR)), door.Impostors)
		switch {
		case head.Method() != learn.Cosine:
			fmt.Fprintf(c.stderr, "the door will not use head %q until its door threshold is resolved: calibrate with more people, or a higher --far\n", name)
		case door.Threshold < verify.IdentifyThreshold:
			fmt.Fprintf(c.stderr, "the door keeps the built-in threshold %.2f, which is higher\n", verify.IdentifyThreshold)
		}
	}
	if head.Method() != learn.Cosine {
		fmt.Fprintln(c.stderr, "note: the head was trained on these people, so these rates are optimistic; compare heads on other people with facegate eval --head")
	}
	unusable := door.Check(head.Method())
	switch {
	case isActive && unusable != nil:
		fmt.Fprintf(c.stderr, "head %q is active, but the door and identify score by plain cosine while %v\n", name, unusable)
	case unusable != nil:
		fmt.Fprintf(c.stderr, "head %q is not active, and cannot be made so while %v\n", name, unusable)
	case isActive:
		fmt.Fprintf(c.stderr, "head %q is active: the door and identify use it\n", name)
	case active.Name != "":
		fmt.Fprintf(c.stderr, "head %q is active, not %q: facegate heads --activate %s to use this one\n", active.Name, name, name)
	default:
		fmt.Fprintf(c.stderr, "head %q is not active: facegate heads --activate %s to use it\n", name, name)
	}
	return json.NewEncoder(c.stdout).Encode(calibrateJSON{Head: name, Method: string(head.Method()), Model: model, People: people, Active: isActive, Calibration: cal, Door: door})
}
