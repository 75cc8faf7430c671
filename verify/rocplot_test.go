package verify

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"strings"
	"testing"
)

// plotROC renders curves and decodes the result.
func plotROC(t *testing.T, curves ...Curve) image.Image {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteROCPNG(&buf, curves...); err != nil {
		t.Fatalf("WriteROCPNG: %v", err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("output is not a PNG: %v", err)
	}
	return img
}

func sameColor(a, b color.Color) bool {
	r1, g1, b1, a1 := a.RGBA()
	r2, g2, b2, a2 := b.RGBA()
	return r1 == r2 && g1 == g2 && b1 == b2 && a1 == a2
}

// pixelAt returns the pixel at plot coordinates (far, tar).
func pixelAt(img image.Image, far, tar float64) color.Color {
	return img.At(int(math.Round(farX(far))), int(math.Round(tarY(tar))))
}

// perfectROC is the ROC curve of a classifier that makes no mistakes.
func perfectROC() []ROCPoint {
	return []ROCPoint{{0, 0, math.Inf(1)}, {0, 1, 0.5}, {1, 1, 0.1}}
}

// chanceROC is the ROC curve of a coin toss.
func chanceROC() []ROCPoint {
	return []ROCPoint{{0, 0, math.Inf(1)}, {1e-4, 1e-4, 5}, {1e-3, 1e-3, 4}, {1e-2, 1e-2, 3}, {0.1, 0.1, 2}, {1, 1, 1}}
}

func TestWriteROCPNGSize(t *testing.T) {
	for _, curves := range [][]Curve{nil, {{Label: "perfect", Points: perfectROC()}}} {
		img := plotROC(t, curves...)
		if got := img.Bounds(); got != image.Rect(0, 0, 800, 600) {
			t.Errorf("%d curves: bounds %v, want 800x600", len(curves), got)
		}
		if !sameColor(img.At(2, 2), color.White) {
			t.Errorf("%d curves: corner pixel %v, want white background", len(curves), img.At(2, 2))
		}
	}
}

func TestWriteROCPNGCurves(t *testing.T) {
	img := plotROC(t,
		Curve{Label: "perfect", Points: perfectROC()},
		Curve{Label: "chance", Points: chanceROC()},
	)
	perfect, chance := curveColor(0), curveColor(1)
	if sameColor(perfect, chance) {
		t.Fatal("the first two curves share a colour")
	}
	tests := []struct {
		name     string
		far, tar float64
		want     color.Color
	}{
		// A perfect classifier runs up the left edge and along the top.
		{"perfect at left edge, bottom", 0, 0.05, perfect},
		{"perfect at left edge, middle", 0, 0.5, perfect},
		{"perfect at top, 1e-3", 1e-3, 1, perfect},
		{"perfect at top, 0.03", 0.03, 1, perfect},
		{"perfect at top, right", 0.9, 1, perfect},
		// Chance (TAR = FAR) bends up on a log axis, between points too.
		{"chance at 0.1", 0.1, 0.1, chance},
		{"chance at 0.5", 0.5, 0.5, chance},
		{"chance at 0.3", 0.3, 0.3, chance},
		{"chance at 0.01", 0.01, 0.01, chance},
		// Nowhere near either curve, nor on a grid line.
		{"empty middle", 0.005, 0.45, color.White},
		{"empty above chance", 0.05, 0.65, color.White},
	}
	for _, tt := range tests {
		if got := pixelAt(img, tt.far, tt.tar); !sameColor(got, tt.want) {
			t.Errorf("%s: pixel at FAR %v TAR %v is %v, want %v", tt.name, tt.far, tt.tar, got, tt.want)
		}
	}

	// The legend, at the bottom right, shows a swatch of each colour.
	legend := image.Rect(plotMaxX-300, plotMaxY-80, plotMaxX, plotMaxY)
	for i, want := range []color.Color{perfect, chance} {
		if !anyPixel(img, legend, want) {
			t.Errorf("legend has no swatch of curve %d's colour %v", i, want)
		}
	}
}

func TestWriteROCPNGText(t *testing.T) {
	img := plotROC(t)
	// Tick labels and axis titles are black text in the margins.
	margins := []struct {
		name string
		r    image.Rectangle
	}{
		{"FAR tick labels", image.Rect(plotMinX-20, plotMaxY+8, plotMaxX+20, plotMaxY+25)},
		{"FAR title", image.Rect(plotMinX, plotMaxY+30, plotMaxX, 600)},
		{"TAR tick labels", image.Rect(plotMinX-40, plotMinY, plotMinX-8, plotMaxY)},
		{"TAR title", image.Rect(0, plotMinY, 30, plotMaxY)},
	}
	for _, m := range margins {
		if !anyPixel(img, m.r, color.Black) {
			t.Errorf("%s: no text in %v", m.name, m.r)
		}
	}
}

// TestWriteROCPNGClipping checks that points off the axes stay in the plot.
func TestWriteROCPNGClipping(t *testing.T) {
	img := plotROC(t, Curve{Label: "wild", Points: []ROCPoint{
		{-1, -0.5, 0}, {1e-9, 0.3, 0}, {math.NaN(), 0.5, 0}, {1e-2, 2, 0}, {5, 1, 0},
	}})
	c := curveColor(0)
	outside := []image.Rectangle{
		image.Rect(0, 0, plotMinX, plotMaxY), // left margin, where the TAR labels are
		image.Rect(0, 0, 800, plotMinY),      // above the plot
		image.Rect(plotMaxX, 0, 800, 600),    // right of the plot
	}
	for _, r := range outside {
		if anyPixel(img, r, c) {
			t.Errorf("curve colour drawn outside the plot in %v", r)
		}
	}
	// The segment from FAR 1e-9 to 1e-2 crosses the left edge at a TAR
	// of about 0.3 + (1-0.3)*1e-4/1e-2 = 0.307.
	if got := pixelAt(img, 0, 0.307); !sameColor(got, c) {
		t.Errorf("left edge at TAR 0.307 is %v, want the curve", got)
	}
}

func anyPixel(img image.Image, r image.Rectangle, c color.Color) bool {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if sameColor(img.At(x, y), c) {
				return true
			}
		}
	}
	return false
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("pipe closed") }

func TestWriteROCPNGWriteError(t *testing.T) {
	err := WriteROCPNG(failWriter{}, Curve{Label: "x", Points: perfectROC()})
	if err == nil || !strings.Contains(err.Error(), "pipe closed") {
		t.Errorf("WriteROCPNG error = %v, want the writer's error", err)
	}
}

func TestShorten(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"eleven runes", 10, "eleven ..."},
		{"héllo wörld", 8, "héllo..."},
	}
	for _, tt := range tests {
		if got := shorten(tt.in, tt.n); got != tt.want {
			t.Errorf("shorten(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
