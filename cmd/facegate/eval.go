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

	"github.com/facegate/facegate/learn"
	"github.com/facegate/facegate/store"
	"github.com/facegate/facegate/verify"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// EvalCommand measures verification accuracy on a pairs file.
type EvalCommand struct {
	stdout, stderr io.Writer
}

const evalUsage = `Usage: facegate eval --pairs FILE --images DIR [flags]

Follows the LFW protocol: embeds the face nearest the centre of every image
the pairs file names (DIR/NAME/NAME_0001.jpg), scores each pair by cosine similarity,
and reports 10-fold accuracy (each fold judged at the threshold that is best
on the other nine) ± standard deviation, the equal error rate, the true-accept
rate at false-accept rates 1e-2 and 1e-3, the images with no face (their pairs
count as wrong) and the operating threshold. Ends stdout with one JSON line.
Nothing is cached between runs. With --head, pairs are scored by a head
stored in --db by facegate train instead of plain cosine, so the two can be
compared on the same pairs; --head active takes the head the door uses.

Examples:

	facegate eval --pairs ../shared/data/lfw-view1/pairsDevTest.txt \
	    --images ../shared/data/lfw-view1/images --roc roc.png
	facegate eval --pairs ../shared/data/lfw-view1/pairsDevTest.txt \
	    --images ../shared/data/lfw-view1/images --db gallery.db --head triplet-20260301-101500
`

type evalJSON struct {
	Pairs       int     `json:"pairs"`
	Images      int     `json:"images"`
	Accuracy    float64 `json:"accuracy"`
	AccuracyStd float64 `json:"accuracy_std"`
	EER         float64 `json:"eer"`
	TAR1e2      float64 `json:"tar_at_far_1e-2"`
	TAR1e3      float64 `json:"tar_at_far_1e-3"`
	NoFace      int     `json:"no_face"`
	Threshold   float64 `json:"threshold"`
	Seconds     float64 `json:"seconds"`
	Model       string  `json:"model"`
	Head        string  `json:"head,omitempty"`
	Method      string  `json:"method,omitempty"`
}

func (c *EvalCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	var mf modelFlags
	mf.register(fs)
	pairsPath := fs.String("pairs", "", "pairs file (LFW format)")
	imagesDir := fs.String("images", "", "folder of images, DIR/NAME/NAME_0001.jpg")
	rocPath := fs.String("roc", "", "write the ROC curve to this PNG file")
	scoresPath := fs.String("scores", "", "write every pair's similarity to this CSV file")
	workers := fs.Int("workers", runtime.NumCPU(), "images embedded at once, each with its own model sessions")
	maxPixels := maxPixelsFlag(fs)
	faceFlag := fs.String("face", "central", "which face of an image with several: central (LFW images are centred on their subject) or largest")
	minAccuracy := fs.Float64("min-accuracy", 0, "exit 1 when the 10-fold accuracy is below this (0 to 1), for CI")
	var dbf dbFlag
	dbf.register(fs)
	headName := fs.String("head", "", "score pairs with this head from --db instead of plain cosine (\"active\": the active one)")
	if err := parseFlags(fs, args, c.stderr, evalUsage); err != nil {
		return err
	}
	if err := checkMaxPixels(*maxPixels); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected argument %q", fs.Arg(0))
	case *pairsPath == "":
		return usagef("--pairs is required")
	case *imagesDir == "":
		return usagef("--images is required")
	case *minAccuracy < 0 || *minAccuracy > 1:
		return usagef("--min-accuracy %g: must be between 0 and 1", *minAccuracy)
	case *workers < 1:
		return usagef("--workers %d: must be at least 1", *workers)
	}
	var choice verify.Choice
	switch *faceFlag {
	case "central":
		choice = verify.Central
	case "largest":
		choice = verify.Largest
	default:
		return usagef("--face %q: want central or largest", *faceFlag)
	}
	if st, err := os.Stat(*imagesDir); err != nil || !st.IsDir() {
		return fmt.Errorf("--images %s: not a folder", *imagesDir)
	}
	head, headLabel, err := c.loadHead(ctx, &dbf, &mf, *headName)
	if err != nil {
		return err
	}
	pairs, err := verify.ReadPairsFile(*pairsPath)
	if err != nil {
		return err
	}
	var images []string
	seen := map[string]bool{}
	for _, p := range pairs {
		for _, name := range []string{p.A, p.B} {
			if !seen[name] {
				seen[name] = true
				images = append(images, name)
			}
		}
	}
	// A typo in --images should fail in a second, not after an hour.
	for _, name := range images {
		if _, err := os.Stat(filepath.Join(*imagesDir, name)); err != nil {
			return fmt.Errorf("%s names %s, which is not in %s", *pairsPath, name, *imagesDir)
		}
	}
	for _, p := range []string{*rocPath, *scoresPath} {
		if p != "" {
			if err := checkWritable(p); err != nil {
				return err
			}
		}
	}

	start := time.Now()
	embs, model, err := c.embedAll(ctx, &mf, *workers, *imagesDir, images, choice, *maxPixels)
	if err != nil {
		return err
	}
	noFace := 0
	for _, name := range images {
		if embs[name].Vector == nil {
			noFace++
			fmt.Fprintf(c.stderr, "%s: no face found (its pairs count as wrong)\n", name)
		}
	}
	scores := make([]verify.Score, len(pairs))
	for i, p := range pairs {
		a, b := embs[p.A], embs[p.B]
		scores[i] = verify.Score{Same: p.Same, Fold: p.Fold, Missing: a.Vector == nil || b.Vector == nil}
		if !scores[i].Missing {
			sim, err := verify.Cosine(a, b)
			if err != nil {
				return err
			}
			if head != nil {
				if head.Dim() != len(a.Vector) {
					return fmt.Errorf("head %q takes %d-dimensional embeddings, the encoder makes %d", headLabel, head.Dim(), len(a.Vector))
				}
				sim = head.Score(a.Vector, b.Vector)
			}
			scores[i].Similarity = float64(sim)
		}
	}
	rep, err := verify.Evaluate(scores)
	if err != nil {
		return fmt.Errorf("%s: %w", *pairsPath, err)
	}
	if *rocPath != "" {
		label := "cosine"
		if head != nil {
			label = headLabel
		}
		if err := writeROC(*rocPath, label, scores); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "ROC curve written to %s\n", *rocPath)
	}
	if *scoresPath != "" {
		if err := writeScores(*scoresPath, pairs, scores); err != nil {
			return err
		}
	}
	out := evalJSON{
		Pairs: rep.Pairs, Images: len(images), Accuracy: rep.Accuracy, AccuracyStd: rep.AccuracyStd,
		EER: rep.EER, TAR1e2: rep.TARAtFAR1e2, TAR1e3: rep.TARAtFAR1e3, NoFace: noFace,
		Threshold: rep.Threshold, Seconds: time.Since(start).Seconds(), Model: model,
	}
	if head != nil {
		out.Head, out.Method = headLabel, string(head.Method())
	}
	fmt.Fprintf(c.stderr, "%d pairs, %d images (%d without a face), %.0f s\n", out.Pairs, out.Images, noFace, out.Seconds)
	fmt.Fprintf(c.stderr, "accuracy %.2f%% ± %.2f (10-fold)   EER %.2f%%   TAR %.2f%% at FAR 1e-2, %.2f%% at FAR 1e-3   threshold %.4f\n",
		100*rep.Accuracy, 100*rep.AccuracyStd, 100*rep.EER, 100*rep.TARAtFAR1e2, 100*rep.TARAtFAR1e3, rep.Threshold)
	if err := json.NewEncoder(c.stdout).Encode(out); err != nil {
		return err
	}
	if rep.Accuracy < *minAccuracy {
		return fmt.Errorf("accuracy %.2f%% is below the floor of %.2f%% (--min-accuracy)", 100*rep.Accuracy, 100**minAccuracy)
	}
	return nil
}

// embedAll embeds the largest face of each image with workers pipelines.
// An image with no face maps to a zero Embedding; any other failure stops
// the run.
func (c *EvalCommand) embedAll(ctx context.Context, mf *modelFlags, workers int, dir string, images []string, choice verify.Choice, maxPixels int) (map[string]verify.Embedding, string, error) {
	workers = min(workers, len(images))
	rt, files, threads, err := mf.load(workers)
	if err != nil {
		return nil, "", err
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
			return nil, "", err
		}
	}

	bar := newProgress(c.stderr, len(images), "embedding")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan string)
	var (
		mu       sync.Mutex
		embs     = make(map[string]verify.Embedding, len(images))
		firstErr error
		wg       sync.WaitGroup
	)
	for _, p := range pipes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range jobs {
				e, _, err := embedPhoto(p, filepath.Join(dir, name), choice, maxPixels)
				mu.Lock()
				switch {
				case err == nil || errors.Is(err, verify.ErrNoFace):
					embs[name] = e
				case firstErr == nil:
					firstErr = err
					cancel()
				}
				mu.Unlock()
				bar.Add(1)
			}
		}()
	}
feed:
	for _, name := range images {
		select {
		case jobs <- name:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	bar.Finish()
	if firstErr != nil {
		return nil, "", firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	return embs, files.EncoderID, nil
}

// newProgress draws a progress bar on stderr only when it is a terminal, so
// logs and CI output stay clean.
func newProgress(w io.Writer, n int, what string) *progressbar.ProgressBar {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return progressbar.NewOptions(n, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
	}
	return progressbar.NewOptions(n, progressbar.OptionSetVisibility(false))
}

// activeHeadName names, for --head, the head active for the encoder (unless
// a head is called that).
const activeHeadName = "active"

// loadHead reads the head named name from the database, checking that it
// applies to the encoder the flags select; nil for plain cosine.
func (c *EvalCommand) loadHead(ctx context.Context, dbf *dbFlag, mf *modelFlags, name string) (learn.Head, string, error) {
	if name == "" {
		return nil, "", nil
	}
	if dbf.path == "" {
		return nil, "", usagef("--head %s: give --db, the database holding it", name)
	}
	if _, err := os.Stat(dbf.path); err != nil {
		return nil, "", fmt.Errorf("--db %s: no such database", dbf.path)
	}
	model, err := mf.encoderID()
	if err != nil {
		return nil, "", err
	}
	db, err := dbf.open(ctx, "")
	if err != nil {
		return nil, "", err
	}
	defer db.Close()
	stored, err := db.Head(ctx, name)
	if errors.Is(err, store.ErrNotFound) && name == activeHeadName {
		var ok bool
		if stored, ok, err = db.ActiveHead(ctx, model); err == nil && !ok {
			return nil, "", fmt.Errorf("--head active: no head is active for encoder %s in %s", shortID(model), db.Path())
		}
	}
	if err != nil {
		return nil, "", err
	}
	name = stored.Name
	if stored.Model != model {
		return nil, "", fmt.Errorf("head %q in %s applies to encoder %s, but this facegate uses %s", name, db.Path(), shortID(stored.Model), shortID(model))
	}
	h, err := learn.Decode(stored.Blob)
	if err != nil {
		return nil, "", fmt.Errorf("head %q in %s: %w", name, db.Path(), err)
	}
	fmt.Fprintf(c.stderr, "scoring pairs with head %q (%s) instead of plain cosine\n", name, h.Method())
	return h, name, nil
}

func writeROC(path, label string, scores []verify.Score) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := verify.WriteROCPNG(f, verify.Curve{Label: label, Points: verify.ROC(scores)}); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// checkWritable fails early when an output file's folder does not exist.
func checkWritable(path string) error {
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("%s: folder %s does not exist", path, dir)
	}
	return nil
}

func writeScores(path string, pairs []verify.Pair, scores []verify.Score) error {
	var b strings.Builder
	b.WriteString("a,b,same,fold,similarity,missing\n")
	for i, p := range pairs {
		fmt.Fprintf(&b, "%s,%s,%t,%d,%.6f,%t\n", p.A, p.B, p.Same, p.Fold, scores[i].Similarity, scores[i].Missing)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
