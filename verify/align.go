// Package verify turns a detected face into an embedding and compares
// embeddings: alignment onto the encoder's template, the encoder, the
// Embedding type, similarity, and the evaluation of a verifier on pairs.
package verify

import "github.com/facegate/facegate/detect"

// AlignSize is the side of the aligned crop the encoder reads.
const AlignSize = 112

// Template returns the five points' places in a 112×112 aligned crop: left
// eye, right eye, nose tip, left and right mouth corners.
func Template() [5]detect.Point {
	return [5]detect.Point{
		{X: 38.2946, Y: 51.6963}, {X: 73.5318, Y: 51.5014}, {X: 56.0252, Y: 71.7366},
		{X: 41.5493, Y: 92.3655}, {X: 70.7299, Y: 92.2041},
	}
}

// Similarity is a 2×3 affine matrix [a -b tx; b a ty]: rotation, uniform
// scale and translation.
type Similarity [2][3]float64

// Apply maps a point.
func (m Similarity) Apply(p detect.Point) detect.Point {
	x, y := float64(p.X), float64(p.Y)
	return detect.Point{
		X: float32(m[0][0]*x + m[0][1]*y + m[0][2]),
		Y: float32(m[1][0]*x + m[1][1]*y + m[1][2]),
	}
}

// FitSimilarity is the least-squares similarity transform taking src onto
// dst (Umeyama's estimate, in its closed form for the plane; it never
// reflects).
func FitSimilarity(src, dst [5]detect.Point) Similarity {
	var sx, sy, dx, dy float64
	for i := range src {
		sx += float64(src[i].X)
		sy += float64(src[i].Y)
		dx += float64(dst[i].X)
		dy += float64(dst[i].Y)
	}
	n := float64(len(src))
	sx, sy, dx, dy = sx/n, sy/n, dx/n, dy/n
	var num1, num2, den float64
	for i := range src {
		px, py := float64(src[i].X)-sx, float64(src[i].Y)-sy
		qx, qy := float64(dst[i].X)-dx, float64(dst[i].Y)-dy
		num1 += px*qx + py*qy
		num2 += px*qy - py*qx
		den += px*px + py*py
	}
	if den == 0 {
		return Similarity{{1, 0, dx - sx}, {0, 1, dy - sy}}
	}
	a, b := num1/den, num2/den
	return Similarity{
		{a, -b, dx - (a*sx - b*sy)},
		{b, a, dy - (b*sx + a*sy)},
	}
}
