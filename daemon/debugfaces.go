package daemon

import (
	"context"
	"fmt"
	"image"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gocv.io/x/gocv"
)

// debugFaces keeps cropped faces of deny events, only when an admin opts
// in (debug_faces.dir), in a private folder, for a bounded time. By
// default no face image is written anywhere.
type debugFaces struct {
	dir  string
	keep time.Duration
	log  *slog.Logger
}

func newDebugFaces(cfg DebugFacesConfig, log *slog.Logger) (*debugFaces, error) {
	if cfg.Dir == "" {
		return nil, nil
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("debug_faces.dir: %w", err)
	}
	if err := os.Chmod(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("debug_faces.dir: %w", err)
	}
	log.Warn("debug_faces is on: cropped faces of deny events are kept on disk", "dir", cfg.Dir, "for", cfg.Keep.String())
	return &debugFaces{dir: cfg.Dir, keep: cfg.Keep, log: log}, nil
}

// save writes the face box of a deny, with a margin, readable by the
// daemon's user only.
func (f *debugFaces) save(frame gocv.Mat, box image.Rectangle, id, reason string) {
	if f == nil || box.Empty() {
		return
	}
	m := box.Dx() / 4
	r := box.Inset(-m).Intersect(image.Rect(0, 0, frame.Cols(), frame.Rows()))
	crop := frame.Region(r)
	defer crop.Close()
	name := filepath.Join(f.dir, fmt.Sprintf("%s-%s-%s.jpg", time.Now().UTC().Format("20060102T150405.000Z"), reason, id))
	buf, err := gocv.IMEncode(gocv.JPEGFileExt, crop)
	if err != nil {
		f.log.Warn("debug_faces: encode", "err", err)
		return
	}
	defer buf.Close()
	if err := os.WriteFile(name, buf.GetBytes(), 0o600); err != nil {
		f.log.Warn("debug_faces: write", "err", err)
	}
}

// sweep deletes kept faces older than keep, every minute, until ctx ends.
func (f *debugFaces) sweep(ctx context.Context) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		f.prune(time.Now())
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (f *debugFaces) prune(now time.Time) {
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".jpg") {
			continue
		}
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > f.keep {
			os.Remove(filepath.Join(f.dir, e.Name()))
		}
	}
}
