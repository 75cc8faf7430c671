package detect

import (
	"fmt"
	"math"
)

// Quality holds the measures the gates judge a face by.
type Quality struct {
	Size       float32 `json:"size"`       // side of the square face box, pixels
	Sharpness  float32 `json:"sharpness"`  // variance of the Laplacian of the 64×64 grey crop; low is blurred
	Brightness float32 `json:"brightness"` // mean grey level of the crop, 0..255
	Yaw        float32 `json:"yaw"`        // nose tip between the eyes: 0 frontal, ±1 nose on an eye
}

// Yaw estimates the head's turn from where the nose tip falls between the
// two eye centres: 0 when centred, -1 or +1 when it lies on one eye.
func Yaw(p [5]Point) float32 {
	span := p[1].X - p[0].X
	if span <= 0 {
		return 1 // eyes crossed over: a profile or a bad fit
	}
	y := 2*(p[2].X-p[0].X)/span - 1
	return clamp(y, -1, 1)
}

// greyStats returns the mean and the variance of the 4-neighbour Laplacian
// of an n×n grey image.
func greyStats(px []uint8, n int) (mean, lapVar float32) {
	var sum float64
	for _, v := range px {
		sum += float64(v)
	}
	var s, s2 float64
	for y := 1; y < n-1; y++ {
		for x := 1; x < n-1; x++ {
			i := y*n + x
			l := float64(px[i-1]) + float64(px[i+1]) + float64(px[i-n]) + float64(px[i+n]) - 4*float64(px[i])
			s += l
			s2 += l * l
		}
	}
	m := float64((n - 2) * (n - 2))
	return float32(sum / float64(len(px))), float32(s2/m - (s/m)*(s/m))
}

// Gates are the least quality a face needs before it is worth embedding.
type Gates struct {
	MinSize       float32
	MinSharpness  float32
	MinBrightness float32
	MaxBrightness float32
	MaxYaw        float32
}

// DefaultGates are the gates enrollment and the door use unless configured.
// Measured with this chain: every frame of both webcam clips passes (size
// 89-187 px, sharpness 195-640, brightness 97-122, |yaw| at most 0.52);
// on LFW the gates turn away the 1 % of faces that are background slivers or
// blurred (size under 30 px, sharpness under 14) and the 7 % turned by more
// than 0.6.
func DefaultGates() Gates {
	return Gates{MinSize: 48, MinSharpness: 50, MinBrightness: 40, MaxBrightness: 220, MaxYaw: 0.6}
}

// Check returns nil when q passes every gate, else an error naming the first
// gate it fails and by how much.
func (g Gates) Check(q Quality) error {
	switch {
	case q.Size < g.MinSize:
		return fmt.Errorf("face too small: %.0f px, need %.0f", q.Size, g.MinSize)
	case q.Sharpness < g.MinSharpness:
		return fmt.Errorf("face too blurred: sharpness %.1f, need %.1f", q.Sharpness, g.MinSharpness)
	case q.Brightness < g.MinBrightness:
		return fmt.Errorf("face too dark: brightness %.0f, need %.0f", q.Brightness, g.MinBrightness)
	case q.Brightness > g.MaxBrightness:
		return fmt.Errorf("face too bright: brightness %.0f, at most %.0f", q.Brightness, g.MaxBrightness)
	case float32(math.Abs(float64(q.Yaw))) > g.MaxYaw:
		return fmt.Errorf("face turned away: yaw %.2f, at most %.2f", q.Yaw, g.MaxYaw)
	}
	return nil
}
