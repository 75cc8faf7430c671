// Package detect finds faces in a BGR frame and measures each one: the
// Ultra-Light detector, 68-point landmarks reduced to five, quality measures
// and passive liveness.
package detect

import (
	"cmp"
	"image"
	"math"
	"slices"
)

// Point is a position in frame pixels.
type Point struct{ X, Y float32 }

// Box is an axis-aligned rectangle in frame pixels.
type Box struct{ X1, Y1, X2, Y2 float32 }

// Width and Height of the box.
func (b Box) Width() float32  { return b.X2 - b.X1 }
func (b Box) Height() float32 { return b.Y2 - b.Y1 }

// Area of the box; zero for an empty box.
func (b Box) Area() float32 {
	if b.X2 <= b.X1 || b.Y2 <= b.Y1 {
		return 0
	}
	return (b.X2 - b.X1) * (b.Y2 - b.Y1)
}

// IoU is the intersection over union of two boxes.
func IoU(a, b Box) float32 {
	in := Box{max(a.X1, b.X1), max(a.Y1, b.Y1), min(a.X2, b.X2), min(a.Y2, b.Y2)}.Area()
	u := a.Area() + b.Area() - in
	if u <= 0 {
		return 0
	}
	return in / u
}

// Square makes the box square on its height, centred on the box, and clips it
// to a frame of w×h pixels. Landmarks and liveness crop this square.
func (b Box) Square(w, h int) image.Rectangle {
	side := b.Height()
	cx := (b.X1 + b.X2) / 2
	x1 := int(math.Round(float64(cx - side/2)))
	y1 := int(math.Round(float64(b.Y1)))
	s := int(math.Round(float64(side)))
	return image.Rect(x1, y1, x1+s, y1+s).Intersect(image.Rect(0, 0, w, h))
}

// Detection is one face found by the detector.
type Detection struct {
	Box   Box
	Score float32
}

// NMS keeps, best score first, each detection that overlaps no kept one by
// more than iou. It reorders and filters dets in place and returns the kept
// prefix.
func NMS(dets []Detection, iou float32) []Detection {
	// SortFunc, not sort.Sort: boxing the slice in an interface would
	// allocate on every frame.
	slices.SortFunc(dets, func(a, b Detection) int { return cmp.Compare(b.Score, a.Score) })
	kept := 0
	for i := range dets {
		keep := true
		for j := 0; j < kept; j++ {
			if IoU(dets[i].Box, dets[j].Box) > iou {
				keep = false
				break
			}
		}
		if keep {
			dets[kept] = dets[i]
			kept++
		}
	}
	return dets[:kept]
}
