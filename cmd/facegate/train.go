package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/facegate/facegate/camera"
	"github.com/facegate/facegate/detect"
	"github.com/facegate/facegate/learn"
	"github.com/facegate/facegate/store"
	"github.com/facegate/facegate/verify"
)

// TrainCommand trains a learned head on the site's own people.
type TrainCommand struct {
	stdout, stderr io.Writer
}

const trainUsage = `Usage: facegate train --db DB --method triplet|logistic|chi2 [flags]

Learns, from the site's own people, how to compare two faces, without
retraining the encoder: on the enrolled people's templates (those with two
or more), or with --from on a folder of labelled photos (DIR/PERSON/*.jpg,
embedded here). A share of the people (--holdout) is kept out of training to
measure the head on faces it never saw, next to plain cosine on the same
pairs; the epoch that did best there is kept. Progress goes to stderr, one
line per epoch: the loss, the share of active triplets (triplet) or of
misclassified pairs (logistic, chi2), and the validation accuracy.

Methods:
  triplet   a linear projection of the embeddings trained with FaceNet's
            triplet loss on triplets mined in each batch; pairs are then
            compared by the cosine of their projections
  logistic  DeepFace's siamese classifier σ(Σ wₖ|xᵢₖ − xⱼₖ| + b) on balanced pairs
  chi2      the same on χ² features (xᵢₖ − xⱼₖ)²/(|xᵢₖ| + |xⱼₖ| + ε)

The head is stored in DB with its metrics and the encoder it applies to,
inactive: "facegate heads --activate NAME" makes the door use it, and
"facegate calibrate --head NAME" sets its threshold for a target FAR. Ends
stdout with one JSON line of the final metrics.

Examples:

	facegate train --db /var/lib/facegate/facegate.db --method triplet
	facegate train --db gallery.db --method chi2 --epochs 40 --name chi2-spring
	facegate train --db gallery.db --method triplet --from labelled/ --face central --mining hardest
`

type trainJSON struct {
	Name   string       `json:"name"`
	Method learn.Method `json:"method"`
	Model  string       `json:"model"`
	Source string       `json:"source"`
	*learn.Result
}

func (c *TrainCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	var mf modelFlags
	mf.register(fs)
	var dbf dbFlag
	dbf.register(fs)
	method := fs.String("method", "", "triplet, logistic or chi2 (required)")
	from := fs.String("from", "", "train on this folder of labelled photos, DIR/PERSON/*.jpg, instead of the enrolled templates")
	face := fs.String("face", "enroll", "with --from, which face of a photo: enroll (exactly one face passing the enrollment quality gates), central or largest")
	workers := fs.Int("workers", runtime.NumCPU(), "with --from, photos embedded at once")
	name := fs.String("name", "", "the head's name (default METHOD-YYYYMMDD-HHMMSS)")
	dim := fs.Int("dim", 0, "triplet: output dimension of the projection (default: the embeddings', starting from plain cosine)")
	alpha := fs.Float64("alpha", 0.2, "triplet: margin α")
	lr := fs.Float64("lr", 0, "Adam learning rate (default: triplet 1e-4, logistic and chi2 1e-2)")
	epochs := fs.Int("epochs", 0, "passes over the data (default: triplet 10, logistic and chi2 20)")
	batch := fs.Int("batch", 0, "mini-batch: embeddings for triplet (default 64, 4 per person), pairs for logistic and chi2 (default 128)")
	mining := fs.String("mining", "semihard", "triplet: negatives mined in each batch: semihard, hardest or random")
	l2 := fs.Float64("l2", 0, "regulariser weight (default: triplet 1e-3 towards the starting projection, logistic and chi2 1e-4); negative for none")
	holdout := fs.Float64("holdout", 0.2, "share of the people held out for validation (0 for none)")
	seed := fs.Uint64("seed", 1, "random seed: the same data and seed give the same head")
	maxPixels := maxPixelsFlag(fs)
	if err := parseFlags(fs, args, c.stderr, trainUsage); err != nil {
		return err
	}
	if err := checkMaxPixels(*maxPixels); err != nil {
		return err
	}
	m, err := learn.ParseMethod(*method)
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected argument %q", fs.Arg(0))
	case *method == "":
		return usagef("--method is required: triplet, logistic or chi2")
	case err != nil || m == learn.Cosine:
		return usagef("--method %q: want triplet, logistic or chi2", *method)
	case !(*holdout >= 0 && *holdout < 1):
		return usagef("--holdout %g: must be at least 0 and below 1", *holdout)
	case *workers < 1:
		return usagef("--workers %d: must be at least 1", *workers)
	}
	cfg := learn.Config{Method: m, Dim: *dim, Alpha: *alpha, LR: *lr, Epochs: *epochs, Batch: *batch, L2: *l2, Seed: *seed}
	if m == learn.Triplet {
		if cfg.Mining, err = learn.ParseMining(*mining); err != nil {
			return usagef("--mining %q: want semihard, hardest or random", *mining)
		}
	}
	// Check the flags before any slow work: the embeddings' dimension is
	// not known yet, so a dimension check waits.
	if _, err := cfg.Defaults(learn.MaxDim); err != nil {
		return usageError{errors.New(strings.TrimPrefix(err.Error(), "learn: "))}
	}
	if *from != "" {
		if st, err := os.Stat(*from); err != nil || !st.IsDir() {
			return fmt.Errorf("--from %s: not a folder", *from)
		}
		if *face != "enroll" && *face != "central" && *face != "largest" {
			return usagef("--face %q: want enroll, central or largest", *face)
		}
	}
	if *name == "" {
		*name = fmt.Sprintf("%s-%s", m, time.Now().Format("20060102-150405"))
	}

	db, model, err := dbf.openForEncoder(ctx, &mf)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Head(ctx, *name); err == nil {
		return fmt.Errorf("%s already holds a head named %q: choose another --name", db.Path(), *name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}

	var all learn.Set
	source := "templates"
	if *from != "" {
		source = "folder " + *from
		if all, model, err = c.embedFolder(ctx, &mf, *workers, *from, *face, *maxPixels); err != nil {
			return err
		}
	} else {
		_, _, templates, err := db.Gallery(ctx, model)
		if err != nil {
			return err
		}
		for _, t := range templates {
			all.Add(t.Person, t.Vector)
		}
	}
	people := len(all.People())
	set := all.AtLeast(2)
	fmt.Fprintf(c.stderr, "%d people, %d embeddings; %d people with two or more (%d embeddings) are used\n",
		people, all.Len(), len(set.People()), set.Len())
	if len(set.People()) < 2 {
		return fmt.Errorf("%s: need at least two people with two or more %s to train on, found %d", sourceName(db.Path(), *from), map[bool]string{true: "photos", false: "templates"}[*from != ""], len(set.People()))
	}
	train, val := learn.SplitPeople(set, *holdout, *seed)
	if *holdout > 0 && len(val.People()) < 2 || len(train.People()) < 2 {
		fmt.Fprintf(c.stderr, "too few people to hold %.0f%% out: training on all %d, without validation\n", 100**holdout, len(set.People()))
		train, val = set, learn.Set{}
	}
	fmt.Fprintf(c.stderr, "training %s on %d people (%d embeddings), validating on %d people (%d embeddings)\n",
		m, len(train.People()), train.Len(), len(val.People()), val.Len())
	res, err := learn.Train(ctx, cfg, train, val, func(e learn.Epoch) { c.progress(e, m) })
	if err != nil {
		return err
	}
	c.summary(res)

	blob, err := res.Head.MarshalBinary()
	if err != nil {
		return err
	}
	out := trainJSON{Name: *name, Method: m, Model: model, Source: source, Result: res}
	metrics, err := json.Marshal(out)
	if err != nil {
		return err
	}
	if err := db.SaveHead(ctx, store.Head{Name: *name, Method: string(m), Model: model, Blob: blob, Metrics: metrics}, false); err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "stored head %q in %s (inactive): facegate heads --db %s --activate %s\n", *name, db.Path(), db.Path(), *name)
	_, err = c.stdout.Write(append(metrics, '\n'))
	return err
}

func sourceName(db, from string) string {
	if from != "" {
		return from
	}
	return db
}

func (c *TrainCommand) progress(e learn.Epoch, m learn.Method) {
	what := "active"
	if m != learn.Triplet {
		what = "wrong"
	}
	line := fmt.Sprintf("epoch %*d/%d  loss %.4f  %s %5.1f%%", len(fmt.Sprint(e.Epochs)), e.Epoch, e.Epochs, e.Loss, what, 100*e.Active)
	if e.Val != nil {
		line += fmt.Sprintf("  val accuracy %.2f%%  EER %.2f%%  TAR@FAR1e-3 %.1f%%", 100*e.Val.Accuracy, 100*e.Val.EER, 100*e.Val.TARAtFAR1e3)
	}
	fmt.Fprintf(c.stderr, "%s  %.1f s\n", line, e.Elapsed.Seconds())
}

func (c *TrainCommand) summary(res *learn.Result) {
	v, cos := res.Validation, res.CosineValidation
	if v == nil || cos == nil {
		fmt.Fprintf(c.stderr, "no validation: the head is unmeasured on people it did not see (training pairs: accuracy %.2f%%)\n", 100*res.Training.Accuracy)
		return
	}
	fmt.Fprintf(c.stderr, "held-out people, %d pairs: head accuracy %.2f%%, EER %.2f%%, TAR@FAR1e-3 %.1f%%; plain cosine %.2f%%, %.2f%%, %.1f%% (epoch %d kept)\n",
		v.Pairs, 100*v.Accuracy, 100*v.EER, 100*v.TARAtFAR1e3, 100*cos.Accuracy, 100*cos.EER, 100*cos.TARAtFAR1e3, res.BestEpoch)
	if res.BestEpoch == 0 || (v.Accuracy <= cos.Accuracy && v.EER >= cos.EER) {
		fmt.Fprintln(c.stderr, "the head does not beat plain cosine on the held-out people: keep cosine (do not activate it)")
	}
}

// embedFolder embeds every photo of DIR/PERSON/ with workers pipelines.
// A photo that cannot be used is skipped and reported, not fatal: a
// training set survives a few bad photos.
func (c *TrainCommand) embedFolder(ctx context.Context, mf *modelFlags, workers int, dir, face string, maxPixels int) (learn.Set, string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return learn.Set{}, "", err
	}
	type job struct{ person, path string }
	var jobs []job
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		photos, _ := listPhotos(filepath.Join(dir, e.Name()))
		for _, p := range photos {
			jobs = append(jobs, job{e.Name(), p})
		}
	}
	if len(jobs) == 0 {
		return learn.Set{}, "", fmt.Errorf("%s: no photos in sub-folders, one per person", dir)
	}
	workers = min(workers, len(jobs))
	rt, files, threads, err := mf.load(workers)
	if err != nil {
		return learn.Set{}, "", err
	}
	defer rt.Close()
	pipes := make([]*verify.Pipeline, workers)
	defer func() {
		for _, p := range pipes {
			if p != nil {
				p.Close()
			}
		}
	}()
	for i := range pipes {
		if pipes[i], err = verify.Open(rt, files, threads); err != nil {
			return learn.Set{}, "", err
		}
	}
	embed := func(p *verify.Pipeline, path string) ([]float32, error) {
		img, err := camera.ReadImage(path, maxPixels)
		if err != nil {
			return nil, err
		}
		defer img.Close()
		var e verify.Embedding
		switch face {
		case "enroll":
			e, _, err = p.EnrollmentEmbedding(img, detect.DefaultGates())
		case "central":
			e, _, err = p.EmbedOne(img, verify.Central)
		default:
			e, _, err = p.EmbedOne(img, verify.Largest)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return e.Vector, nil
	}

	fmt.Fprintf(c.stderr, "embedding %d photos with %d workers\n", len(jobs), workers)
	bar := newProgress(c.stderr, len(jobs), "embedding")
	vectors := make([][]float32, len(jobs))
	skipped := make([]error, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for _, p := range pipes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				vectors[i], skipped[i] = embed(p, jobs[i].path)
				bar.Add(1)
			}
		}()
	}
feed:
	for i := range jobs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	bar.Finish()
	if err := ctx.Err(); err != nil {
		return learn.Set{}, "", err
	}
	var set learn.Set
	var nSkipped int
	for i, j := range jobs {
		if skipped[i] != nil {
			nSkipped++
			fmt.Fprintf(c.stderr, "skipped %v\n", skipped[i])
			continue
		}
		set.Add(j.person, vectors[i])
	}
	if nSkipped > 0 {
		fmt.Fprintf(c.stderr, "%d of %d photos skipped\n", nSkipped, len(jobs))
	}
	return set, files.EncoderID, nil
}
