package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/facegate/facegate/camera"
	"github.com/facegate/facegate/verify"
	"gocv.io/x/gocv"
)

// BenchCommand times each stage of the face pipeline.
type BenchCommand struct {
	stdout, stderr io.Writer
}

const benchUsage = `Usage: facegate bench [flags] IMAGE|VIDEO

Runs the whole chain (decode, detect, landmarks, liveness, align, encode) on
every face of a photo, repeatedly, or of each frame of a video, and prints
each stage's median and 90th-percentile time per frame, the share of each
model's pure inference time in the total, and Go heap allocations per frame
after warm-up. Ends stdout with one JSON line.

Examples:

	facegate bench ../shared/data/lfw-view1/images/Aaron_Eckhart/Aaron_Eckhart_0001.jpg
	facegate bench --frames 300 ../shared/data/clips/cap13_edit2.mp4
`

type stat struct {
	Median float64 `json:"median_ms"`
	P90    float64 `json:"p90_ms"`
}

type benchJSON struct {
	Input          string             `json:"input"`
	Width          int                `json:"width"`
	Height         int                `json:"height"`
	Frames         int                `json:"frames"`
	Faces          int                `json:"faces"`
	Threads        int                `json:"threads"`
	Stages         map[string]stat    `json:"stages"`
	ModelShare     map[string]float64 `json:"model_share"`
	AllocsPerFrame float64            `json:"allocs_per_frame"`
	Machine        string             `json:"machine"`
}

// stageNames in pipeline order; "total" is their sum per frame.
var stageNames = [...]string{"decode", "detect", "landmarks", "liveness", "align", "encode", "total"}

func (c *BenchCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var mf modelFlags
	mf.register(fs)
	n := fs.Int("n", 100, "frames to time for a photo (a video: at most this many, 0 for all)")
	warmup := fs.Int("warmup", 5, "untimed frames first")
	maxPixels := maxPixelsFlag(fs)
	if err := parseFlags(fs, args, c.stderr, benchUsage); err != nil {
		return err
	}
	if err := checkMaxPixels(*maxPixels); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one photo or video, got %d arguments", fs.NArg())
	}
	if *n < 0 || *warmup < 0 {
		return usagef("-n and -warmup must be 0 or more")
	}
	input := fs.Arg(0)
	src, err := openFrames(input, *maxPixels)
	if err != nil {
		return err
	}
	defer src.Close()
	rt, p, err := mf.open()
	if err != nil {
		return err
	}
	defer rt.Close()
	defer p.Close()

	frame := gocv.NewMat()
	defer frame.Close()
	var samples [len(stageNames)][]float64
	var runs [4]time.Duration // detector, landmarks, liveness, encoder
	var total time.Duration
	var mallocs uint64
	var before, after runtime.MemStats
	frames, faces := 0, 0
	for i := 0; *n == 0 || frames < *n; i++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var t verify.Timings
		start := time.Now()
		if !src.Read(&frame) {
			break
		}
		decode := time.Since(start)
		// Allocations are counted around the pipeline alone (outside every
		// timed region): the decoder of a photo is not the camera's.
		runtime.ReadMemStats(&before)
		found, err := p.Find(frame, &t)
		if err != nil {
			return fmt.Errorf("%s: %w", input, err)
		}
		for k := range found {
			if err := p.Liveness(frame, &found[k], &t); err != nil {
				return err
			}
			if err := p.Embed(frame, &found[k], &t); err != nil {
				return err
			}
		}
		runtime.ReadMemStats(&after)
		if i < *warmup {
			continue
		}
		mallocs += after.Mallocs - before.Mallocs
		frames++
		faces += len(found)
		d := [len(stageNames)]time.Duration{decode, t.Detect, t.Landmarks, t.Liveness, t.Align, t.Encode}
		d[len(d)-1] = decode + t.Detect + t.Landmarks + t.Liveness + t.Align + t.Encode
		for k := range d {
			samples[k] = append(samples[k], float64(d[k])/1e6)
		}
		runs[0] += t.DetectRun
		runs[1] += t.LandmarksRun
		runs[2] += t.LivenessRun
		runs[3] += t.EncodeRun
		total += d[len(d)-1]
	}
	if frames == 0 {
		return fmt.Errorf("%s: no frame timed (it has no more than %d frames of warm-up)", input, *warmup)
	}
	out := benchJSON{
		Input: input, Width: frame.Cols(), Height: frame.Rows(), Frames: frames, Faces: faces,
		Threads: mf.threads, Stages: map[string]stat{}, ModelShare: map[string]float64{},
		AllocsPerFrame: float64(mallocs) / float64(frames),
		Machine:        machine(),
	}
	if out.Threads == 0 {
		out.Threads = runtime.NumCPU()
	}
	for k, name := range stageNames {
		out.Stages[name] = stat{percentile(samples[k], 0.5), percentile(samples[k], 0.9)}
	}
	for i, name := range []string{"detector", "landmarks", "liveness", "encoder"} {
		out.ModelShare[name] = float64(runs[i]) / float64(total)
	}

	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(c.stdout, "%s: %dx%d, %d frames timed, %.1f faces per frame, %d threads per model, %s\n",
		input, out.Width, out.Height, frames, float64(faces)/float64(frames), out.Threads, out.Machine)
	fmt.Fprintln(tw, "stage\tmedian ms\tp90 ms\t")
	for _, name := range stageNames {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t\n", name, out.Stages[name].Median, out.Stages[name].P90)
	}
	tw.Flush()
	fmt.Fprintf(c.stdout, "Go heap allocations per frame in the pipeline after warm-up: %.1f\n", out.AllocsPerFrame)
	fmt.Fprintf(c.stdout, "model inference share of total: detector %.0f%%, landmarks %.0f%%, liveness %.0f%%, encoder %.0f%%\n",
		100*out.ModelShare["detector"], 100*out.ModelShare["landmarks"], 100*out.ModelShare["liveness"], 100*out.ModelShare["encoder"])
	return json.NewEncoder(c.stdout).Encode(out)
}

// frameSource yields frames to time: a photo decoded again for every frame
// (so decode is timed too), or a video's frames in order.
type frameSource interface {
	Read(dst *gocv.Mat) bool
	Close() error
}

type photoFrames struct {
	path      string
	data      []byte
	maxPixels int
}

func (p *photoFrames) Read(dst *gocv.Mat) bool {
	m, err := camera.DecodeImage(p.path, p.data, p.maxPixels)
	if err != nil {
		return false
	}
	m.CopyTo(dst)
	m.Close()
	return true
}

func (p *photoFrames) Close() error { return nil }

func openFrames(path string, maxPixels int) (frameSource, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	if m, err := camera.DecodeImage(path, data, maxPixels); err == nil {
		m.Close()
		return &photoFrames{path: path, data: data, maxPixels: maxPixels}, nil
	} else if !errors.Is(err, camera.ErrNotImage) {
		return nil, err
	}
	return camera.OpenVideoFile(path)
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// percentile of xs (nearest rank); xs is sorted in place.
func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	i := int(q*float64(len(xs))+0.5) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

// machine names the processor and core count the figures came from.
func machine() string {
	name := runtime.GOARCH
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				name = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s/%s", name, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
}
