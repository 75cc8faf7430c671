//go:build matprofile

package camera

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// TestMatsSourceClosesAll proves, with gocv's Mat profile (build tag
// matprofile), that a Source holds a fixed number of Mats while it runs,
// whatever the number of frames, and that none is left once Run has
// returned and the consumer has closed its own.
func TestMatsSourceClosesAll(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(t *testing.T) Config
		take int  // frames the consumer takes before cancelling; -1: until Next fails
		slow bool // sleep between frames
	}{
		{"file to the end", func(t *testing.T) Config {
			return Config{Source: clipPath(t, "cap13_edit2.mp4"), ExitAtEnd: true}
		}, -1, false},
		{"file replayed", func(t *testing.T) Config {
			return Config{Source: shortClip(t, 30), MinBackoff: time.Millisecond}
		}, 70, false},
		{"realtime file, slow consumer", func(t *testing.T) Config {
			return Config{Source: clipPath(t, "cap13_edit2.mp4"), Realtime: true}
		}, 5, true},
		{"file nobody reads", func(t *testing.T) Config {
			return Config{Source: clipPath(t, "cap13_edit2.mp4")}
		}, 0, false},
		{"folder to the end", func(t *testing.T) Config {
			return Config{Source: makeFolder(t, []folderFile{
				{name: "a.jpg", from: lfwImage(t, "Aaron_Eckhart_0001")},
				{name: "b.jpg", from: filepath.Join(sharedData(t), "fixtures", "live_exif6.jpg")},
				{name: "c.txt", data: "x"},
			}), ExitAtEnd: true}
		}, -1, false},
		{"folder replayed, realtime", func(t *testing.T) Config {
			return Config{Source: makeFolder(t, []folderFile{
				{name: "a.jpg", from: lfwImage(t, "Aaron_Eckhart_0001")},
				{name: "b.jpg", from: lfwImage(t, "AJ_Cook_0001")},
			}), Realtime: true, FolderFPS: 200, MinBackoff: time.Millisecond}
		}, 6, true},
		{"missing device", func(t *testing.T) Config {
			return Config{Source: "/dev/video99", MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}
		}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg(t) // before counting: shortClip opens Mats of its own
			before := gocv.MatProfile.Count()
			s := openSource(t, cfg, nil)
			r := startRun(t, s)
			ctx := testContext(t)
			frame := gocv.NewMat()
			for i := 0; tt.take < 0 || i < tt.take; i++ {
				if _, _, err := s.Next(ctx, &frame); err != nil {
					if tt.take >= 0 {
						t.Fatal(err)
					}
					break
				}
				if tt.slow {
					time.Sleep(20 * time.Millisecond)
				}
				// The capture side holds two Mats and the consumer one; a
				// folder briefly holds a third while it swaps in an image.
				if n := gocv.MatProfile.Count(); n > before+4 {
					t.Fatalf("frame %d: %d Mats live, %d before Open", i+1, n, before)
				}
			}
			if tt.take == 0 {
				waitFor(t, "the source to start", func() bool {
					st := s.Stats()
					return st.Captured > 0 || st.Reconnects > 2
				})
			}
			r.stop()
			frame.Close()
			if n := gocv.MatProfile.Count(); n != before {
				t.Errorf("%d Mats live after Run returned, %d before Open", n, before)
			}
			// Next after Run touches no Mat.
			m := gocv.NewMat()
			s.Next(context.Background(), &m)
			m.Close()
			if n := gocv.MatProfile.Count(); n != before {
				t.Errorf("%d Mats live after a late Next, %d before Open", n, before)
			}
		})
	}
}
