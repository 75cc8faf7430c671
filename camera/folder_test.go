package camera

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// folderFile is one file to put in a test folder: a copy of a shared image,
// or literal bytes.
type folderFile struct {
	name string
	from string // path of a file to copy; "" to write data
	data string
	dir  bool // make a subfolder instead
}

// makeFolder fills a new temporary folder; the shared data is copied to the
// test's temporary folder, never into the repository.
func makeFolder(t testing.TB, files []folderFile) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		var err error
		switch {
		case f.dir:
			err = os.Mkdir(p, 0o755)
		case f.from != "":
			err = os.WriteFile(p, readBytes(t, f.from), 0o644)
		default:
			err = os.WriteFile(p, []byte(f.data), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// imageHash fingerprints what ReadImage makes of path.
func imageHash(t testing.TB, path string) uint64 {
	t.Helper()
	m, err := ReadImage(path, DefaultMaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	return frameHash(&m)
}

func TestFolderSource(t *testing.T) {
	shared := sharedData(t)
	exif := filepath.Join(shared, "fixtures", "live_exif6.jpg")
	spoof := filepath.Join(shared, "spoof-dev", "live", "0001", "0001_00_00_01_0.jpg")
	tests := []struct {
		name  string
		files []folderFile
		want  []string // names of the files delivered, in order
		skips int      // log lines about skipped files
		sizes int      // distinct frame sizes among them
	}{
		{
			name: "3 LFW images and a text file",
			files: []folderFile{
				{name: "c.jpg", from: lfwImage(t, "AJ_Cook_0001")},
				{name: "a.jpg", from: lfwImage(t, "Aaron_Eckhart_0001")},
				{name: "notes.txt", data: "not a picture\n"},
				{name: "b.JPG", from: lfwImage(t, "AJ_Lamas_0001")},
			},
			want:  []string{"a.jpg", "b.JPG", "c.jpg"},
			skips: 1,
			sizes: 1,
		},
		{
			name: "sizes differ, EXIF applied",
			files: []folderFile{
				{name: "1.jpg", from: exif},
				{name: "2.jpg", from: lfwImage(t, "AJ_Cook_0001")},
				{name: "3.jpg", from: spoof},
			},
			want:  []string{"1.jpg", "2.jpg", "3.jpg"},
			sizes: 3,
		},
		{
			name: "corrupt image, folder, video",
			files: []folderFile{
				{name: "bad.jpg", data: "\xff\xd8\xff\xe0 truncated"},
				{name: "sub", dir: true},
				{name: "clip.mp4", data: "\x00\x00\x00\x18ftypmp42"},
				{name: "ok.jpg", from: lfwImage(t, "AJ_Cook_0001")},
			},
			want:  []string{"ok.jpg"},
			skips: 3,
			sizes: 1,
		},
		{name: "empty", files: nil, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := makeFolder(t, tt.files)
			var logs logBuffer
			s := openSource(t, Config{Source: dir, ExitAtEnd: true}, logs.logger())
			if s.Kind() != Folder {
				t.Fatalf("Kind = %v", s.Kind())
			}
			r := startRun(t, s)
			ctx := testContext(t)
			frame := gocv.NewMat()
			defer frame.Close()
			var got []uint64
			sizes := make(map[[2]int]bool)
			var err error
			for {
				var seq uint64
				if seq, _, err = s.Next(ctx, &frame); err != nil {
					break
				}
				if seq != uint64(len(got)+1) {
					t.Fatalf("frame %d has seq %d", len(got)+1, seq)
				}
				got = append(got, frameHash(&frame))
				sizes[[2]int{frame.Cols(), frame.Rows()}] = true
			}
			if !errors.Is(err, io.EOF) {
				t.Fatalf("Next at the end: %v, want io.EOF", err)
			}
			if err := r.wait(); err != io.EOF {
				t.Fatalf("Run: %v, want io.EOF", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d frames, want %d (%v)", len(got), len(tt.want), tt.want)
			}
			for i, name := range tt.want {
				if got[i] != imageHash(t, filepath.Join(dir, name)) {
					t.Errorf("frame %d is not %s as ReadImage decodes it", i+1, name)
				}
			}
			if len(sizes) != tt.sizes {
				t.Errorf("%d distinct frame sizes %v, want %d", len(sizes), sizes, tt.sizes)
			}
			if n := len(logs.lines("camera skipped file")); n != tt.skips {
				t.Errorf("%d skips logged, want %d:\n%s", n, tt.skips, logs.String())
			}
			if st := s.Stats(); st.Captured != uint64(len(tt.want)) || st.Delivered != st.Captured || st.Dropped != 0 {
				t.Errorf("Stats = %+v", st)
			}
		})
	}
}

// TestFolderAppliesEXIF shows that the EXIF fixture arrives turned upright,
// not as the sensor stored it.
func TestFolderAppliesEXIF(t *testing.T) {
	exif := filepath.Join(sharedData(t), "fixtures", "live_exif6.jpg")
	raw := gocv.IMRead(exif, gocv.IMReadColor|gocv.IMReadIgnoreOrientation)
	defer raw.Close()
	if raw.Empty() || raw.Rows() == raw.Cols() {
		t.Fatalf("fixture is %dx%d; the test needs a non-square image", raw.Cols(), raw.Rows())
	}
	dir := makeFolder(t, []folderFile{{name: "door.jpg", from: exif}})
	s := openSource(t, Config{Source: dir, ExitAtEnd: true}, nil)
	startRun(t, s)
	frame := gocv.NewMat()
	defer frame.Close()
	if _, _, err := s.Next(testContext(t), &frame); err != nil {
		t.Fatal(err)
	}
	if frame.Cols() != raw.Rows() || frame.Rows() != raw.Cols() {
		t.Errorf("frame is %dx%d, stored image %dx%d: orientation 6 should swap them", frame.Cols(), frame.Rows(), raw.Cols(), raw.Rows())
	}
}

// TestFolderReplays plays a folder round and round: every pass yields the
// images in order, and a skipped file is reported once, not every pass.
func TestFolderReplays(t *testing.T) {
	dir := makeFolder(t, []folderFile{
		{name: "a.jpg", from: lfwImage(t, "Aaron_Eckhart_0001")},
		{name: "b.jpg", from: lfwImage(t, "AJ_Cook_0001")},
		{name: "readme.txt", data: "x"},
	})
	want := []uint64{imageHash(t, filepath.Join(dir, "a.jpg")), imageHash(t, filepath.Join(dir, "b.jpg"))}
	var logs logBuffer
	s := openSource(t, Config{Source: dir, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}, logs.logger())
	r := startRun(t, s)
	ctx := testContext(t)
	frame := gocv.NewMat()
	defer frame.Close()
	const take = 7
	for i := range take {
		seq, _, err := s.Next(ctx, &frame)
		if err != nil {
			t.Fatal(err)
		}
		if seq != uint64(i+1) || frameHash(&frame) != want[i%2] {
			t.Fatalf("frame %d (seq %d) is not image %d", i+1, seq, i%2+1)
		}
	}
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := s.Stats(); st.Reconnects < 3 || st.Delivered != take || st.LastError != "" {
		t.Errorf("Stats = %+v: want Reconnects >= 3, Delivered %d, no error", st, take)
	}
	if lines := logs.lines("camera skipped file"); len(lines) != 1 || !strings.Contains(lines[0], "readme.txt") {
		t.Errorf("skips logged: %q, want one naming readme.txt", lines)
	}
}

// TestFolderRealtime paces a folder at FolderFPS. Frames cannot come
// sooner than their deadlines however busy the machine, so the elapsed
// time has a lower bound; there is no upper bound.
func TestFolderRealtime(t *testing.T) {
	dir := makeFolder(t, []folderFile{
		{name: "a.jpg", from: lfwImage(t, "Aaron_Eckhart_0001")},
		{name: "b.jpg", from: lfwImage(t, "AJ_Cook_0001")},
		{name: "c.jpg", from: lfwImage(t, "AJ_Lamas_0001")},
	})
	s := openSource(t, Config{Source: dir, Realtime: true, FolderFPS: 20, ExitAtEnd: true}, nil)
	start := time.Now()
	r := startRun(t, s)
	ctx := testContext(t)
	frame := gocv.NewMat()
	defer frame.Close()
	var times []time.Time
	for {
		_, at, err := s.Next(ctx, &frame)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
		times = append(times, at)
	}
	if err := r.wait(); err != io.EOF {
		t.Fatalf("Run: %v, want io.EOF", err)
	}
	st := s.Stats()
	if st.Captured != 3 || st.Delivered+st.Dropped != st.Captured || uint64(len(times)) != st.Delivered {
		t.Errorf("Stats = %+v, %d frames received", st, len(times))
	}
	if len(times) > 1 {
		if d := times[len(times)-1].Sub(times[0]); d < 50*time.Millisecond*time.Duration(len(times)-1)-time.Millisecond {
			t.Errorf("frames %v apart, want at least 50 ms each at 20 fps", d)
		}
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("3 frames at 20 fps took %v, want at least 100 ms", d)
	}
}

// TestFolderVanishes removes the folder while the source plays it.
func TestFolderVanishes(t *testing.T) {
	parent := makeFolder(t, nil)
	dir := filepath.Join(parent, "frames")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.jpg"), readBytes(t, lfwImage(t, "AJ_Cook_0001")), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	s := openSource(t, Config{Source: dir, Realtime: true, FolderFPS: 100, MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}, logs.logger())
	r := startRun(t, s)
	waitFor(t, "a frame", func() bool { return s.Stats().Captured > 0 })
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the folder to be retried", func() bool {
		st := s.Stats()
		return strings.Contains(st.LastError, dir+": no such folder") && st.Reconnects >= 4
	})
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := len(logs.lines("no such folder")); n == 0 {
		t.Errorf("failure not logged:\n%s", logs.String())
	}
}
