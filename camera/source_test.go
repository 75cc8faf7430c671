package camera

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// hangGuard bounds every wait in these tests. It is no performance claim:
// it only turns a hang into a failure.
const hangGuard = 2 * time.Minute

const cap13Frames = 765

func clipPath(t testing.TB, name string) string {
	return filepath.Join(sharedData(t), "clips", name)
}

// logBuffer collects a Source's log lines; the capture goroutine writes
// while the test reads.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lines returns the log lines containing substr.
func (l *logBuffer) lines(substr string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return out
}

func openSource(t testing.TB, cfg Config, log *slog.Logger) *Source {
	t.Helper()
	s, err := Open(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runner owns one Run goroutine: the test's cleanup cancels it and waits.
type runner struct {
	t      testing.TB
	cancel context.CancelFunc
	done   chan error
	err    error
	ended  bool
}

func startRun(t testing.TB, s *Source) *runner {
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{t: t, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		r.wait()
	})
	return r
}

// wait returns Run's result.
func (r *runner) wait() error {
	r.t.Helper()
	if !r.ended {
		select {
		case r.err = <-r.done:
			r.ended = true
		case <-time.After(hangGuard):
			r.t.Fatalf("Run did not return within %v", hangGuard)
		}
	}
	return r.err
}

// stop cancels Run and returns its result.
func (r *runner) stop() error {
	r.t.Helper()
	r.cancel()
	return r.wait()
}

// waitFor polls cond until it holds; the hang guard fails the test.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	t.Cleanup(cancel)
	return ctx
}

// frameHash fingerprints a frame's size and pixels (CRC-32, which runs in
// assembly, so it stays quick under the race detector).
func frameHash(m *gocv.Mat) uint64 {
	size := uint64(m.Rows())<<48 | uint64(m.Cols())<<32
	return size ^ uint64(crc32.ChecksumIEEE(m.ToBytes()))
}

// clipHashes decodes a video directly and fingerprints its frames.
func clipHashes(t testing.TB, path string) []uint64 {
	t.Helper()
	v, err := OpenVideoFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	m := gocv.NewMat()
	defer m.Close()
	var hs []uint64
	for v.Read(&m) {
		hs = append(hs, frameHash(&m))
	}
	return hs
}

// shortClip writes the first n frames of cap13 to a new MJPG AVI in a
// temporary folder and returns its path.
func shortClip(t testing.TB, n int) string {
	t.Helper()
	v, err := OpenVideoFile(clipPath(t, "cap13_edit2.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	m := gocv.NewMat()
	defer m.Close()
	if !v.Read(&m) {
		t.Fatal("cap13: no first frame")
	}
	path := filepath.Join(t.TempDir(), "short.avi")
	w, err := gocv.VideoWriterFile(path, "MJPG", 25, m.Cols(), m.Rows(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !w.IsOpened() {
		t.Skip("this OpenCV cannot write MJPG AVI")
	}
	for i := 0; i < n; i++ {
		if i > 0 && !v.Read(&m) {
			t.Fatalf("cap13 has fewer than %d frames", n)
		}
		if err := w.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "clip.mp4")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"device index", Config{Source: "0"}, ""},
		{"device path that is absent", Config{Source: "/dev/video99"}, ""},
		{"rtsp url", Config{Source: "rtsp://cam.local:554/stream"}, ""},
		{"http url", Config{Source: "http://10.0.0.2/mjpg"}, ""},
		{"existing file", Config{Source: file}, ""},
		{"existing folder", Config{Source: dir, Realtime: true, FolderFPS: 2}, ""},
		{"all limits", Config{Source: "0", MinBackoff: time.Second, MaxBackoff: time.Second, MaxPixels: 1}, ""},
		{"empty", Config{}, "source is empty"},
		{"blank", Config{Source: "  "}, "source is empty"},
		{"missing file", Config{Source: filepath.Join(dir, "nope.mp4")}, "nope.mp4: no such file or folder"},
		{"missing folder", Config{Source: filepath.Join(dir, "nope", "")}, "no such file or folder"},
		{"negative fps", Config{Source: "0", FolderFPS: -1}, "folder fps -1"},
		{"NaN fps", Config{Source: dir, FolderFPS: nan()}, "folder fps NaN"},
		{"negative min backoff", Config{Source: "0", MinBackoff: -time.Second}, "min backoff -1s is negative"},
		{"negative max backoff", Config{Source: "0", MaxBackoff: -time.Second}, "max backoff -1s is negative"},
		{"min over max", Config{Source: "0", MinBackoff: 2 * time.Second, MaxBackoff: time.Second}, "min backoff 2s is longer than max backoff 1s"},
		{"negative max pixels", Config{Source: "0", MaxPixels: -5}, "max pixels -5"},
		{"url without host", Config{Source: "rtsp:///stream"}, "has no host"},
		{"bad url hides password", Config{Source: "rtsp://admin:hunter2@cam:port/x"}, "not a valid URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Validate accepted %+v, want an error with %q", tt.cfg, tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate: %q, want it to contain %q", err, tt.want)
			}
			if err != nil {
				if msg := err.Error(); strings.Contains(msg, "\n") || strings.Contains(msg, "hunter2") {
					t.Errorf("error %q is not one line without secrets", msg)
				}
				if _, oerr := Open(tt.cfg, nil); oerr == nil {
					t.Errorf("Open accepted a config Validate refused")
				}
			}
		})
	}
}

func nan() float64 { z := 0.0; return z / z }

func TestConfigKind(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		src  string
		want Kind
	}{
		{"", 0},
		{"0", Device},
		{"12", Device},
		{"/dev/video0", Device},
		{"/dev/v4l/by-id/usb-cam-video-index0", Device},
		{"rtsp://cam/stream", Stream},
		{"http://cam/mjpg", Stream},
		{"https://user:pw@cam/mjpg", Stream},
		{dir, Folder},
		{filepath.Join(dir, "clip.mp4"), File},
		{"clip.mp4", File},
		{"-1", File},
	}
	for _, tt := range tests {
		if got := (Config{Source: tt.src}).Kind(); got != tt.want {
			t.Errorf("Kind(%q) = %v, want %v", tt.src, got, tt.want)
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/dev/video0", "/dev/video0"},
		{"rtsp://cam/stream", "rtsp://cam/stream"},
		{"rtsp://admin:hunter2@cam:554/stream", "rtsp://admin:xxxxx@cam:554/stream"},
		{"rtsp://admin@cam/stream", "rtsp://admin@cam/stream"},
		{"rtsp://admin:hunter2@cam:port/x", "rtsp://xxxxx@cam:port/x"}, // unparsable port
	}
	for _, tt := range tests {
		if got := redact(tt.in); got != tt.want {
			t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestFileDeliversEveryFrame reads whole files out of realtime mode: every
// frame arrives once, in order, with the pixels a direct decode gives; then
// Run and Next report io.EOF.
func TestFileDeliversEveryFrame(t *testing.T) {
	tests := []struct {
		name   string
		path   func(t testing.TB) string
		frames int
		pause  time.Duration // the consumer's work per frame
	}{
		{"cap13", func(t testing.TB) string { return clipPath(t, "cap13_edit2.mp4") }, cap13Frames, 0},
		{"short avi", func(t testing.TB) string { return shortClip(t, 30) }, 30, 0},
		{"short avi, slow consumer", func(t testing.TB) string { return shortClip(t, 30) }, 30, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path(t)
			want := clipHashes(t, path)
			if len(want) != tt.frames {
				t.Fatalf("direct decode gave %d frames, want %d", len(want), tt.frames)
			}
			var logs logBuffer
			s := openSource(t, Config{Source: path, ExitAtEnd: true}, logs.logger())
			r := startRun(t, s)

			ctx := testContext(t)
			frame := gocv.NewMat()
			defer frame.Close()
			var n int
			var last time.Time
			var err error
			for {
				var seq uint64
				var at time.Time
				seq, at, err = s.Next(ctx, &frame)
				if err != nil {
					break
				}
				if seq != uint64(n+1) {
					t.Fatalf("frame %d: seq %d", n+1, seq)
				}
				if n >= len(want) {
					t.Fatalf("frame %d delivered; the file has %d", seq, len(want))
				}
				if frameHash(&frame) != want[n] {
					t.Fatalf("frame %d: pixels differ from a direct decode", seq)
				}
				if at.Before(last) {
					t.Fatalf("frame %d: capture time went back", seq)
				}
				last = at
				n++
				time.Sleep(tt.pause)
			}
			if !errors.Is(err, io.EOF) {
				t.Fatalf("Next after the last frame: %v, want io.EOF", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("Next's error %q does not name the file", err)
			}
			if n != tt.frames {
				t.Fatalf("delivered %d frames, want %d", n, tt.frames)
			}
			if err := r.wait(); err != io.EOF {
				t.Fatalf("Run: %v, want io.EOF", err)
			}
			want0 := Stats{Captured: uint64(n), Delivered: uint64(n)}
			if got := s.Stats(); got != want0 {
				t.Errorf("Stats = %+v, want %+v", got, want0)
			}
			if _, _, err := s.Next(ctx, &frame); !errors.Is(err, io.EOF) {
				t.Errorf("Next once more: %v, want io.EOF", err)
			}
		})
	}
}

// TestRealtimeFileDropsForSlowConsumer plays cap13 at 25 fps to a consumer
// that takes one frame every 200 ms.
func TestRealtimeFileDropsForSlowConsumer(t *testing.T) {
	s := openSource(t, Config{Source: clipPath(t, "cap13_edit2.mp4"), Realtime: true}, nil)
	start := time.Now()
	r := startRun(t, s)
	ctx := testContext(t)
	frame := gocv.NewMat()
	defer frame.Close()

	const take = 8
	var seqs []uint64
	for len(seqs) < take {
		seq, _, err := s.Next(ctx, &frame)
		if err != nil {
			t.Fatal(err)
		}
		if frame.Empty() || frame.Cols() != 400 || frame.Rows() != 300 {
			t.Fatalf("frame %d: %dx%d", seq, frame.Cols(), frame.Rows())
		}
		seqs = append(seqs, seq)
		time.Sleep(200 * time.Millisecond) // the slow consumer
	}
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v, want nil after cancel", err)
	}
	elapsed := time.Since(start)

	gap := false
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("seq went from %d to %d: %v", seqs[i-1], seqs[i], seqs)
		}
		gap = gap || seqs[i] > seqs[i-1]+1
	}
	if !gap {
		t.Errorf("no frame was skipped between deliveries: %v", seqs)
	}
	st := s.Stats()
	t.Logf("%+v over %v, seqs %v", st, elapsed, seqs)
	if st.Delivered != take || st.Dropped == 0 || st.Delivered+st.Dropped != st.Captured {
		t.Errorf("Stats = %+v: want Delivered %d, Dropped > 0, Delivered+Dropped = Captured", st, take)
	}
	// A paced file cannot capture faster than 25 fps; a slow machine only
	// captures fewer, so this bound does not depend on the machine's speed.
	if limit := uint64(elapsed/(40*time.Millisecond)) + 2; st.Captured > limit {
		t.Errorf("captured %d frames in %v: faster than 25 fps", st.Captured, elapsed)
	}
	if _, _, err := s.Next(ctx, &frame); !errors.Is(err, ErrStopped) {
		t.Errorf("Next after Run: %v, want ErrStopped", err)
	}
}

// TestFileRestartsWithoutExitAtEnd plays a 30-frame clip round and round.
func TestFileRestartsWithoutExitAtEnd(t *testing.T) {
	path := shortClip(t, 30)
	want := clipHashes(t, path)
	var logs logBuffer
	s := openSource(t, Config{Source: path, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}, logs.logger())
	r := startRun(t, s)
	ctx := testContext(t)
	frame := gocv.NewMat()
	defer frame.Close()
	const take = 75 // two and a half plays
	for i := range take {
		seq, _, err := s.Next(ctx, &frame)
		if err != nil {
			t.Fatal(err)
		}
		if seq != uint64(i+1) {
			t.Fatalf("frame %d: seq %d", i+1, seq)
		}
		if frameHash(&frame) != want[i%len(want)] {
			t.Fatalf("frame %d is not frame %d of the clip", seq, i%len(want)+1)
		}
	}
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := s.Stats()
	if st.Reconnects < 2 || st.Delivered != take || st.LastError != "" {
		t.Errorf("Stats = %+v: want Reconnects >= 2, Delivered %d, no error", st, take)
	}
	// Frames flowed before each end, so each restart waits MinBackoff.
	restarts := logs.lines("restarting")
	if len(restarts) < 2 {
		t.Errorf("%d restarts logged, want >= 2:\n%s", len(restarts), logs.String())
	}
	for _, line := range restarts {
		if !strings.Contains(line, " restart_in=1ms") {
			t.Errorf("restart after MinBackoff 1ms expected: %s", line)
		}
	}
}

// TestMissingDeviceRetried opens a camera that is not there.
func TestMissingDeviceRetried(t *testing.T) {
	for _, src := range []string{"/dev/video99", "99"} {
		t.Run(src, func(t *testing.T) {
			var logs logBuffer
			s := openSource(t, Config{Source: src, MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond}, logs.logger())
			r := startRun(t, s)

			// A consumer waiting when Run ends is released with ErrStopped.
			nextErr := make(chan error, 1)
			ctx := testContext(t)
			go func() {
				m := gocv.NewMat()
				defer m.Close()
				_, _, err := s.Next(ctx, &m)
				nextErr <- err
			}()

			waitFor(t, "4 reconnects", func() bool { return s.Stats().Reconnects >= 4 })
			st := s.Stats()
			if st.Connected || st.Captured != 0 || !strings.Contains(st.LastError, src) {
				t.Errorf("Stats = %+v: want not connected, nothing captured, LastError naming %s", st, src)
			}
			if err := r.stop(); err != nil {
				t.Fatalf("Run after cancel: %v, want nil", err)
			}
			select {
			case err := <-nextErr:
				if !errors.Is(err, ErrStopped) {
					t.Errorf("waiting Next: %v, want ErrStopped", err)
				}
			case <-time.After(hangGuard):
				t.Fatal("Next still waiting after Run returned")
			}

			// One line per failure, with the doubling, capped backoff.
			var delays []string
			re := regexp.MustCompile(`retry_in=(\S+)`)
			for _, line := range logs.lines("camera failed") {
				if !strings.Contains(line, src) {
					t.Errorf("log line does not name the source: %s", line)
				}
				if m := re.FindStringSubmatch(line); m != nil {
					delays = append(delays, m[1])
				}
			}
			if got, want := strings.Join(delays, " "), "10ms 20ms 40ms 40ms"; !strings.HasPrefix(got, want) {
				t.Errorf("retry delays %q, want them to start %q", got, want)
			}
			if n := uint64(len(delays)); n < st.Reconnects {
				t.Errorf("%d failures logged for %d reconnects", n, st.Reconnects)
			}
		})
	}
}

// TestStreamPasswordNeverShown fails to reach a stream whose URL holds a
// password; neither Stats nor the log may show it.
func TestStreamPasswordNeverShown(t *testing.T) {
	const src = "rtsp://admin:hunter2@127.0.0.1:1/door"
	var logs logBuffer
	s := openSource(t, Config{Source: src, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}, logs.logger())
	if s.Kind() != Stream {
		t.Fatalf("Kind = %v", s.Kind())
	}
	r := startRun(t, s)
	waitFor(t, "two failures", func() bool { return s.Stats().Reconnects >= 2 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := s.Stats()
	if !strings.Contains(st.LastError, "rtsp://admin:xxxxx@127.0.0.1:1/door: cannot open stream") {
		t.Errorf("LastError = %q", st.LastError)
	}
	if out := logs.String(); strings.Contains(out, "hunter2") || strings.Contains(st.LastError, "hunter2") || !strings.Contains(out, "camera failed") {
		t.Errorf("password shown, or failure not logged:\n%s", out)
	}
	m := gocv.NewMat()
	defer m.Close()
	if _, _, err := s.Next(context.Background(), &m); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Next after Run: %v", err)
	}
}

// TestVanishedFileRetried deletes a video while it plays and puts it back.
func TestVanishedFileRetried(t *testing.T) {
	clip := shortClip(t, 30)
	path := filepath.Join(t.TempDir(), "door.avi")
	data, err := os.ReadFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	s := openSource(t, Config{Source: path, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}, logs.logger())
	r := startRun(t, s)

	ctx, cancel := context.WithCancel(testContext(t))
	consumed := make(chan int, 1)
	go func() {
		m := gocv.NewMat()
		defer m.Close()
		n := 0
		for {
			if _, _, err := s.Next(ctx, &m); err != nil {
				consumed <- n
				return
			}
			n++
		}
	}()
	defer func() {
		cancel()
		<-consumed
	}()

	waitFor(t, "the first frame", func() bool { return s.Stats().Captured > 0 })
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the missing file to be retried", func() bool {
		st := s.Stats()
		return strings.Contains(st.LastError, path+": no such file") && !st.Connected && st.Reconnects >= 3
	})
	gone := s.Stats()
	if len(logs.lines("no such file")) == 0 {
		t.Errorf("the failure was not logged:\n%s", logs.String())
	}

	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the file to play again", func() bool { return s.Stats().Captured >= gone.Captured+30 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := s.Stats(); st.Reconnects <= gone.Reconnects {
		t.Errorf("Stats = %+v after recovery, %+v while gone", st, gone)
	}
}

// TestLosslessCancelWhileWaiting cancels a file source that waits for a
// consumer that never comes.
func TestLosslessCancelWhileWaiting(t *testing.T) {
	s := openSource(t, Config{Source: clipPath(t, "cap13_edit2.mp4"), ExitAtEnd: true}, nil)
	r := startRun(t, s)
	waitFor(t, "the first frame", func() bool { return s.Stats().Captured == 1 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := s.Stats(); st != (Stats{Captured: 1, Dropped: 1}) {
		t.Errorf("Stats = %+v: want the one waiting frame captured and dropped", st)
	}
}

func TestRunOnceAndNextContext(t *testing.T) {
	s := openSource(t, Config{Source: "/dev/video99", MinBackoff: time.Hour}, nil)
	m := gocv.NewMat()
	defer m.Close()

	var zero gocv.Mat
	if _, _, err := s.Next(context.Background(), &zero); err == nil || !strings.Contains(err.Error(), "zero Mat") {
		t.Errorf("Next into a zero Mat: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Next(ctx, &m); !errors.Is(err, context.Canceled) {
		t.Errorf("Next with a cancelled context: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, _, err := s.Next(ctx, &m); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next before Run: %v, want the context's deadline", err)
	}

	r := startRun(t, s)
	waitFor(t, "the first failure", func() bool { return s.Stats().LastError != "" })
	if err := s.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Run: %v", err)
	}
	if err := r.stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestNextDoesNotAllocate checks the steady state of a lossless file.
func TestNextDoesNotAllocate(t *testing.T) {
	s := openSource(t, Config{Source: clipPath(t, "cap13_edit2.mp4"), ExitAtEnd: true}, nil)
	r := startRun(t, s)
	defer r.stop()
	ctx := testContext(t)
	frame := gocv.NewMat()
	defer frame.Close()
	next := func() {
		if _, _, err := s.Next(ctx, &frame); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		next()
	}
	if n := testing.AllocsPerRun(200, next); n != 0 {
		t.Errorf("Next allocates %v times per frame", n)
	}
}

// BenchmarkNext takes frames from cap13 out of realtime mode; the file
// restarts at its end, so a reopening (a few allocations) is amortised over
// 765 frames.
func BenchmarkNext(b *testing.B) {
	s := openSource(b, Config{Source: clipPath(b, "cap13_edit2.mp4"), MinBackoff: time.Millisecond}, nil)
	r := startRun(b, s)
	defer r.stop()
	ctx := testContext(b)
	frame := gocv.NewMat()
	defer frame.Close()
	for range 10 {
		if _, _, err := s.Next(ctx, &frame); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Next(ctx, &frame); err != nil {
			b.Fatal(err)
		}
	}
}
