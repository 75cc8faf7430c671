// Package models knows which ONNX models and which ONNX Runtime library
// facegate needs, where `make setup` puts them, and how to check them.
//
// The list lives in manifest.tsv (embedded here, and also read by
// scripts/setup.sh), with a sha256 for every npm tarball and every file
// extracted from one. Nothing is downloaded at run time: the daemon only
// verifies what setup installed.
package models

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"github.com/facegate/facegate/internal/confmsg"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
)

// Kinds of manifest rows.
const (
	KindPackage = "package" // an npm tarball; Name is NAME@VERSION
	KindModel   = "model"   // an .onnx file installed as DIR/models/Name
	KindRuntime = "runtime" // the ONNX Runtime library installed as DIR/Name, one per Arch
)

// libDirEnv overrides the lib directory for FindRepoDir; scripts/setup.sh
// honours the same variable.
const libDirEnv = "FACEGATE_LIB_DIR"

//go:embed manifest.tsv
var embedded []byte

// File is one row of the manifest. Fields written "-" in the manifest are
// empty here: Source and Path for packages, Arch for everything but runtimes.
type File struct {
	Kind   string // KindPackage, KindModel or KindRuntime
	Name   string // NAME@VERSION for a package, else the installed file name
	SHA256 string // 64 lower-case hex digits
	Source string // NAME@VERSION of the package the file comes from
	Path   string // member path inside that package's tarball
	Arch   string // GOARCH of a runtime library (amd64, arm64)
}

// Manifest is a parsed manifest. The zero value is empty and usable.
type Manifest struct {
	packages []File
	models   []File
	runtimes []File
}

var (
	defaultOnce sync.Once
	defaultMan  Manifest
)

// Default returns the embedded manifest. It panics only if the embedded file
// is malformed, which the package tests rule out.
func Default() Manifest {
	defaultOnce.Do(func() {
		m, err := Parse(bytes.NewReader(embedded))
		if err != nil {
			panic("models: embedded manifest.tsv: " + err.Error())
		}
		defaultMan = m
	})
	return defaultMan
}

// fieldNames are the manifest columns, in order.
var fieldNames = [...]string{"kind", "name", "sha256", "source", "path", "arch"}

// Parse reads a manifest (see manifest.tsv for the format). Every error names
// the offending line, as "manifest line N: ...".
func Parse(r io.Reader) (Manifest, error) {
	var m Manifest
	type ref struct {
		line int
		f    File
	}
	var refs []ref // model and runtime rows, to check Source once all packages are known
	seenPkg := map[string]bool{}
	seenModel := map[string]int{}
	seenArch := map[string]int{}

	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSuffix(sc.Text(), "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		f, err := parseRow(line)
		if err != nil {
			return Manifest{}, fmt.Errorf("manifest line %d: %v", n, err)
		}
		switch f.Kind {
		case KindPackage:
			if seenPkg[f.Name] {
				return Manifest{}, fmt.Errorf("manifest line %d: package %s listed twice", n, f.Name)
			}
			seenPkg[f.Name] = true
			m.packages = append(m.packages, f)
		case KindModel:
			if prev, ok := seenModel[f.Name]; ok {
				return Manifest{}, fmt.Errorf("manifest line %d: model %s already listed on line %d", n, f.Name, prev)
			}
			seenModel[f.Name] = n
			m.models = append(m.models, f)
			refs = append(refs, ref{n, f})
		case KindRuntime:
			if prev, ok := seenArch[f.Arch]; ok {
				return Manifest{}, fmt.Errorf("manifest line %d: runtime for %s already listed on line %d", n, f.Arch, prev)
			}
			seenArch[f.Arch] = n
			m.runtimes = append(m.runtimes, f)
			refs = append(refs, ref{n, f})
		}
	}
	if err := sc.Err(); err != nil {
		return Manifest{}, fmt.Errorf("manifest line %d: %v", n+1, err)
	}
	for _, rf := range refs {
		if !seenPkg[rf.f.Source] {
			return Manifest{}, fmt.Errorf("manifest line %d: %s %s: source %s is not a package row of this manifest",
				rf.line, rf.f.Kind, rf.f.Name, rf.f.Source)
		}
	}
	return m, nil
}

// parseRow parses and validates one non-comment line.
func parseRow(line string) (File, error) {
	fields := strings.Split(line, "\t")
	if len(fields) != len(fieldNames) {
		return File{}, fmt.Errorf("want %d tab-separated fields (%s), got %d",
			len(fieldNames), strings.Join(fieldNames[:], " "), len(fields))
	}
	for i, v := range fields {
		if v == "" {
			return File{}, fmt.Errorf("field %d (%s) is empty; write - for not applicable", i+1, fieldNames[i])
		}
		if strings.ContainsAny(v, " \t\v\f\r\n") {
			return File{}, fmt.Errorf("field %d (%s) %q contains white space", i+1, fieldNames[i], v)
		}
	}
	f := File{Kind: fields[0], Name: fields[1], SHA256: fields[2], Source: fields[3], Path: fields[4], Arch: fields[5]}
	if !isSHA256(f.SHA256) {
		return File{}, fmt.Errorf("%s %s: sha256 %q is not 64 lower-case hex digits", f.Kind, f.Name, f.SHA256)
	}
	switch f.Kind {
	case KindPackage:
		if !isPackageSpec(f.Name) {
			return File{}, fmt.Errorf("package %q: name must be NAME@VERSION", f.Name)
		}
		if f.Source != "-" || f.Path != "-" || f.Arch != "-" {
			return File{}, fmt.Errorf("package %s: source, path and arch must be -", f.Name)
		}
		f.Source, f.Path, f.Arch = "", "", ""
	case KindModel, KindRuntime:
		if f.Name == "-" || f.Name == "." || f.Name == ".." || strings.ContainsAny(f.Name, `/\`) {
			return File{}, fmt.Errorf("%s %q: name must be a plain file name", f.Kind, f.Name)
		}
		if !isPackageSpec(f.Source) {
			return File{}, fmt.Errorf("%s %s: source %q must be NAME@VERSION of a package", f.Kind, f.Name, f.Source)
		}
		if f.Path == "-" || path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path ||
			f.Path == ".." || strings.HasPrefix(f.Path, "../") {
			return File{}, fmt.Errorf("%s %s: path %q must be a clean relative path inside the tarball", f.Kind, f.Name, f.Path)
		}
		if f.Kind == KindModel {
			if f.Arch != "-" {
				return File{}, fmt.Errorf("model %s: arch must be -", f.Name)
			}
			f.Arch = ""
		} else if !isArch(f.Arch) {
			return File{}, fmt.Errorf("runtime %s: arch %q must be a GOARCH such as amd64 or arm64", f.Name, f.Arch)
		}
	default:
		return File{}, fmt.Errorf("unknown kind %q (want package, model or runtime)", f.Kind)
	}
	return f, nil
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// isPackageSpec reports whether s looks like NAME@VERSION (NAME may be @scope/name).
func isPackageSpec(s string) bool {
	i := strings.LastIndex(s, "@")
	return i > 0 && i < len(s)-1 && s[:i] != "@"
}

func isArch(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// Model returns the model row with the given file name (e.g. "fr_detect.onnx").
func (m Manifest) Model(name string) (File, bool) {
	for _, f := range m.models {
		if f.Name == name {
			return f, true
		}
	}
	return File{}, false
}

// Models returns all model rows in manifest order.
func (m Manifest) Models() []File {
	return append([]File(nil), m.models...)
}

// Runtime returns the ONNX Runtime library row for a Go architecture
// (usually runtime.GOARCH).
func (m Manifest) Runtime(goarch string) (File, bool) {
	for _, f := range m.runtimes {
		if f.Arch == goarch {
			return f, true
		}
	}
	return File{}, false
}

// Packages returns all package rows in manifest order.
func (m Manifest) Packages() []File {
	return append([]File(nil), m.packages...)
}

// DefaultDir is where an installed facegate finds its files, relative to the
// running executable: filepath.Dir(exe)/../lib/facegate, with symlinks in the
// executable's path resolved. So bin/facegate in the repository uses
// lib/facegate/, and /usr/local/bin/facegate uses /usr/local/lib/facegate/.
// Setup places files at DIR/models/*.onnx and DIR/libonnxruntime.so.1.
func DefaultDir() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("locating facegate's lib dir: %v", err)
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	return filepath.Join(filepath.Dir(exe), "..", "lib", "facegate"), nil
}

// FindRepoDir returns the lib/facegate directory of the repository the
// working directory is in: it walks up from the working directory to the
// first folder containing lib/facegate/models. It is meant for tests, whose
// binaries run from a temporary directory. If FACEGATE_LIB_DIR is set (as it
// may be for scripts/setup.sh), that directory is returned instead, provided
// it contains models/.
func FindRepoDir() (string, error) {
	if dir := os.Getenv(libDirEnv); dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", fmt.Errorf("%s=%s: %v", libDirEnv, dir, err)
		}
		if !isDir(filepath.Join(abs, "models")) {
			return "", fmt.Errorf("%s=%s: no models directory in it (run make setup)", libDirEnv, dir)
		}
		return abs, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding lib/facegate: %v (run make setup)", err)
	}
	for dir := wd; ; {
		lib := filepath.Join(dir, "lib", "facegate")
		if isDir(filepath.Join(lib, "models")) {
			return lib, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", fmt.Errorf("no lib/facegate/models in %s or any parent directory (run make setup)", wd)
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// verifyError is a one-line message that still unwraps to its cause
// (e.g. fs.ErrNotExist).
type verifyError struct {
	msg string
	err error
}

func (e *verifyError) Error() string { return e.msg }
func (e *verifyError) Unwrap() error { return e.err }

// VerifyFile checks that path exists, is a regular file (symlinks are
// followed) and has f's sha256. The error is one line naming the file and
// the remedy, e.g.
//
//	model fr_detect.onnx: /x/lib/facegate/models/fr_detect.onnx: no such file (run make setup, or set --models)
//	model fr_detect.onnx: /x/lib/facegate/models/fr_detect.onnx: sha256 is 1234abcd5678…, want 6c0256ccd316… (corrupt or wrong file; run make setup again)
//
// A missing file unwraps to fs.ErrNotExist.
func VerifyFile(f File, path string) error {
	what := f.Name
	if f.Kind != "" {
		what = f.Kind + " " + f.Name
	}
	remedy := "run make setup"
	if f.Kind == KindModel {
		remedy = "run make setup, or set --models"
	}
	fail := func(cause error, format string, args ...any) error {
		return &verifyError{
			msg: what + ": " + path + ": " + fmt.Sprintf(format, args...),
			err: cause,
		}
	}
	if !isSHA256(f.SHA256) {
		return fail(nil, "no valid sha256 to check against (bad manifest entry)")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fail(err, "%s (%s)", confmsg.FileProblem(err), remedy)
	}
	if !fi.Mode().IsRegular() {
		return fail(nil, "not a regular file (%s)", remedy)
	}
	got, err := FileSHA256(path)
	if err != nil {
		return fail(err, "%s (%s)", confmsg.FileProblem(err), remedy)
	}
	if got != f.SHA256 {
		return fail(nil, "sha256 is %s…, want %s… (corrupt or wrong file; run make setup again)",
			got[:12], f.SHA256[:12])
	}
	return nil
}

// FileSHA256 is the hex sha256 of the file at path, read as a stream.
func FileSHA256(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
