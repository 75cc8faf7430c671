//go:build matprofile

package verify_test

import (
	"path/filepath"
	"testing"

	"github.com/facegate/facegate/camera"
	"github.com/facegate/facegate/verify"
	"gocv.io/x/gocv"
)

// TestMatsPipelineClosesAll proves, with gocv's Mat profile (build tag
// matprofile), that a frame leaves no Mat behind and that Close frees every
// Mat the pipeline made.
func TestMatsPipelineClosesAll(t *testing.T) {
	before := gocv.MatProfile.Count()
	p, err := verify.Open(rt, files, 2)
	if err != nil {
		t.Fatal(err)
	}
	v, err := camera.OpenVideoFile(filepath.Join(shared, "clips", "cap13_edit2.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	frame := gocv.NewMat()
	v.Read(&frame)
	analyzeAll(t, p, frame)
	afterOne := gocv.MatProfile.Count()
	for i := 0; i < 20 && v.Read(&frame); i++ {
		analyzeAll(t, p, frame)
	}
	if n := gocv.MatProfile.Count(); n != afterOne {
		t.Errorf("20 more frames changed the live Mats from %d to %d: a Mat leaks per frame", afterOne, n)
	}
	img, err := camera.ReadImage(filepath.Join(shared, "fixtures", "live_exif6.jpg"), camera.DefaultMaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.EmbedOne(img, verify.Central); err != nil {
		t.Fatal(err)
	}
	img.Close()
	frame.Close()
	v.Close()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if n := gocv.MatProfile.Count(); n != before {
		t.Errorf("%d Mats live after Close, %d before Open", n, before)
	}
}
