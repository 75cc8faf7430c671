package camera

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"gocv.io/x/gocv"
)

// Defaults for the zero values of Config.
const (
	DefaultFolderFPS  = 5
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second

	// fallbackFPS paces a realtime file that does not state its frame rate.
	fallbackFPS = 25
)

// ErrStopped is what Next reports once Run has returned for any reason other
// than the end of a file or folder (which is io.EOF).
var ErrStopped = errors.New("source stopped")

// Config describes where frames come from.
type Config struct {
	Source    string  // "0" (device index), "/dev/video0", "rtsp://…", "http://…", a video file, or a folder of images
	Realtime  bool    // a file or folder plays at its own frame rate (a folder: FPS below), like a camera; false: as fast as the consumer takes frames, none dropped
	ExitAtEnd bool    // a file or folder that ends ends the source with io.EOF; otherwise it is reopened after Backoff (a camera that vanishes is always retried)
	FolderFPS float64 // frame rate of a folder in realtime mode (default 5)

	MinBackoff, MaxBackoff time.Duration // reconnect backoff, doubling (defaults 500 ms, 30 s)

	MaxPixels int // for folder images (camera.DefaultMaxPixels if 0)
}

// Kind is the sort of thing a Config.Source names.
type Kind int

// The kinds of source. The zero Kind is an empty Source.
const (
	Device Kind = iota + 1 // a camera: an index such as "0", or a path under /dev
	File                   // a video file
	Folder                 // a folder of images
	Stream                 // a URL: rtsp://, http://, ...
)

func (k Kind) String() string {
	switch k {
	case Device:
		return "device"
	case File:
		return "file"
	case Folder:
		return "folder"
	case Stream:
		return "stream"
	}
	return "unknown"
}

// Kind classifies c.Source: a number or a path under /dev is a Device,
// anything with a scheme ("rtsp://") a Stream, an existing directory a
// Folder, and any other path a File.
func (c Config) Kind() Kind {
	src := c.Source
	switch {
	case strings.TrimSpace(src) == "":
		return 0
	case isDeviceIndex(src):
		return Device
	case strings.Contains(src, "://"):
		return Stream
	case strings.HasPrefix(src, "/dev/"):
		return Device
	}
	if fi, err := os.Stat(src); err == nil && fi.IsDir() {
		return Folder
	}
	return File
}

func isDeviceIndex(s string) bool {
	if s == "" || len(s) > 4 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// Validate reports the first problem with c as one line. A device path need
// not exist yet (a camera may be plugged in later); a file or folder must.
func (c Config) Validate() error {
	switch {
	case strings.TrimSpace(c.Source) == "":
		return errors.New("camera: source is empty")
	case math.IsNaN(c.FolderFPS) || math.IsInf(c.FolderFPS, 0) || c.FolderFPS < 0:
		return fmt.Errorf("camera: folder fps %v is not a frame rate (want a positive number, or 0 for %d)", c.FolderFPS, DefaultFolderFPS)
	case c.MinBackoff < 0:
		return fmt.Errorf("camera: min backoff %v is negative", c.MinBackoff)
	case c.MaxBackoff < 0:
		return fmt.Errorf("camera: max backoff %v is negative", c.MaxBackoff)
	case c.MinBackoff > 0 && c.MaxBackoff > 0 && c.MinBackoff > c.MaxBackoff:
		return fmt.Errorf("camera: min backoff %v is longer than max backoff %v", c.MinBackoff, c.MaxBackoff)
	case c.MaxPixels < 0:
		return fmt.Errorf("camera: max pixels %d is negative", c.MaxPixels)
	}
	switch c.Kind() {
	case Stream:
		u, err := url.Parse(c.Source)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // url.Error repeats the URL, password and all
			}
			return fmt.Errorf("camera: source %s is not a valid URL: %v", redact(c.Source), err)
		}
		if u.Host == "" {
			return fmt.Errorf("camera: source %s has no host", redact(c.Source))
		}
	case File:
		if _, err := os.Stat(c.Source); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("camera: source %s: no such file or folder", c.Source)
		} else if err != nil {
			return fmt.Errorf("camera: source: %w", err)
		}
	}
	return nil
}

// withDefaults fills in the zero values; c is valid.
func (c Config) withDefaults() Config {
	if c.FolderFPS == 0 {
		c.FolderFPS = DefaultFolderFPS
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = max(DefaultMaxBackoff, c.MinBackoff)
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = min(DefaultMinBackoff, c.MaxBackoff)
	}
	if c.MaxPixels == 0 {
		c.MaxPixels = DefaultMaxPixels
	}
	return c
}

// redact hides the password of a URL source, so that logs, errors and
// metrics never carry it.
func redact(src string) string {
	i := strings.Index(src, "://")
	if i < 0 {
		return src
	}
	if u, err := url.Parse(src); err == nil {
		return u.Redacted()
	}
	// Unparsable: drop any user information by hand.
	rest := src[i+3:]
	if at := strings.LastIndex(rest[:strings.IndexAny(rest+"/", "/")], "@"); at >= 0 {
		return src[:i+3] + "xxxxx@" + rest[at+1:]
	}
	return src
}

// Stats counts what a Source has done. Captured = Delivered + Dropped, plus
// one while a frame waits for the consumer.
type Stats struct {
	Captured   uint64 // frames read from the source
	Dropped    uint64 // frames replaced by a newer one before the consumer took them
	Delivered  uint64 // frames handed out by Next
	Reconnects uint64 // times the source was reopened, after a failure or (a file or folder) its end
	Connected  bool   // the source is open now
	LastError  string // the most recent failure, kept after recovery; "" if none
}

// Source delivers the newest frame of a camera, stream, file or folder.
// Run owns the capture goroutine; Next hands frames to one consumer.
//
// Devices and streams always keep only the newest frame. A file or folder
// in realtime mode is paced at its frame rate and behaves the same way; out
// of realtime mode it is read only as fast as Next takes frames, so none is
// dropped.
type Source struct {
	cfg      Config
	kind     Kind
	name     string // cfg.Source without any password
	log      *slog.Logger
	paced    bool // sleep between frames (realtime file or folder)
	lossless bool // wait for the consumer before replacing a frame

	fresh chan struct{} // capacity 1: a frame was published
	taken chan struct{} // capacity 1: the consumer took a frame
	done  chan struct{} // closed when Run returns

	mu      sync.Mutex
	ran     bool
	stopped bool     // Run has returned; latest is closed
	endErr  error    // what Next reports once stopped
	latest  gocv.Mat // the newest frame, number stats.Captured
	at      time.Time
	handed  uint64 // number of the last frame handed out
	stats   Stats
}

// Open checks cfg and prepares a Source; it does not open the camera (Run
// does). A nil log discards.
func Open(cfg Config, log *slog.Logger) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kind := cfg.Kind()
	name := redact(cfg.Source)
	seekable := kind == File || kind == Folder
	return &Source{
		cfg:      cfg,
		kind:     kind,
		name:     name,
		log:      log.With("source", name),
		paced:    seekable && cfg.Realtime,
		lossless: seekable && !cfg.Realtime,
		fresh:    make(chan struct{}, 1),
		taken:    make(chan struct{}, 1),
		done:     make(chan struct{}),
	}, nil
}

// Kind reports what the source is.
func (s *Source) Kind() Kind { return s.kind }

// Run reads frames until ctx is done (it returns nil) or, with ExitAtEnd, a
// file or folder ends (it returns io.EOF, after the consumer has taken the
// last frame unless in realtime mode). A source that fails to open or stops
// delivering is closed, logged and reopened after a backoff that doubles
// from MinBackoff to MaxBackoff and starts again once frames flow. Run
// closes everything it opened before it returns, and may be called once.
//
// Cancellation is noticed between frames: a stream whose Read blocks holds
// Run until OpenCV's own read timeout.
func (s *Source) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return fmt.Errorf("camera %s: Run called twice", s.name)
	}
	s.ran = true
	s.latest = gocv.NewMat()
	s.mu.Unlock()

	work := gocv.NewMat()
	err := s.run(ctx, &work)
	work.Close()

	s.mu.Lock()
	if s.stats.Captured > s.handed {
		s.stats.Dropped++ // the consumer never took the last frame
	}
	s.stopped = true
	s.stats.Connected = false
	if errors.Is(err, io.EOF) {
		s.endErr = fmt.Errorf("camera %s: %w", s.name, io.EOF)
	} else {
		s.endErr = fmt.Errorf("camera %s: %w", s.name, ErrStopped)
	}
	s.latest.Close()
	s.mu.Unlock()
	close(s.done)
	return err
}

// run is Run's reconnect loop. work is the Mat frames are read into; it is
// swapped with s.latest as frames are published.
func (s *Source) run(ctx context.Context, work *gocv.Mat) error {
	backoff := s.cfg.MinBackoff
	skipped := make(map[string]time.Time) // folder entries already reported
	failing := false
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			s.mu.Lock()
			s.stats.Reconnects++
			s.mu.Unlock()
		}
		n, err := s.session(ctx, work, skipped, attempt == 0 || failing)
		if ctx.Err() != nil {
			return nil
		}
		if n > 0 {
			backoff = s.cfg.MinBackoff
			failing = false
		}
		delay := backoff
		backoff = min(2*backoff, s.cfg.MaxBackoff)

		switch {
		case errors.Is(err, io.EOF) && s.cfg.ExitAtEnd:
			if s.lossless && !s.waitTaken(ctx) {
				return nil
			}
			s.log.Info("camera ended", "kind", s.kind, "frames", n)
			return io.EOF
		case errors.Is(err, io.EOF) && n > 0:
			s.log.Info("camera ended, restarting", "kind", s.kind, "frames", n, "restart_in", delay)
		default:
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%s: %s has no frames", s.name, s.kind)
			}
			failing = true
			s.mu.Lock()
			s.stats.LastError = err.Error()
			s.mu.Unlock()
			s.log.Warn("camera failed", "err", err, "attempt", attempt+1, "retry_in", delay)
		}
		if !sleep(ctx, delay) {
			return nil
		}
	}
}

// session opens the source once and publishes its frames until it ends,
// fails or ctx is done. It returns how many frames it published and why it
// stopped (io.EOF: a file or folder ended).
func (s *Source) session(ctx context.Context, work *gocv.Mat, skipped map[string]time.Time, announce bool) (int, error) {
	r, err := s.open(skipped)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	s.setConnected(true)
	defer s.setConnected(false)

	var p *pacer
	if s.paced {
		p = newPacer(r.FPS())
		defer p.stop()
	}
	if announce {
		if p != nil {
			s.log.Info("camera open", "kind", s.kind, "fps", p.fps)
		} else {
			s.log.Info("camera open", "kind", s.kind)
		}
	}
	n := 0
	for ctx.Err() == nil {
		if err := r.Read(ctx, work); err != nil {
			return n, err
		}
		if p != nil && !p.wait(ctx) {
			break
		}
		if !s.publish(ctx, work, time.Now()) {
			break
		}
		n++
	}
	return n, nil
}

func (s *Source) setConnected(v bool) {
	s.mu.Lock()
	s.stats.Connected = v
	s.mu.Unlock()
}

// publish makes frame the newest frame, taking the old newest Mat in
// exchange for reuse. A lossless source first waits until the consumer has
// taken the previous frame. It reports false if ctx ended the wait.
func (s *Source) publish(ctx context.Context, frame *gocv.Mat, at time.Time) bool {
	s.mu.Lock()
	for s.lossless && s.stats.Captured > s.handed {
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return false
		case <-s.taken:
		}
		s.mu.Lock()
	}
	if s.stats.Captured > s.handed {
		s.stats.Dropped++
	}
	*frame, s.latest = s.latest, *frame
	s.stats.Captured++
	s.at = at
	s.mu.Unlock()
	select {
	case s.fresh <- struct{}{}:
	default:
	}
	return true
}

// waitTaken waits until the consumer has taken the newest frame; false if
// ctx ended the wait.
func (s *Source) waitTaken(ctx context.Context) bool {
	for {
		s.mu.Lock()
		pending := s.stats.Captured > s.handed
		s.mu.Unlock()
		if !pending {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-s.taken:
		}
	}
}

// Next blocks until a frame newer than the last one it handed out is
// available and copies it into dst, reusing dst's buffer when the size
// matches (dst must come from gocv.NewMat or the like; a zero Mat is
// refused). The copy is the caller's to keep until the next call. It
// returns the frame's sequence number (1 for the first frame, counting on
// across reconnects) and the time it was captured. Frames the consumer was
// too slow for are dropped and counted in Stats.
//
// Next returns ctx's error when ctx is done, and once Run has returned an
// error wrapping io.EOF (a file or folder ended with ExitAtEnd) or
// ErrStopped. Before Run starts, Next waits.
func (s *Source) Next(ctx context.Context, dst *gocv.Mat) (seq uint64, at time.Time, err error) {
	if dst.Ptr() == nil {
		return 0, time.Time{}, fmt.Errorf("camera %s: Next needs a Mat made by gocv.NewMat, not a zero Mat", s.name)
	}
	for {
		if err := ctx.Err(); err != nil {
			return 0, time.Time{}, err
		}
		s.mu.Lock()
		if s.stopped {
			err := s.endErr
			s.mu.Unlock()
			return 0, time.Time{}, err
		}
		if seq := s.stats.Captured; seq > s.handed {
			s.latest.CopyTo(dst)
			s.handed = seq
			s.stats.Delivered++
			at := s.at
			s.mu.Unlock()
			select {
			case s.taken <- struct{}{}:
			default:
			}
			return seq, at, nil
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-s.fresh:
		case <-s.done:
		}
	}
}

// Stats reports the counters; it is safe from any goroutine.
func (s *Source) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// frameReader is one opening of a source.
type frameReader interface {
	// Read decodes the next frame into dst. It returns io.EOF when a file
	// or folder ends, and another error, naming the source, when a device
	// or stream stops delivering.
	Read(ctx context.Context, dst *gocv.Mat) error
	// FPS is the frame rate to pace at in realtime mode; 0 if unknown.
	FPS() float64
	Close() error
}

// open opens the source once.
func (s *Source) open(skipped map[string]time.Time) (frameReader, error) {
	src := s.cfg.Source
	switch s.kind {
	case Folder:
		return openFolder(src, s.cfg.FolderFPS, s.cfg.MaxPixels, skipped, s.log)
	case File:
		v, err := OpenVideoFile(src)
		if err != nil {
			return nil, err // names the file
		}
		return &captureReader{c: v, name: s.name, eof: true, fps: v.FPS()}, nil
	}

	var vc *gocv.VideoCapture
	var err error
	switch {
	case s.kind == Device && isDeviceIndex(src):
		idx, _ := strconv.Atoi(src)
		vc, err = gocv.VideoCaptureDevice(idx)
	case s.kind == Device:
		if _, serr := os.Stat(src); serr != nil {
			if errors.Is(serr, fs.ErrNotExist) {
				return nil, fmt.Errorf("%s: no such device", src)
			}
			return nil, serr // *PathError names the device
		}
		vc, err = gocv.VideoCaptureFileWithAPI(src, gocv.VideoCaptureV4L2)
	default:
		// FFmpeg only: with any backend, OpenCV's image-sequence backend
		// tries the URL last and prints it, password and all, to stderr.
		vc, err = gocv.VideoCaptureFileWithAPI(src, gocv.VideoCaptureFFmpeg)
	}
	if err != nil || !vc.IsOpened() {
		// gocv returns a VideoCapture to close even when opening fails;
		// its error repeats the URL with any password, so it is not used.
		if vc != nil {
			vc.Close()
		}
		return nil, fmt.Errorf("%s: cannot open %s", s.name, s.kind)
	}
	return &captureReader{c: vc, name: s.name}, nil
}

// captureReader reads an OpenCV VideoCapture (or a VideoFile).
type captureReader struct {
	c interface {
		Read(*gocv.Mat) bool
		Close() error
	}
	name string
	eof  bool // a failed Read is the end of a file
	fps  float64
}

func (r *captureReader) Read(_ context.Context, dst *gocv.Mat) error {
	if r.c.Read(dst) && !dst.Empty() {
		return nil
	}
	if r.eof {
		return io.EOF
	}
	return fmt.Errorf("%s: stopped delivering frames", r.name)
}

func (r *captureReader) FPS() float64 { return r.fps }
func (r *captureReader) Close() error { return r.c.Close() }

// pacer spaces frames at a fixed rate by sleeping until each frame's
// deadline, so that time spent decoding does not add up as drift. A reader
// more than a frame behind starts afresh rather than bursting to catch up.
type pacer struct {
	fps    float64
	period time.Duration
	next   time.Time
	timer  *time.Timer
}

func newPacer(fps float64) *pacer {
	if math.IsNaN(fps) || fps <= 0 || fps > 1000 {
		fps = fallbackFPS
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &pacer{fps: fps, period: time.Duration(float64(time.Second) / fps), timer: t}
}

// wait sleeps until the next frame is due; false if ctx ended the sleep.
func (p *pacer) wait(ctx context.Context) bool {
	now := time.Now()
	if p.next.IsZero() || now.Sub(p.next) > p.period {
		p.next = now
	}
	if d := p.next.Sub(now); d > 0 {
		p.timer.Reset(d)
		select {
		case <-ctx.Done():
			return false
		case <-p.timer.C:
		}
	}
	p.next = p.next.Add(p.period)
	return true
}

func (p *pacer) stop() { p.timer.Stop() }

// sleep waits for d; false if ctx ended the wait first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
