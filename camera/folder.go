package camera

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gocv.io/x/gocv"
)

// isImageName reports whether name ends like an image file of a format
// DecodeImage reads.
func isImageName(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp":
		return true
	}
	return false
}

// folderReader yields the images of a folder, sorted by name, one pass per
// opening. Entries that are not images, or do not decode, are skipped and
// logged once per Source (again only if the file changes).
type folderReader struct {
	dir       string
	entries   []fs.DirEntry
	next      int
	fps       float64
	maxPixels int
	skipped   map[string]time.Time // name → modification time when reported
	log       *slog.Logger
}

// openFolder lists dir. skipped persists across openings, so a folder that
// is replayed does not report the same file again.
func openFolder(dir string, fps float64, maxPixels int, skipped map[string]time.Time, log *slog.Logger) (*folderReader, error) {
	entries, err := os.ReadDir(dir) // sorted by file name
	if err != nil {
		var pe *fs.PathError
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("%s: no such folder", dir)
		case errors.As(err, &pe):
			return nil, fmt.Errorf("%s: cannot list folder: %v", dir, pe.Err)
		}
		return nil, fmt.Errorf("%s: cannot list folder: %w", dir, err)
	}
	return &folderReader{dir: dir, entries: entries, fps: fps, maxPixels: maxPixels, skipped: skipped, log: log}, nil
}

func (f *folderReader) Read(ctx context.Context, dst *gocv.Mat) error {
	for f.next < len(f.entries) {
		if err := ctx.Err(); err != nil {
			return err
		}
		e := f.entries[f.next]
		f.next++
		info, err := e.Info()
		if err != nil {
			continue // removed since the listing
		}
		name := e.Name()
		if when, ok := f.skipped[name]; ok && when.Equal(info.ModTime()) {
			continue
		}
		path := filepath.Join(f.dir, name)
		if info.IsDir() || !isImageName(name) {
			f.skipped[name] = info.ModTime()
			f.log.Info("camera skipped file", "file", path, "reason", "not an image")
			continue
		}
		img, err := ReadImage(path, f.maxPixels)
		if err != nil {
			f.skipped[name] = info.ModTime()
			f.log.Warn("camera skipped file", "file", path, "err", err)
			continue
		}
		old := *dst
		*dst = img
		old.Close()
		return nil
	}
	return io.EOF
}

func (f *folderReader) FPS() float64 { return f.fps }
func (f *folderReader) Close() error { return nil }
