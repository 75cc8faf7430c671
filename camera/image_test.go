package camera

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sharedData returns ../shared/data relative to the repository root (the
// folder holding go.mod), found from the test's working directory.
func sharedData(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			data := filepath.Join(dir, "..", "shared", "data")
			if _, err := os.Stat(data); err != nil {
				t.Fatalf("test data: %v (the tests read ../shared/data next to the repository)", err)
			}
			return data
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod in %s or any parent directory", wd)
		}
		dir = parent
	}
}

func lfwImage(t testing.TB, name string) string {
	person := name[:strings.LastIndex(name, "_")]
	return filepath.Join(sharedData(t), "lfw-view1", "images", person, name+".jpg")
}

func readBytes(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeTemp(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// smallPNG encodes a w×h grey gradient.
func smallPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetGray(x, y, color.Gray{Y: uint8(x*7 + y*3)})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pngChunk returns the offset of the first chunk of type typ (its length
// field) in a PNG and its data length.
func pngChunk(t testing.TB, b []byte, typ string) (off, n int) {
	t.Helper()
	for off = 8; off+8 <= len(b); off += 12 + n {
		n = int(binary.BigEndian.Uint32(b[off:]))
		if string(b[off+4:off+8]) == typ {
			return off, n
		}
	}
	t.Fatalf("PNG has no %s chunk", typ)
	return 0, 0
}

// fixCRC recomputes the CRC of the chunk at off with data length n.
func fixCRC(b []byte, off, n int) {
	crc := crc32.ChecksumIEEE(b[off+4 : off+8+n])
	binary.BigEndian.PutUint32(b[off+8+n:], crc)
}

// forgedPNG is a small PNG whose IHDR claims w×h pixels, with a valid CRC,
// so that only its header is big.
func forgedPNG(t testing.TB, w, h uint32) []byte {
	t.Helper()
	b := smallPNG(t, 8, 8)
	off, n := pngChunk(t, b, "IHDR")
	binary.BigEndian.PutUint32(b[off+8:], w)
	binary.BigEndian.PutUint32(b[off+12:], h)
	fixCRC(b, off, n)
	return b
}

// corruptPNG keeps a valid signature and IHDR but fills IDAT with garbage
// (and a valid chunk CRC, so only the compressed stream is wrong).
func corruptPNG(t testing.TB) []byte {
	t.Helper()
	b := smallPNG(t, 64, 48)
	off, n := pngChunk(t, b, "IDAT")
	for i := 0; i < n; i++ {
		b[off+8+i] = byte(i*151 + 17)
	}
	fixCRC(b, off, n)
	return b
}

func TestReadImageRefuses(t *testing.T) {
	jpg := readBytes(t, lfwImage(t, "Aaron_Eckhart_0001"))
	eoi := bytes.LastIndex(jpg, []byte{0xFF, 0xD9})
	if eoi < 0 || eoi != len(jpg)-2 {
		t.Fatalf("Aaron_Eckhart_0001.jpg: end-of-image marker at %d of %d bytes, want it last", eoi, len(jpg))
	}
	pngData := smallPNG(t, 40, 30)
	dir := t.TempDir()
	emptyFile := writeTemp(t, "empty.jpg", nil)

	cases := []struct {
		name string
		path string
		max  int
		want []string // each must appear in the error
	}{
		{"missing file", filepath.Join(dir, "nope.jpg"), DefaultMaxPixels, []string{"nope.jpg", "no such file"}},
		{"folder", dir, DefaultMaxPixels, []string{dir, "folder"}},
		{"empty file", emptyFile, DefaultMaxPixels, []string{emptyFile, "empty file"}},
		{"text file", writeTemp(t, "notes.jpg", []byte("just some text\n")), DefaultMaxPixels, []string{"notes.jpg", "not an image"}},
		{"truncated JPEG, 60%", writeTemp(t, "cut60.jpg", jpg[:len(jpg)*6/10]), DefaultMaxPixels, []string{"cut60.jpg", "truncated"}},
		{"JPEG cut before its EOI", writeTemp(t, "noeoi.jpg", jpg[:eoi]), DefaultMaxPixels, []string{"noeoi.jpg", "truncated"}},
		{"JPEG cut inside its header", writeTemp(t, "head.jpg", jpg[:30]), DefaultMaxPixels, []string{"head.jpg", "truncated"}},
		{"PNG header over the limit", writeTemp(t, "huge.png", forgedPNG(t, 30000, 30000)), DefaultMaxPixels,
			[]string{"huge.png", "30000x30000", "900.0 megapixels", "limit of 40.0 megapixels"}},
		{"real JPEG over a small limit", writeTemp(t, "small.jpg", jpg), 1000,
			[]string{"small.jpg", "250x250", "megapixels", "limit of 0.001 megapixels"}},
		{"PNG over the limit by one pixel", writeTemp(t, "one.png", pngData), 40*30 - 1,
			[]string{"one.png", "40x30", "megapixels"}},
		{"corrupt PNG body", writeTemp(t, "garbage.png", corruptPNG(t)), DefaultMaxPixels, []string{"garbage.png", "corrupt png"}},
		{"truncated PNG", writeTemp(t, "cut.png", pngData[:len(pngData)/2]), DefaultMaxPixels, []string{"cut.png", "corrupt png"}},
		{"PNG with zero width", writeTemp(t, "zero.png", forgedPNG(t, 0, 10)), DefaultMaxPixels, []string{"zero.png"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ReadImage(tc.path, tc.max)
			if err == nil {
				defer m.Close()
				t.Fatalf("ReadImage(%s) = %dx%d Mat, want an error", tc.path, m.Cols(), m.Rows())
			}
			if m.Ptr() != nil {
				m.Close()
				t.Errorf("ReadImage(%s) returned a Mat with its error", tc.path)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is more than one line: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

func TestReadImageAccepts(t *testing.T) {
	cases := []struct {
		name       string
		path       string
		max        int
		cols, rows int
	}{
		{"LFW JPEG", lfwImage(t, "Aaron_Eckhart_0001"), DefaultMaxPixels, 250, 250},
		{"LFW JPEG at exactly the limit", lfwImage(t, "Zico_0001"), 250 * 250, 250, 250},
		{"PNG", writeTemp(t, "ok.png", smallPNG(t, 40, 30)), DefaultMaxPixels, 40, 30},
		{"PNG at exactly the limit", writeTemp(t, "edge.png", smallPNG(t, 40, 30)), 40 * 30, 40, 30},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ReadImage(tc.path, tc.max)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.Cols() != tc.cols || m.Rows() != tc.rows || m.Channels() != 3 {
				t.Errorf("ReadImage(%s) = %dx%d with %d channels, want %dx%d BGR", tc.path, m.Cols(), m.Rows(), m.Channels(), tc.cols, tc.rows)
			}
		})
	}
}

// The gradient PNG must come back with its pixels, not just its size:
// grey value v is B=G=R=v.
func TestDecodeImagePixels(t *testing.T) {
	m, err := DecodeImage("gradient", smallPNG(t, 40, 30), DefaultMaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, p := range [][2]int{{0, 0}, {5, 3}, {39, 29}} {
		x, y := p[0], p[1]
		want := uint8(x*7 + y*3)
		v := m.GetVecbAt(y, x)
		if v[0] != want || v[1] != want || v[2] != want {
			t.Errorf("pixel (%d,%d) = %v, want %d in every channel", x, y, v, want)
		}
	}
}

func TestDecodeImageNamesTheSource(t *testing.T) {
	_, err := DecodeImage("camera-upload-7", []byte("GIF89a"), DefaultMaxPixels)
	if err == nil || !strings.Contains(err.Error(), "camera-upload-7") {
		t.Fatalf("DecodeImage of a cut GIF header: error %v, want one naming camera-upload-7", err)
	}
}

func TestReadImageAppliesEXIFOrientation(t *testing.T) {
	path := filepath.Join(sharedData(t), "fixtures", "live_exif6.jpg")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := image.DecodeConfig(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Width != 640 || cfg.Height != 480 {
		t.Fatalf("%s: stored pixels are %dx%d, the data README says 640x480 landscape", path, cfg.Width, cfg.Height)
	}
	m, err := ReadImage(path, DefaultMaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Cols() != 480 || m.Rows() != 640 {
		t.Errorf("ReadImage(%s) = %d wide x %d tall, want 480x640 (EXIF orientation 6 applied)", path, m.Cols(), m.Rows())
	}
}

// Hand-made JPEG byte streams for jpegComplete.
func seg(marker byte, payload ...byte) []byte {
	n := len(payload) + 2
	return append([]byte{0xFF, marker, byte(n >> 8), byte(n)}, payload...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var (
	soi  = []byte{0xFF, 0xD8}
	eoi  = []byte{0xFF, 0xD9}
	app0 = seg(0xE0, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0)
	dqt  = seg(0xDB, 0, 1, 2, 3, 4)
	sof  = seg(0xC0, 8, 0, 8, 0, 8, 1, 1, 0x11, 0)
	dht  = seg(0xC4, 0, 1, 2, 3)
	sos  = seg(0xDA, 1, 1, 0, 0, 0x3F, 0)
	data = []byte{0x12, 0x34, 0x56, 0x78}
)

func TestJPEGComplete(t *testing.T) {
	thumb := cat([]byte("Exif\x00\x00"), soi, dqt, sos, data, eoi) // a whole JPEG inside APP1
	cases := []struct {
		name string
		b    []byte
		want string // "" for complete, else a word of the error
	}{
		{"complete minimal", cat(soi, dqt, sof, sos, data, eoi), ""},
		{"complete with APP0 and DHT", cat(soi, app0, dqt, sof, dht, sos, data, eoi), ""},
		{"data after EOI", cat(soi, dqt, sos, data, eoi, []byte{0, 0, 0xFF}), ""},
		{"missing EOI", cat(soi, dqt, sof, sos, data), "truncated"},
		{"half an EOI", cat(soi, dqt, sof, sos, data, []byte{0xFF}), "truncated"},
		{"EOI only inside an APP1 thumbnail", cat(soi, seg(0xE1, thumb...), dqt, sof, sos, data), "truncated"},
		{"APP1 thumbnail and a real EOI", cat(soi, seg(0xE1, thumb...), dqt, sof, sos, data, eoi), ""},
		{"stuffed FF 00 and RST markers in the scan", cat(soi, dqt, sof, sos,
			[]byte{0x11, 0xFF, 0x00, 0x22, 0xFF, 0xD0, 0x33, 0xFF, 0x00, 0xFF, 0xD7, 0x44, 0xFF, 0xD3}, data, eoi), ""},
		{"stuffed FF 00 then the end", cat(soi, dqt, sof, sos, []byte{0x11, 0xFF, 0x00}), "truncated"},
		{"fill bytes before a marker", cat(soi, []byte{0xFF, 0xFF, 0xFF}, dqt, []byte{0xFF}, sof, sos, data, eoi), ""},
		{"fill bytes before the EOI", cat(soi, dqt, sof, sos, data, []byte{0xFF, 0xFF, 0xFF}, eoi), ""},
		{"fill bytes and no EOI", cat(soi, dqt, sof, sos, data, []byte{0xFF, 0xFF, 0xFF}), "truncated"},
		{"progressive: second scan", cat(soi, dqt, seg(0xC2, 8, 0, 8, 0, 8, 1, 1, 0x11, 0), sos, data, dht, sos, data, eoi), ""},
		{"progressive: second scan cut", cat(soi, dqt, seg(0xC2, 8, 0, 8, 0, 8, 1, 1, 0x11, 0), sos, data, dht, sos, data), "truncated"},
		{"progressive: cut inside the second SOS header", cat(soi, dqt, sos, data, dht, sos[:5]), "truncated"},
		{"segment longer than the file", cat(soi, dqt, []byte{0xFF, 0xDB, 0x10, 0x00, 1, 2, 3}), "truncated"},
		{"cut inside a segment header", cat(soi, dqt, []byte{0xFF, 0xDB, 0x00}), "truncated"},
		{"segment length below 2", cat(soi, []byte{0xFF, 0xDB, 0x00, 0x01, 0, 0}, eoi), "corrupt"},
		{"garbage between segments", cat(soi, dqt, []byte{0x00, 0x01}, sof, sos, data, eoi), "corrupt"},
		{"TEM marker without length", cat(soi, []byte{0xFF, 0x01}, dqt, sos, data, eoi), ""},
		{"only SOI and EOI", cat(soi, eoi), ""},
		{"only SOI", cat(soi), "not a JPEG"},
		{"no SOI", cat(dqt, sos, data, eoi), "not a JPEG"},
		{"PNG signature", []byte("\x89PNG\r\n\x1a\n"), "not a JPEG"},
		{"empty", nil, "not a JPEG"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := jpegComplete(tc.b)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("jpegComplete(% X) = %v, want complete", tc.b, err)
			case tc.want != "" && err == nil:
				t.Errorf("jpegComplete(% X) = nil, want an error mentioning %q", tc.b, tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("jpegComplete(% X) = %v, want an error mentioning %q", tc.b, err, tc.want)
			}
		})
	}
}

// FuzzJPEGComplete checks that jpegComplete never panics or loops, and that
// its verdict is consistent: a complete stream contains an EOI, stays
// complete with bytes appended, and its shortest complete prefix ends with
// FF D9 (everything shorter is incomplete).
func FuzzJPEGComplete(f *testing.F) {
	thumb := cat([]byte("Exif\x00\x00"), soi, dqt, sos, data, eoi)
	for _, b := range [][]byte{
		cat(soi, dqt, sof, sos, data, eoi),
		cat(soi, seg(0xE1, thumb...), dqt, sof, sos, data),
		cat(soi, dqt, sof, sos, []byte{0x11, 0xFF, 0x00, 0xFF, 0xD0, 0x33}, data, eoi),
		cat(soi, []byte{0xFF, 0xFF}, dqt, sos, data, dht, sos, data, []byte{0xFF, 0xFF}, eoi),
		cat(soi, []byte{0xFF, 0x01, 0xFF, 0xDB, 0x00, 0x01}),
		cat(soi, eoi),
		{0xFF, 0xD8, 0xFF},
	} {
		f.Add(b)
	}
	if b, err := os.ReadFile(lfwImage(f, "Aaron_Eckhart_0001")); err == nil {
		f.Add(b)
	}
	if b, err := os.ReadFile(filepath.Join(sharedData(f), "fixtures", "live_exif6.jpg")); err == nil {
		f.Add(b[:4096]) // its APP1 with the EXIF, then cut
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := jpegComplete(b)
		if err == nil && len(b) >= 2 && !bytes.Contains(b[2:], eoi) {
			t.Fatalf("complete without an FF D9: % X", b)
		}
		if err != nil {
			return
		}
		if len(b) > 1<<16 {
			return
		}
		if err := jpegComplete(append(b[:len(b):len(b)], 0xFF, 0x00, 0x12)); err != nil {
			t.Fatalf("complete stream became incomplete with bytes appended: %v", err)
		}
		// Completeness is monotonic in the prefix length: binary search
		// the shortest complete prefix.
		lo, hi := 0, len(b) // b[:lo] incomplete (lo=0 is), b[:hi] complete
		for hi-lo > 1 {
			mid := (lo + hi) / 2
			if jpegComplete(b[:mid]) == nil {
				hi = mid
			} else {
				lo = mid
			}
		}
		if hi < 4 || b[hi-2] != 0xFF || b[hi-1] != 0xD9 {
			t.Fatalf("shortest complete prefix (%d bytes) does not end with FF D9: % X", hi, b[:hi])
		}
		if jpegComplete(b[:hi-1]) == nil {
			t.Fatalf("prefix of %d bytes, cut inside its EOI, still complete", hi-1)
		}
	})
}
