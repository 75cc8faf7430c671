package verify

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadPairs(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Pair
	}{
		{
			name: "single set",
			in:   "1\nAbel_Pacheco\t1\t4\nAbdel_Madi_Shabneh\t1\tDean_Barker\t1\n",
			want: []Pair{
				{A: "Abel_Pacheco/Abel_Pacheco_0001.jpg", B: "Abel_Pacheco/Abel_Pacheco_0004.jpg", Same: true},
				{A: "Abdel_Madi_Shabneh/Abdel_Madi_Shabneh_0001.jpg", B: "Dean_Barker/Dean_Barker_0001.jpg"},
			},
		},
		{
			name: "spaces, CRLF, no final newline, large image numbers",
			in:   "1\r\nAl  12345 7\r\n  Bo 1\tCy 20\r",
			want: []Pair{
				{A: "Al/Al_12345.jpg", B: "Al/Al_0007.jpg", Same: true},
				{A: "Bo/Bo_0001.jpg", B: "Cy/Cy_0020.jpg"},
			},
		},
		{
			name: "trailing blank lines",
			in:   "1\nA 1 2\nA 1 B 1\n\n \t\n",
			want: []Pair{
				{A: "A/A_0001.jpg", B: "A/A_0002.jpg", Same: true},
				{A: "A/A_0001.jpg", B: "B/B_0001.jpg"},
			},
		},
		{
			name: "folds header",
			in:   "2 1\nA 1 2\nA 1 B 1\nC 3 1\nD 2 E 9\n",
			want: []Pair{
				{A: "A/A_0001.jpg", B: "A/A_0002.jpg", Same: true, Fold: 0},
				{A: "A/A_0001.jpg", B: "B/B_0001.jpg", Fold: 0},
				{A: "C/C_0003.jpg", B: "C/C_0001.jpg", Same: true, Fold: 1},
				{A: "D/D_0002.jpg", B: "E/E_0009.jpg", Fold: 1},
			},
		},
		{
			// One explicit fold is one fold, not ten.
			name: "folds header with one fold",
			in:   "1 2\nA 1 2\nB 1 2\nA 1 B 1\nC 1 D 1\n",
			want: []Pair{
				{A: "A/A_0001.jpg", B: "A/A_0002.jpg", Same: true},
				{A: "B/B_0001.jpg", B: "B/B_0002.jpg", Same: true},
				{A: "A/A_0001.jpg", B: "B/B_0001.jpg"},
				{A: "C/C_0001.jpg", B: "D/D_0001.jpg"},
			},
		},
		{
			// With N < 10 some folds are empty: pair i goes to fold i*10/N.
			name: "single set smaller than ten folds",
			in:   "3\nA 1 2\nB 1 2\nC 1 2\nA 1 B 1\nC 1 D 1\nE 1 F 1\n",
			want: []Pair{
				{A: "A/A_0001.jpg", B: "A/A_0002.jpg", Same: true, Fold: 0},
				{A: "B/B_0001.jpg", B: "B/B_0002.jpg", Same: true, Fold: 3},
				{A: "C/C_0001.jpg", B: "C/C_0002.jpg", Same: true, Fold: 6},
				{A: "A/A_0001.jpg", B: "B/B_0001.jpg", Fold: 0},
				{A: "C/C_0001.jpg", B: "D/D_0001.jpg", Fold: 3},
				{A: "E/E_0001.jpg", B: "F/F_0001.jpg", Fold: 6},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadPairs(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("ReadPairs: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ReadPairs =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestReadPairsErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // substring of the error
	}{
		{"empty", "", "empty input"},
		{"header not a number", "ten\n", "line 1: bad header"},
		{"header zero", "0\n", "line 1: bad header"},
		{"header negative", "-3\nA 1 2\n", "line 1: bad header"},
		{"header plus sign", "+1\nA 1 2\nA 1 B 1\n", "line 1: bad header"},
		{"header three fields", "1 2 3\n", "line 1: bad header"},
		{"header blank", "\nA 1 2\n", "line 1: bad header"},
		{"header too many pairs", "500001\n", "line 1: header \"500001\" announces more than 1000000 pairs"},
		{"folds header too many pairs", "10 50001\n", "announces more than"},
		{"folds header overflow", "9223372036854775807 9223372036854775807\n", "announces more than"},
		{"header out of range", "99999999999999999999\n", "out of range"},
		{"matched where mismatched due", "1\nA 1 2\nB 1 2\n", "line 3: matched pair where mismatched pair 1 of 1 is due"},
		{"mismatched where matched due", "2\nA 1 2\nA 1 B 1\n", "line 3: mismatched pair where matched pair 2 of 2 is due"},
		{"matched too few fields", "1\nA 1\n", "line 2: 2 fields, want 3"},
		{"mismatched too many fields", "1\nA 1 2\nA 1 B 1 C\n", "line 3: 5 fields, want 4"},
		{"blank line among pairs", "1\nA 1 2\n\nA 1 B 1\n", "line 3: 0 fields"},
		{"image number zero", "1\nA 0 2\n", "line 2: image number for A: \"0\" is not a positive integer"},
		{"image number signed", "1\nA 1 2\nA 1 B -1\n", "line 3: image number for B: \"-1\" is not a positive integer"},
		{"image number not integer", "1\nA 1 2.5\n", "line 2: image number for A: \"2.5\""},
		{"image number overflow", "1\nA 1 99999999999999999999\n", "out of range"},
		{"name with slash", "1\n../A 1 2\n", "line 2: name \"../A\""},
		{"name with dotdot", "1\nA 1 2\nA 1 .. 1\n", "line 3: name \"..\""},
		{"name with backslash", "1\nA\\B 1 2\n", "line 2: name"},
		{"name dot", "1\n. 1 2\n", "line 2: name \".\""},
		{"name too long", "1\n" + strings.Repeat("x", 256) + " 1 2\n", "line 2: name longer than 255 bytes"},
		{"same image twice", "1\nA 3 3\n", "line 2: matched pair names image A/A_0003.jpg twice"},
		{"same image, leading zeros", "1\nA 3 003\n", "names image A/A_0003.jpg twice"},
		{"mismatched same person", "1\nA 1 2\nA 1 A 2\n", "line 3: mismatched pair names A twice"},
		{"too few lines", "2\nA 1 2\nB 1 2\nA 1 B 1\n", "line 5: unexpected end of input after 3 of the 4 pairs"},
		{"too few sets", "2 1\nA 1 2\nA 1 B 1\n", "line 4: unexpected end of input after 2 of the 4 pairs"},
		{"too many lines", "1\nA 1 2\nA 1 B 1\nC 1 2\n", "line 4: extra line"},
		{"extra line after blank", "1\nA 1 2\nA 1 B 1\n\nC 1 2\n", "line 5: extra line"},
		{"line too long", "1\nA 1 2" + strings.Repeat(" ", 5000) + "\n", "line 2: longer than 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadPairs(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("ReadPairs(%q) = %+v, want error containing %q", tt.in, got, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ReadPairs(%q) error = %q, want it to contain %q", tt.in, err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "verify: pairs: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// errReader fails after yielding its data.
type errReader struct{ data string }

func (r *errReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, errors.New("disk on fire")
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestReadPairsReadError(t *testing.T) {
	_, err := ReadPairs(&errReader{data: "1\nA 1 2\n"})
	if err == nil || !strings.Contains(err.Error(), "after line 2: disk on fire") {
		t.Errorf("ReadPairs error = %v, want the read error after line 2", err)
	}
}

// lfwView1 is LFW's View 1 folder, shared by the checkouts in /work.
const lfwView1 = "../../shared/data/lfw-view1"

func TestReadPairsFileLFW(t *testing.T) {
	tests := []struct {
		file      string
		n         int // matched pairs, and mismatched pairs
		firstA    string
		firstB    string
		lastMisA  string
		lastMisB  string
		foldCheck map[int]int // pair index -> fold
	}{
		{
			file:     "pairsDevTest.txt",
			n:        500,
			firstA:   "Abdullah_Gul/Abdullah_Gul_0013.jpg",
			firstB:   "Abdullah_Gul/Abdullah_Gul_0014.jpg",
			lastMisA: "Todd_Petit/Todd_Petit_0001.jpg",
			lastMisB: "Vicente_Fernandez/Vicente_Fernandez_0003.jpg",
			// Ben_Affleck 3 6 (matched 49) ends fold 0, Bertie_Ahern 2 3 starts fold 1.
			foldCheck: map[int]int{49: 0, 50: 1, 499: 9, 500: 0, 549: 0, 550: 1, 999: 9},
		},
		{
			file:      "pairsDevTrain.txt",
			n:         1100,
			firstA:    "Aaron_Peirsol/Aaron_Peirsol_0001.jpg",
			firstB:    "Aaron_Peirsol/Aaron_Peirsol_0002.jpg",
			lastMisA:  "Wendy_Kennedy/Wendy_Kennedy_0001.jpg",
			lastMisB:  "Zara_Akhmadova/Zara_Akhmadova_0001.jpg",
			foldCheck: map[int]int{109: 0, 110: 1, 1099: 9, 1100: 0, 1210: 1, 2199: 9},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join(lfwView1, tt.file)
			pairs, err := ReadPairsFile(path)
			if errors.Is(err, fs.ErrNotExist) {
				t.Skipf("LFW View 1 not present: %v", err)
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(pairs) != 2*tt.n {
				t.Fatalf("got %d pairs, want %d", len(pairs), 2*tt.n)
			}
			type key struct {
				fold int
				same bool
			}
			perFold := map[key]int{}
			for i, p := range pairs {
				if p.Same != (i < tt.n) {
					t.Fatalf("pair %d: Same = %v, want %v", i, p.Same, i < tt.n)
				}
				perFold[key{p.Fold, p.Same}]++
			}
			for fold := range 10 {
				for _, same := range []bool{true, false} {
					if got := perFold[key{fold, same}]; got != tt.n/10 {
						t.Errorf("fold %d same=%v: %d pairs, want %d", fold, same, got, tt.n/10)
					}
				}
			}
			if len(perFold) != 20 {
				t.Errorf("pairs fall in %d fold/kind classes, want 20", len(perFold))
			}
			if p := pairs[0]; p.A != tt.firstA || p.B != tt.firstB {
				t.Errorf("first pair = %s, %s; want %s, %s", p.A, p.B, tt.firstA, tt.firstB)
			}
			if p := pairs[len(pairs)-1]; p.A != tt.lastMisA || p.B != tt.lastMisB {
				t.Errorf("last pair = %s, %s; want %s, %s", p.A, p.B, tt.lastMisA, tt.lastMisB)
			}
			for i, fold := range tt.foldCheck {
				if pairs[i].Fold != fold {
					t.Errorf("pair %d: fold %d, want %d", i, pairs[i].Fold, fold)
				}
			}
		})
	}
}

func TestReadPairsFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "pairs.txt")
	if err := os.WriteFile(bad, []byte("1\nA 1 2\nA 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "absent.txt")
	tests := []struct {
		path string
		want []string
	}{
		{bad, []string{bad, "line 3: 2 fields, want 4"}},
		{missing, []string{missing}},
	}
	for _, tt := range tests {
		_, err := ReadPairsFile(tt.path)
		if err == nil {
			t.Errorf("ReadPairsFile(%s) succeeded, want error", tt.path)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ReadPairsFile(%s) error %q does not contain %q", tt.path, err, w)
			}
		}
	}
}

func FuzzReadPairs(f *testing.F) {
	// Seeds cover the error paths too, notably the over-long line: an input
	// that first reaches it is thousands of bytes long, and minimizing it
	// would stall fuzzing for a minute.
	for _, seed := range []string{
		"1\nA 1 2\nA 1 B 1\n",
		"1\nA 1 2" + strings.Repeat(" ", 5000) + "\n",
		"1\n" + strings.Repeat("x", 300) + " 1 2\n",
		"1\nA 1 2\nA 1 B 1\nC 1 2\n",
		"1\nA 3 3\n",
		"1\nA 1 2\nA 1 A 2\n",
		"1\nA 1 99999999999999999999\n",
		"9223372036854775807 9223372036854775807\n",
		"2 1\nA 1 2\nA 1 B 1\nC 3 1\nD 2 E 9\n",
		"3\nA 1 2\nB 1 2\nC 1 2\nA 1 B 1\nC 1 D 1\nE 1 F 1\n\n",
		"1\r\nAl\t12345\t7\r\nBo 1 Cy 20",
		"1\nA 1 2\nB 1 2\n",
		"1000001\n",
		"10 300\n",
		"1\n../x 1 2\n",
		"1\nA 0 -1\n",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		pairs, err := ReadPairs(strings.NewReader(in))
		if err != nil {
			if pairs != nil {
				t.Errorf("ReadPairs returned %d pairs with error %v", len(pairs), err)
			}
			return
		}
		if len(pairs) == 0 || len(pairs)%2 != 0 {
			t.Fatalf("ReadPairs returned %d pairs, want a positive even number", len(pairs))
		}
		same := 0
		for i, p := range pairs {
			if p.Same {
				same++
			}
			if p.Fold < 0 || p.Fold >= max(len(pairs)/2, 10) {
				t.Errorf("pair %d: fold %d out of range", i, p.Fold)
			}
			for _, path := range []string{p.A, p.B} {
				dir, file, ok := strings.Cut(path, "/")
				if !ok || dir == "" || dir == "." || strings.Contains(path, "..") ||
					strings.ContainsAny(file, `/\`) || !strings.HasPrefix(file, dir+"_") ||
					!strings.HasSuffix(file, ".jpg") {
					t.Errorf("pair %d: malformed image path %q", i, path)
				}
			}
			if p.A == p.B {
				t.Errorf("pair %d: both images are %q", i, p.A)
			}
		}
		if same != len(pairs)/2 {
			t.Errorf("%d of %d pairs are matched, want half", same, len(pairs))
		}
	})
}
