// Package camera turns cameras, video files, folders and single photos into
// BGR frames (gocv Mats) for the face pipeline.
package camera

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // DecodeConfig reads these headers to size an image before decoding it
	_ "image/jpeg"
	_ "image/png"
	"io"
	"io/fs"
	"os"
	"strconv"

	"gocv.io/x/gocv"
	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"
)

// DefaultMaxPixels bounds the images ReadImage will decode: a 40-megapixel
// BGR frame is 120 MB, and a door has no use for larger photos.
const DefaultMaxPixels = 40_000_000

// ErrNotImage is wrapped by the errors of ReadImage and DecodeImage for data
// that is no image format facegate reads.
var ErrNotImage = errors.New("not an image (or not a format facegate reads: JPEG, PNG, GIF, BMP, TIFF, WebP)")

// maxFileBytes bounds how much of a file is read into memory.
const maxFileBytes = 256 << 20

// ReadImage decodes the photo at path into a BGR Mat with its EXIF
// orientation applied. It refuses files that are missing, not images,
// truncated, or larger than maxPixels, before decoding the pixels. The caller
// closes the Mat.
func ReadImage(path string, maxPixels int) (gocv.Mat, error) {
	data, err := readFile(path)
	if err != nil {
		return gocv.Mat{}, err
	}
	return DecodeImage(path, data, maxPixels)
}

// DecodeImage is ReadImage for bytes already in memory; name is used only in
// error messages.
func DecodeImage(name string, data []byte, maxPixels int) (gocv.Mat, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	switch {
	case errors.Is(err, image.ErrFormat):
		return gocv.Mat{}, fmt.Errorf("%s: %w", name, ErrNotImage)
	case err != nil:
		return gocv.Mat{}, fmt.Errorf("%s: corrupt or truncated image header: %v", name, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return gocv.Mat{}, fmt.Errorf("%s: image has no pixels (%dx%d)", name, cfg.Width, cfg.Height)
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > int64(maxPixels) {
		return gocv.Mat{}, fmt.Errorf("%s: image is %dx%d (%s megapixels), over the limit of %s megapixels", name, cfg.Width, cfg.Height, megapixels(px), megapixels(int64(maxPixels)))
	}
	// libjpeg decodes a truncated file with a warning and grey fill; a face
	// search on half a photo is worse than a clear refusal.
	if format == "jpeg" {
		if err := jpegComplete(data); err != nil {
			return gocv.Mat{}, fmt.Errorf("%s: %v", name, err)
		}
	}
	m, err := gocv.IMDecode(data, gocv.IMReadColor)
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("%s: decode: %w", name, err)
	}
	if m.Empty() {
		m.Close()
		return gocv.Mat{}, fmt.Errorf("%s: corrupt %s image: it cannot be decoded", name, format)
	}
	return m, nil
}

// megapixels formats a pixel count in megapixels; below one it keeps every
// digit, so a small limit does not print as 0.0.
func megapixels(px int64) string {
	if mp := float64(px) / 1e6; mp < 1 {
		return strconv.FormatFloat(mp, 'f', -1, 64)
	}
	return fmt.Sprintf("%.1f", float64(px)/1e6)
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: no such file", path)
		}
		return nil, err // *PathError already names the file
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s: is a folder, not an image", path)
	}
	if st.Size() > maxFileBytes {
		return nil, fmt.Errorf("%s: file is %d MB, over the limit of %d MB", path, st.Size()>>20, maxFileBytes>>20)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%s: empty file", path)
	}
	return data, nil
}

// jpegComplete walks the JPEG's marker segments and its entropy-coded scans
// and reports an error unless the end-of-image marker follows the last scan.
// An EXIF thumbnail carries its own end marker inside APP1, so looking for
// FF D9 anywhere in the file is not enough.
func jpegComplete(b []byte) error {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return errors.New("not a JPEG (no start-of-image marker)")
	}
	i := 2
	for {
		// Markers may be preceded by any number of 0xFF fill bytes.
		for i < len(b) && b[i] == 0xFF && i+1 < len(b) && b[i+1] == 0xFF {
			i++
		}
		if i+1 >= len(b) {
			return errors.New("truncated JPEG (no end-of-image marker)")
		}
		if b[i] != 0xFF {
			return fmt.Errorf("corrupt JPEG: expected a marker at byte %d", i)
		}
		m := b[i+1]
		switch {
		case m == 0xD9:
			return nil
		case m == 0x01 || (m >= 0xD0 && m <= 0xD7):
			i += 2
			continue
		}
		if i+4 > len(b) {
			return errors.New("truncated JPEG (inside a segment header)")
		}
		n := int(b[i+2])<<8 | int(b[i+3])
		if n < 2 {
			return fmt.Errorf("corrupt JPEG: segment length %d at byte %d", n, i)
		}
		i += 2 + n
		if i > len(b) {
			return errors.New("truncated JPEG (inside a segment)")
		}
		if m != 0xDA {
			continue
		}
		// Entropy-coded data after start-of-scan: 0xFF is always followed by
		// a stuffed 0x00 or a restart marker until the next real marker.
		for {
			if i+1 >= len(b) {
				return errors.New("truncated JPEG (image data ends early)")
			}
			if b[i] == 0xFF && b[i+1] != 0x00 && (b[i+1] < 0xD0 || b[i+1] > 0xD7) && b[i+1] != 0xFF {
				break
			}
			i++
		}
	}
}
