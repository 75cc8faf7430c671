package detect

import (
	"image"
	"math"
	"testing"
)

func TestIoU(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b Box
		want float32
	}{
		{"same", Box{0, 0, 10, 10}, Box{0, 0, 10, 10}, 1},
		{"disjoint", Box{0, 0, 10, 10}, Box{20, 20, 30, 30}, 0},
		{"touching", Box{0, 0, 10, 10}, Box{10, 0, 20, 10}, 0},
		{"half overlap", Box{0, 0, 10, 10}, Box{5, 0, 15, 10}, 50.0 / 150},
		{"inside", Box{0, 0, 10, 10}, Box{2, 2, 7, 7}, 25.0 / 100},
		{"empty", Box{0, 0, 0, 0}, Box{0, 0, 0, 0}, 0},
	} {
		if got := IoU(tc.a, tc.b); math.Abs(float64(got-tc.want)) > 1e-6 {
			t.Errorf("%s: IoU = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestNMS(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []Detection
		iou  float32
		want []float32 // scores kept, in order
	}{
		{"empty", nil, 0.3, nil},
		{
			"overlapping pair keeps the better",
			[]Detection{{Box{0, 0, 10, 10}, 0.8}, {Box{1, 1, 11, 11}, 0.9}},
			0.3, []float32{0.9},
		},
		{
			"two faces and a duplicate of each",
			[]Detection{
				{Box{0, 0, 10, 10}, 0.75}, {Box{100, 100, 120, 120}, 0.95},
				{Box{1, 0, 11, 10}, 0.99}, {Box{101, 101, 121, 121}, 0.7},
			},
			0.3, []float32{0.99, 0.95},
		},
		{
			// IoU of these is 50/150 = 0.33: kept at 0.35, dropped at 0.3.
			"overlap just under the limit is kept",
			[]Detection{{Box{0, 0, 10, 10}, 0.9}, {Box{5, 0, 15, 10}, 0.8}},
			0.35, []float32{0.9, 0.8},
		},
		{
			"overlap just over the limit is dropped",
			[]Detection{{Box{0, 0, 10, 10}, 0.9}, {Box{5, 0, 15, 10}, 0.8}},
			0.3, []float32{0.9},
		},
		{
			// A suppressed box must not suppress others: c overlaps b, not a.
			"chain: suppressed box does not suppress",
			[]Detection{{Box{0, 0, 10, 10}, 0.9}, {Box{4, 0, 14, 10}, 0.8}, {Box{9, 0, 19, 10}, 0.7}},
			0.3, []float32{0.9, 0.7},
		},
	} {
		got := NMS(append([]Detection(nil), tc.in...), tc.iou)
		if len(got) != len(tc.want) {
			t.Errorf("%s: kept %d boxes %v, want %d", tc.name, len(got), got, len(tc.want))
			continue
		}
		for i := range got {
			if got[i].Score != tc.want[i] {
				t.Errorf("%s: box %d score %v, want %v", tc.name, i, got[i].Score, tc.want[i])
			}
		}
	}
}

func TestNMSAllocatesNothing(t *testing.T) {
	dets := make([]Detection, 50)
	for i := range dets {
		dets[i] = Detection{Box{float32(i), 0, float32(i) + 10, 10}, float32(i) / 50}
	}
	work := make([]Detection, len(dets))
	if n := testing.AllocsPerRun(100, func() { copy(work, dets); NMS(work, 0.3) }); n != 0 {
		t.Errorf("NMS allocates %v times per call", n)
	}
}

func TestFivePoints(t *testing.T) {
	var l Landmarks
	for i := range l {
		l[i] = Point{float32(i), float32(1000 + i)}
	}
	got := l.FivePoints()
	want := [5]Point{
		{(37 + 38 + 40 + 41) / 4.0, 1000 + (37+38+40+41)/4.0},
		{(43 + 44 + 46 + 47) / 4.0, 1000 + (43+44+46+47)/4.0},
		{30, 1030},
		{(48 + 60) / 2.0, 1000 + (48+60)/2.0},
		{(54 + 64) / 2.0, 1000 + (54+64)/2.0},
	}
	if got != want {
		t.Errorf("FivePoints = %v, want %v", got, want)
	}
}

func TestSquare(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    Box
		w, h int
		want image.Rectangle
	}{
		{"tall box widens about its centre", Box{40, 10, 60, 50}, 200, 200, image.Rect(30, 10, 70, 50)},
		{"wide box narrows", Box{0, 10, 100, 50}, 200, 200, image.Rect(30, 10, 70, 50)},
		{"clipped at the left", Box{0, 10, 10, 50}, 200, 200, image.Rect(0, 10, 25, 50)},
		{"clipped at the bottom", Box{40, 180, 60, 220}, 200, 200, image.Rect(30, 180, 70, 200)},
	} {
		if got := tc.b.Square(tc.w, tc.h); got != tc.want {
			t.Errorf("%s: Square = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLivenessCrop(t *testing.T) {
	for _, tc := range []struct {
		name   string
		square image.Rectangle
		w, h   int
		want   image.Rectangle
	}{
		// 2.7 × 20 = 54 about the centre (100, 100).
		{"room for the full 2.7×", image.Rect(90, 90, 110, 110), 400, 300, image.Rect(73, 73, 128, 128)},
		// Shifted right, not shrunk, at the left edge.
		{"shifted inside at the left", image.Rect(0, 90, 20, 110), 400, 300, image.Rect(0, 73, 55, 128)},
		// 2.7 × 150 = 405 does not fit 300 rows: scale capped at 299/150.
		{"capped by the frame", image.Rect(100, 50, 250, 200), 400, 300, image.Rect(25, 0, 325, 300)},
	} {
		got := LivenessCrop(tc.square, tc.w, tc.h)
		if got != tc.want {
			t.Errorf("%s: LivenessCrop = %v, want %v", tc.name, got, tc.want)
		}
		if !got.In(image.Rect(0, 0, tc.w, tc.h)) {
			t.Errorf("%s: crop %v leaves the %dx%d frame", tc.name, got, tc.w, tc.h)
		}
	}
}

func TestYaw(t *testing.T) {
	eyes := func(nose float32) [5]Point {
		return [5]Point{{10, 10}, {30, 10}, {nose, 20}, {12, 30}, {28, 30}}
	}
	for _, tc := range []struct {
		nose, want float32
	}{{20, 0}, {10, -1}, {30, 1}, {25, 0.5}, {50, 1}} {
		if got := Yaw(eyes(tc.nose)); math.Abs(float64(got-tc.want)) > 1e-6 {
			t.Errorf("Yaw with nose at %v = %v, want %v", tc.nose, got, tc.want)
		}
	}
}

func TestGreyStats(t *testing.T) {
	const n = 8
	flat := make([]uint8, n*n)
	for i := range flat {
		flat[i] = 100
	}
	if m, v := greyStats(flat, n); m != 100 || v != 0 {
		t.Errorf("flat image: mean %v, sharpness %v; want 100, 0", m, v)
	}
	checker := make([]uint8, n*n)
	for i := range checker {
		if (i/n+i%n)%2 == 0 {
			checker[i] = 255
		}
	}
	if _, v := greyStats(checker, n); v < 1000 {
		t.Errorf("checkerboard sharpness %v, want a large value", v)
	}
}

func TestGates(t *testing.T) {
	g := DefaultGates()
	good := Quality{Size: 120, Sharpness: 500, Brightness: 120, Yaw: 0.1}
	if err := g.Check(good); err != nil {
		t.Fatalf("good face refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Quality)
	}{
		{"small", func(q *Quality) { q.Size = 10 }},
		{"blurred", func(q *Quality) { q.Sharpness = 1 }},
		{"dark", func(q *Quality) { q.Brightness = 5 }},
		{"bright", func(q *Quality) { q.Brightness = 250 }},
		{"turned", func(q *Quality) { q.Yaw = -0.9 }},
	} {
		q := good
		tc.mod(&q)
		if err := g.Check(q); err == nil {
			t.Errorf("%s face passed the gates", tc.name)
		}
	}
}
