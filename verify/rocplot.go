package verify

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Curve is one labelled ROC curve to plot.
type Curve struct {
	Label  string
	Points []ROCPoint
}

// ROC plot geometry, in pixels.
const (
	rocWidth, rocHeight = 800, 600
	minLog10FAR         = -4 // left edge of the FAR axis, 1e-4
	curveRadius         = 1  // curves are 2*curveRadius+1 pixels wide
	maxLabelLen         = 40 // legend labels are cut to this many runes
)

// The plot area, outside which curves are clipped. The axes are drawn
// just outside it so that curves at TAR 0 and at the left edge stay
// visible.
const plotMinX, plotMinY, plotMaxX, plotMaxY = 80, 20, 780, 530

func plotArea() image.Rectangle { return image.Rect(plotMinX, plotMinY, plotMaxX, plotMaxY) }

// curveColor returns the colour of the i-th curve, from matplotlib's
// "tab10" palette, which stays tellable apart in print and for most
// colour-blind readers.
func curveColor(i int) color.RGBA {
	palette := [...]color.RGBA{
		{31, 119, 180, 255}, {214, 39, 40, 255}, {44, 160, 44, 255}, {255, 127, 14, 255},
		{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255},
		{188, 189, 34, 255}, {23, 190, 207, 255},
	}
	return palette[i%len(palette)]
}

// gridGray is the grey level of the grid and the legend border.
const gridGray = 220

// WriteROCPNG draws the curves as an 800x600 PNG: TAR from 0 to 1 against
// FAR on a log scale from 1e-4 to 1. Points with FAR below 1e-4, including
// FAR 0, are drawn at the left edge; other points off the axes are drawn
// at the nearest edge and NaN points are skipped.
//
// The TAR axis always spans 0 to 1, so that plots of different runs can
// be compared at a glance. Curves take colours from a fixed palette of
// ten, in order, and are listed in a legend at the bottom right, which
// only a curve near chance level passes through.
func WriteROCPNG(w io.Writer, curves ...Curve) error {
	img := image.NewRGBA(image.Rect(0, 0, rocWidth, rocHeight))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	drawROCAxes(img)
	for i, c := range curves {
		drawROCCurve(img, c.Points, curveColor(i))
	}
	drawROCLegend(img, curves)
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("verify: writing ROC PNG: %w", err)
	}
	return nil
}

// farX returns the column of a FAR value, clamping it to the axis.
func farX(far float64) float64 {
	l := float64(minLog10FAR)
	if far > math.Pow(10, minLog10FAR) { // false for NaN too
		l = min(math.Log10(far), 0)
	}
	return plotMinX + (l-minLog10FAR)/-minLog10FAR*(plotMaxX-plotMinX-1)
}

// tarY returns the row of a TAR value, clamping it to the axis.
func tarY(tar float64) float64 {
	tar = min(max(tar, 0), 1)
	return plotMaxY - 1 - tar*(plotMaxY-plotMinY-1)
}

func drawROCAxes(img *image.RGBA) {
	face := basicfont.Face7x13
	r := plotArea()
	for i := 0; i <= 10; i++ {
		tar := float64(i) / 10
		y := int(math.Round(tarY(tar)))
		fill(img, image.Rect(r.Min.X, y, r.Max.X, y+1), color.Gray{gridGray})
		fill(img, image.Rect(r.Min.X-6, y, r.Min.X-1, y+1), color.Black)
		label := strconv.FormatFloat(tar, 'f', 1, 64)
		drawText(img, label, r.Min.X-8-textWidth(label), y+face.Ascent/2-1, color.Black)
	}
	for d := minLog10FAR; d <= 0; d++ {
		x := int(math.Round(farX(math.Pow(10, float64(d)))))
		fill(img, image.Rect(x, r.Min.Y, x+1, r.Max.Y), color.Gray{gridGray})
		fill(img, image.Rect(x, r.Max.Y+1, x+1, r.Max.Y+6), color.Black)
		label := decadeLabel(d)
		drawText(img, label, x-textWidth(label)/2, r.Max.Y+8+face.Ascent, color.Black)
	}
	fill(img, image.Rect(r.Min.X-1, r.Min.Y, r.Min.X, r.Max.Y+1), color.Black)
	fill(img, image.Rect(r.Min.X-1, r.Max.Y, r.Max.X, r.Max.Y+1), color.Black)

	xLabel := "False accept rate (FAR, log scale)"
	drawText(img, xLabel, r.Min.X+(r.Dx()-textWidth(xLabel))/2, r.Max.Y+48, color.Black)
	yLabel := "True accept rate (TAR)"
	drawTextUp(img, yLabel, 16, r.Min.Y+(r.Dy()+textWidth(yLabel))/2, color.Black)
}

// decadeLabel formats 10^d the way a reader would write it.
func decadeLabel(d int) string {
	switch d {
	case 0:
		return "1"
	case -1:
		return "0.1"
	case -2:
		return "0.01"
	}
	return "1e" + strconv.Itoa(d)
}

// drawROCCurve joins consecutive points. Between two operating points a
// classifier can reach any FAR/TAR mix by picking either threshold at
// random, so segments are straight in linear FAR, and so curved on the
// log axis. A segment that starts left of the axis runs up the left edge
// to where it crosses FAR 1e-4.
func drawROCCurve(img *image.RGBA, points []ROCPoint, c color.Color) {
	var prev ROCPoint
	have := false
	for _, p := range points {
		if math.IsNaN(p.FAR) || math.IsNaN(p.TAR) {
			continue
		}
		p.FAR, p.TAR = min(max(p.FAR, 0), 1), min(max(p.TAR, 0), 1)
		if !have {
			prev, have = p, true
			drawROCSegment(img, p, p, c)
			continue
		}
		if prev.FAR <= p.FAR {
			drawROCSegment(img, prev, p, c)
		} else {
			drawROCSegment(img, p, prev, c)
		}
		prev = p
	}
}

// drawROCSegment draws the segment from a to b, where a.FAR <= b.FAR.
func drawROCSegment(img *image.RGBA, a, b ROCPoint, c color.Color) {
	line := func(far0, tar0, far1, tar1 float64) {
		drawLine(img, farX(far0), tarY(tar0), farX(far1), tarY(tar1), c)
	}
	lo := math.Pow(10, minLog10FAR)
	if b.FAR <= lo || a.FAR == b.FAR {
		line(a.FAR, a.TAR, b.FAR, b.TAR) // vertical, or all at the left edge
		return
	}
	tarAt := func(far float64) float64 { return a.TAR + (b.TAR-a.TAR)*(far-a.FAR)/(b.FAR-a.FAR) }
	from := max(a.FAR, lo)
	if a.FAR < lo {
		line(lo, a.TAR, lo, tarAt(lo))
	}
	// Step at most a pixel across, evenly on the log axis.
	n := max(1, int(math.Ceil(farX(b.FAR)-farX(from))))
	far0, tar0 := from, tarAt(from)
	for i := 1; i <= n; i++ {
		far := b.FAR
		if i < n {
			far = from * math.Pow(b.FAR/from, float64(i)/float64(n))
		}
		tar := tarAt(far)
		line(far0, tar0, far, tar)
		far0, tar0 = far, tar
	}
}

// drawLine draws a thick line from (x0, y0) to (x1, y1), clipped to the
// plot area.
func drawLine(img *image.RGBA, x0, y0, x1, y1 float64, c color.Color) {
	steps := int(math.Ceil(max(math.Abs(x1-x0), math.Abs(y1-y0))))
	for i := 0; i <= steps; i++ {
		t := 0.0
		if steps > 0 {
			t = float64(i) / float64(steps)
		}
		x := int(math.Round(x0 + t*(x1-x0)))
		y := int(math.Round(y0 + t*(y1-y0)))
		dot := image.Rect(x-curveRadius, y-curveRadius, x+curveRadius+1, y+curveRadius+1)
		fill(img, dot.Intersect(plotArea()), c)
	}
}

// drawROCLegend lists the curves in a box at the bottom right of the plot.
func drawROCLegend(img *image.RGBA, curves []Curve) {
	if len(curves) == 0 {
		return
	}
	const (
		pad      = 8
		lineH    = 16
		swatchW  = 24
		swatchGp = 6
	)
	labels := make([]string, len(curves))
	textW := 0
	for i, c := range curves {
		labels[i] = shorten(c.Label, maxLabelLen)
		textW = max(textW, textWidth(labels[i]))
	}
	w := pad + swatchW + swatchGp + textW + pad
	h := pad + lineH*len(curves) + pad - (lineH - basicfont.Face7x13.Height)
	box := image.Rect(plotMaxX-10-w, plotMaxY-10-h, plotMaxX-10, plotMaxY-10)
	fill(img, box, color.Gray{gridGray})
	fill(img, box.Inset(1), color.White)
	for i, label := range labels {
		c := curveColor(i)
		top := box.Min.Y + pad + i*lineH
		mid := top + basicfont.Face7x13.Height/2
		fill(img, image.Rect(box.Min.X+pad, mid-curveRadius, box.Min.X+pad+swatchW, mid+curveRadius+1), c)
		drawText(img, label, box.Min.X+pad+swatchW+swatchGp, top+basicfont.Face7x13.Ascent, color.Black)
	}
}

// shorten cuts s to at most n runes, marking the cut with "...".
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-3]) + "..."
}

func fill(img *image.RGBA, r image.Rectangle, c color.Color) {
	draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
}

func textWidth(s string) int {
	return font.MeasureString(basicfont.Face7x13, s).Round()
}

// drawText draws s with its baseline starting at (x, y).
func drawText(img *image.RGBA, s string, x, y int, c color.Color) {
	d := font.Drawer{
		Dst:  img,
		Src:  image.NewUniform(c),
		Face: basicfont.Face7x13,
		Dot:  fixed.P(x, y),
	}
	d.DrawString(s)
}

// drawTextUp draws s rotated a quarter turn anticlockwise, reading upwards
// from (x, y), with the tops of the letters facing left.
func drawTextUp(img *image.RGBA, s string, x, y int, c color.Color) {
	face := basicfont.Face7x13
	mask := image.NewAlpha(image.Rect(0, 0, textWidth(s), face.Height))
	d := font.Drawer{Dst: mask, Src: image.Opaque, Face: face, Dot: fixed.P(0, face.Ascent)}
	d.DrawString(s)
	b := mask.Bounds()
	for my := b.Min.Y; my < b.Max.Y; my++ {
		for mx := b.Min.X; mx < b.Max.X; mx++ {
			if mask.AlphaAt(mx, my).A == 0 {
				continue
			}
			p := image.Pt(x+my, y-mx)
			if p.In(img.Bounds()) {
				img.Set(p.X, p.Y, c)
			}
		}
	}
}
