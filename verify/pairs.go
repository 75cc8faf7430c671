package verify

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Pair is one face-verification pair from an LFW pairs file.
type Pair struct {
	A, B string // image paths relative to the images folder, e.g. "Abel_Pacheco/Abel_Pacheco_0001.jpg"
	Same bool   // both images show the same person
	Fold int    // 0-based
}

// Limits that keep ReadPairs's memory use proportional to a sane file
// whatever the header claims.
const (
	maxPairs    = 1_000_000 // total pairs a header may announce
	maxNameLen  = 255       // longest person name; it becomes a directory name
	maxLineLen  = 4096      // longest line; a valid one is far shorter
	singleFolds = 10        // folds a single-set ("N") file is cut into
)

// ReadPairs parses an LFW pairs file as described in the LFW README.
//
// The first line is either "N", for one set of N matched pairs followed by
// N mismatched pairs (as in pairsDevTrain.txt and pairsDevTest.txt), or
// "FOLDS N", for FOLDS such sets (as in pairs.txt). A matched pair is
// "NAME i j" and a mismatched pair "NAME1 i NAME2 j", with fields separated
// by tabs or spaces; image i of NAME is NAME/NAME_%04d.jpg.
//
// With a "FOLDS N" header, fold k is the k-th set. With an "N" header the
// matched pairs are cut into ten folds in file order, matched pair i going
// to fold i*10/N, and likewise the mismatched pairs.
//
// ReadPairs is strict. It rejects wrong field counts; a pair of the wrong
// kind for its position; image numbers that are not positive decimal
// integers; names that are "." or contain a slash, a backslash or "..";
// a matched pair naming one image twice; a mismatched pair naming one
// person twice; and missing or extra lines. Blank lines are allowed only
// after the last pair. To bound memory it also rejects headers announcing
// more than 1,000,000 pairs, lines over 4096 bytes and names over 255
// bytes. Errors give the 1-based line number.
func ReadPairs(r io.Reader) ([]Pair, error) {
	pairs, err := readPairs(r)
	if err != nil {
		return nil, fmt.Errorf("verify: pairs: %w", err)
	}
	return pairs, nil
}

// ReadPairsFile reads the LFW pairs file at path; see ReadPairs.
func ReadPairsFile(path string) ([]Pair, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	pairs, err := readPairs(f)
	if err != nil {
		return nil, fmt.Errorf("verify: pairs file %s: %w", path, err)
	}
	return pairs, nil
}

// readPairs does the work of ReadPairs; its errors start with the line.
func readPairs(r io.Reader) ([]Pair, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxLineLen)
	line := 0 // number of the last line scanned
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		line++
		return sc.Text(), true
	}
	scanErr := func() error {
		err := sc.Err()
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("line %d: longer than %d bytes", line+1, maxLineLen)
		}
		if err != nil {
			return fmt.Errorf("after line %d: %w", line, err)
		}
		return nil
	}

	header, ok := next()
	if !ok {
		if err := scanErr(); err != nil {
			return nil, err
		}
		return nil, errors.New("empty input, want a header line")
	}
	sets, n, folded, err := parsePairsHeader(header)
	if err != nil {
		return nil, fmt.Errorf("line 1: %w", err)
	}

	// Grow as lines arrive rather than trusting the header's size.
	pairs := make([]Pair, 0, min(2*sets*n, 4096))
	for set := range sets {
		for k := range 2 * n {
			text, ok := next()
			if !ok {
				if err := scanErr(); err != nil {
					return nil, err
				}
				return nil, fmt.Errorf("line %d: unexpected end of input after %d of the %d pairs the header announces",
					line+1, len(pairs), 2*sets*n)
			}
			same := k < n
			p, err := parsePair(text, same, k%n+1, n)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
			if folded {
				p.Fold = set
			} else {
				p.Fold = (k % n) * singleFolds / n
			}
			pairs = append(pairs, p)
		}
	}
	for {
		text, ok := next()
		if !ok {
			break
		}
		if strings.TrimSpace(text) != "" {
			return nil, fmt.Errorf("line %d: extra line after the %d pairs the header announces", line, len(pairs))
		}
	}
	if err := scanErr(); err != nil {
		return nil, err
	}
	return pairs, nil
}

// parsePairsHeader parses "N" or "FOLDS N"; folded reports the latter.
func parsePairsHeader(text string) (sets, n int, folded bool, err error) {
	f := strings.Fields(text)
	switch len(f) {
	case 1:
		sets = 1
		n, err = parseCount(f[0])
		if err != nil {
			return 0, 0, false, fmt.Errorf("bad header %q: pair count: %w", text, err)
		}
	case 2:
		folded = true
		sets, err = parseCount(f[0])
		if err != nil {
			return 0, 0, false, fmt.Errorf("bad header %q: fold count: %w", text, err)
		}
		n, err = parseCount(f[1])
		if err != nil {
			return 0, 0, false, fmt.Errorf("bad header %q: pair count: %w", text, err)
		}
	default:
		return 0, 0, false, fmt.Errorf(`bad header %q: want "N" or "FOLDS N"`, text)
	}
	// Divide rather than multiply so that huge counts cannot overflow.
	if n > maxPairs/2/sets {
		return 0, 0, false, fmt.Errorf("header %q announces more than %d pairs", text, maxPairs)
	}
	return sets, n, folded, nil
}

// parsePair parses one pair line. The file position calls for the i-th of
// n matched pairs if same is set, else the i-th of n mismatched pairs.
func parsePair(text string, same bool, i, n int) (Pair, error) {
	f := strings.Fields(text)
	switch {
	case same && len(f) == 4:
		return Pair{}, fmt.Errorf("mismatched pair where matched pair %d of %d is due", i, n)
	case !same && len(f) == 3:
		return Pair{}, fmt.Errorf("matched pair where mismatched pair %d of %d is due", i, n)
	case same && len(f) != 3:
		return Pair{}, fmt.Errorf("%d fields, want 3 for matched pair %d of %d (NAME i j)", len(f), i, n)
	case !same && len(f) != 4:
		return Pair{}, fmt.Errorf("%d fields, want 4 for mismatched pair %d of %d (NAME1 i NAME2 j)", len(f), i, n)
	}
	var nameA, nameB, numA, numB string
	if same {
		nameA, numA, nameB, numB = f[0], f[1], f[0], f[2]
	} else {
		nameA, numA, nameB, numB = f[0], f[1], f[2], f[3]
	}
	a, err := imagePath(nameA, numA)
	if err != nil {
		return Pair{}, err
	}
	b, err := imagePath(nameB, numB)
	if err != nil {
		return Pair{}, err
	}
	if same && a == b {
		return Pair{}, fmt.Errorf("matched pair names image %s twice", a)
	}
	if !same && nameA == nameB {
		return Pair{}, fmt.Errorf("mismatched pair names %s twice", nameA)
	}
	return Pair{A: a, B: b, Same: same}, nil
}

// imagePath returns NAME/NAME_%04d.jpg after checking that name cannot
// step outside its directory and num is a positive image number.
func imagePath(name, num string) (string, error) {
	switch {
	case len(name) > maxNameLen:
		return "", fmt.Errorf("name longer than %d bytes", maxNameLen)
	case name == ".", strings.ContainsAny(name, `/\`), strings.Contains(name, ".."):
		// Any of these would let a pair name a file outside NAME's folder.
		return "", fmt.Errorf("name %q is \".\" or contains a path separator or \"..\"", name)
	}
	i, err := parseCount(num)
	if err != nil {
		return "", fmt.Errorf("image number for %s: %w", name, err)
	}
	return fmt.Sprintf("%s/%s_%04d.jpg", name, name, i), nil
}

// parseCount parses a positive decimal integer made only of ASCII digits;
// unlike strconv.Atoi it refuses signs.
func parseCount(s string) (int, error) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a positive integer", s)
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	if v <= 0 {
		return 0, fmt.Errorf("%q is not a positive integer", s)
	}
	return v, nil
}
