package camera

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"gocv.io/x/gocv"
)

// VideoFile reads the frames of a video file in order.
type VideoFile struct {
	path string
	cap  *gocv.VideoCapture
}

// OpenVideoFile opens the video at path; it fails when the file is missing or
// holds no readable frame.
func OpenVideoFile(path string) (*VideoFile, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: no such file", path)
	} else if err != nil {
		return nil, err
	}
	c, err := gocv.VideoCaptureFile(path)
	if err != nil || !c.IsOpened() {
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("%s: not a video facegate can read", path)
	}
	return &VideoFile{path: path, cap: c}, nil
}

// FPS is the file's own frame rate, 0 when it does not say.
func (v *VideoFile) FPS() float64 { return v.cap.Get(gocv.VideoCaptureFPS) }

// Read decodes the next frame into dst, reusing its buffer; false at the end.
func (v *VideoFile) Read(dst *gocv.Mat) bool { return v.cap.Read(dst) && !dst.Empty() }

// Close releases the decoder.
func (v *VideoFile) Close() error { return v.cap.Close() }
