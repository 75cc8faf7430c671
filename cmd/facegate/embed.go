package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/facegate/facegate/camera"
	"github.com/facegate/facegate/detect"
	"github.com/facegate/facegate/verify"
)

// EmbedCommand reports every face in each photo.
type EmbedCommand struct {
	stdout, stderr io.Writer
}

const embedUsage = `Usage: facegate embed [flags] IMAGE...

Finds every face in each photo and reports, largest face first, its box,
detector score, five landmarks, quality measures, liveness (score, threshold,
verdict) and, with --json, its 512-float embedding.

Examples:

	facegate embed door.jpg
	facegate embed --json a.jpg b.jpg > faces.jsonl
`

// faceJSON is one face in embed's JSON lines, in DESIGN.md's layout.
type faceJSON struct {
	Box       [4]float32     `json:"box"`
	Score     float32        `json:"score"`
	Points    [5][2]float32  `json:"points"`
	Quality   detect.Quality `json:"quality"`
	Liveness  livenessJSON   `json:"liveness"`
	Embedding []float32      `json:"embedding"`
}

type livenessJSON struct {
	Score     float32 `json:"score"`
	Threshold float32 `json:"threshold"`
	Live      bool    `json:"live"`
}

type imageJSON struct {
	File  string     `json:"file"`
	Faces []faceJSON `json:"faces"`
	Error string     `json:"error,omitempty"`
}

// Run embeds each image; an image that fails is reported on stderr and the
// rest still run, and the exit status is then 1.
func (c *EmbedCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("embed", flag.ContinueOnError)
	var mf modelFlags
	mf.register(fs)
	asJSON := fs.Bool("json", false, "write one JSON line per image to stdout")
	maxPixels := maxPixelsFlag(fs)
	if err := parseFlags(fs, args, c.stderr, embedUsage); err != nil {
		return err
	}
	if err := checkMaxPixels(*maxPixels); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("no image given (facegate embed IMAGE...)")
	}
	rt, p, err := mf.open()
	if err != nil {
		return err
	}
	defer rt.Close()
	defer p.Close()

	failed := 0
	enc := json.NewEncoder(c.stdout)
	for _, path := range fs.Args() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		out, err := embedImage(p, path, *maxPixels)
		if err != nil {
			fmt.Fprintf(c.stderr, "facegate embed: %v\n", err)
			failed++
			if *asJSON {
				out.Error = err.Error()
			}
		}
		if *asJSON {
			if err := enc.Encode(out); err != nil {
				return err
			}
			continue
		}
		printFaces(c.stdout, out)
	}
	if failed > 0 {
		return reportedError{fmt.Errorf("%d of %d images failed", failed, fs.NArg())}
	}
	return nil
}

// embedImage runs the whole chain on every face of one photo.
func embedImage(p *verify.Pipeline, path string, maxPixels int) (imageJSON, error) {
	out := imageJSON{File: path, Faces: []faceJSON{}}
	img, err := camera.ReadImage(path, maxPixels)
	if err != nil {
		return out, err
	}
	defer img.Close()
	faces, err := p.Find(img, nil)
	if err != nil {
		return out, fmt.Errorf("%s: %w", path, err)
	}
	if len(faces) == 0 {
		return out, fmt.Errorf("%s: no face found", path)
	}
	for i := range faces {
		f := &faces[i]
		if err := p.Liveness(img, f, nil); err != nil {
			return out, fmt.Errorf("%s: %w", path, err)
		}
		if err := p.Embed(img, f, nil); err != nil {
			return out, fmt.Errorf("%s: %w", path, err)
		}
		fj := faceJSON{
			Box:       [4]float32{f.Box.X1, f.Box.Y1, f.Box.X2, f.Box.Y2},
			Score:     f.Score,
			Quality:   f.Quality,
			Liveness:  livenessJSON{Score: f.Liveness, Threshold: detect.DefaultLivenessThreshold, Live: f.Liveness >= detect.DefaultLivenessThreshold},
			Embedding: append([]float32(nil), f.Embedding.Vector...),
		}
		for k, pt := range f.Points {
			fj.Points[k] = [2]float32{pt.X, pt.Y}
		}
		out.Faces = append(out.Faces, fj)
	}
	return out, nil
}

func printFaces(w io.Writer, img imageJSON) {
	if img.Error != "" || len(img.Faces) == 0 {
		return
	}
	fmt.Fprintf(w, "%s: %d face(s), largest first\n", img.File, len(img.Faces))
	for i, f := range img.Faces {
		verdict := "live"
		if !f.Liveness.Live {
			verdict = "ATTACK?"
		}
		fmt.Fprintf(w, "  %d  box %.0f,%.0f-%.0f,%.0f  score %.3f  size %.0f  sharp %.0f  bright %.0f  yaw %+.2f  liveness %.2f (threshold %.2f: %s)\n",
			i+1, f.Box[0], f.Box[1], f.Box[2], f.Box[3], f.Score, f.Quality.Size, f.Quality.Sharpness, f.Quality.Brightness, f.Quality.Yaw,
			f.Liveness.Score, f.Liveness.Threshold, verdict)
	}
}
