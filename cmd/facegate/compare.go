package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/facegate/facegate/camera"
	"github.com/facegate/facegate/verify"
)

// CompareCommand says whether two photos show the same person.
type CompareCommand struct {
	stdout, stderr io.Writer
}

const compareUsage = `Usage: facegate compare [flags] A B

Compares the largest face of photo A with the largest face of photo B (and
says so when a photo holds several). Prints the cosine similarity, the
threshold and the verdict, and ends stdout with one JSON line:
{"similarity":...,"threshold":...,"same":bool}.

Examples:

	facegate compare badge.jpg door.jpg
	facegate compare --threshold 0.4 a.jpg b.jpg | tail -1 | jq .same
`

func (c *CompareCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	var mf modelFlags
	mf.register(fs)
	threshold := fs.Float64("threshold", verify.DefaultThreshold, "cosine similarity at or above which two faces are the same person")
	maxPixels := maxPixelsFlag(fs)
	if err := parseFlags(fs, args, c.stderr, compareUsage); err != nil {
		return err
	}
	if err := checkMaxPixels(*maxPixels); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("want two images, got %d (facegate compare A B)", fs.NArg())
	}
	if *threshold < -1 || *threshold > 1 {
		return usagef("--threshold %g: must be between -1 and 1", *threshold)
	}
	rt, p, err := mf.open()
	if err != nil {
		return err
	}
	defer rt.Close()
	defer p.Close()

	var embs [2]verify.Embedding
	for i, path := range fs.Args() {
		e, n, err := embedPhoto(p, path, verify.Largest, *maxPixels)
		if err != nil {
			return err
		}
		if n > 1 {
			fmt.Fprintf(c.stderr, "%s: %d faces, comparing the largest\n", path, n)
		}
		embs[i] = e
	}
	sim, err := verify.Cosine(embs[0], embs[1])
	if err != nil {
		return err
	}
	same := float64(sim) >= *threshold
	verdict := "different people"
	if same {
		verdict = "same person"
	}
	fmt.Fprintf(c.stderr, "similarity %.4f, threshold %.4f: %s\n", sim, *threshold, verdict)
	return json.NewEncoder(c.stdout).Encode(struct {
		Similarity float32 `json:"similarity"`
		Threshold  float64 `json:"threshold"`
		Same       bool    `json:"same"`
	}{sim, *threshold, same})
}

// embedPhoto embeds the chosen face of the photo at path and returns it
// with the number of faces found.
func embedPhoto(p *verify.Pipeline, path string, choice verify.Choice, maxPixels int) (verify.Embedding, int, error) {
	img, err := camera.ReadImage(path, maxPixels)
	if err != nil {
		return verify.Embedding{}, 0, err
	}
	defer img.Close()
	e, n, err := p.EmbedOne(img, choice)
	if err != nil {
		return verify.Embedding{}, n, fmt.Errorf("%s: %w", path, err)
	}
	return e, n, nil
}
