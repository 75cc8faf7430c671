package models

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestEmbeddedManifestParses(t *testing.T) {
	if _, err := Parse(bytes.NewReader(embedded)); err != nil {
		t.Fatalf("embedded manifest.tsv: %v", err)
	}
	m := Default() // must not panic

	for _, name := range []string{"fr_detect.onnx", "fr_landmark.onnx", "fr_feature.onnx", "fr_liveness.onnx"} {
		t.Run("model/"+name, func(t *testing.T) {
			f, ok := m.Model(name)
			if !ok {
				t.Fatalf("Model(%q) not found", name)
			}
			if f.Kind != KindModel || f.Name != name || !isSHA256(f.SHA256) || f.Arch != "" {
				t.Errorf("Model(%q) = %+v", name, f)
			}
			if want := "package/model/" + name; f.Path != want {
				t.Errorf("Model(%q).Path = %q, want %q", name, f.Path, want)
			}
			if f.Source != "faceplugin-face-recognition-js@0.0.1" {
				t.Errorf("Model(%q).Source = %q", name, f.Source)
			}
		})
	}
	if got := len(m.Models()); got != 4 {
		t.Errorf("len(Models()) = %d, want 4", got)
	}
	if _, ok := m.Model("fr_age.onnx"); ok {
		t.Errorf("Model(fr_age.onnx) found; it is not in the manifest")
	}

	pkgs := m.Packages()
	if len(pkgs) != 2 {
		t.Fatalf("Packages() = %d rows, want 2: %+v", len(pkgs), pkgs)
	}
	names := map[string]bool{}
	for _, p := range pkgs {
		if p.Kind != KindPackage || !isSHA256(p.SHA256) || p.Source != "" || p.Path != "" || p.Arch != "" {
			t.Errorf("package row %+v", p)
		}
		names[p.Name] = true
	}
	for _, want := range []string{"faceplugin-face-recognition-js@0.0.1", "onnxruntime-node@1.24.1"} {
		if !names[want] {
			t.Errorf("package %s missing from Packages()", want)
		}
	}

	for arch, dir := range map[string]string{"amd64": "x64", "arm64": "arm64"} {
		t.Run("runtime/"+arch, func(t *testing.T) {
			f, ok := m.Runtime(arch)
			if !ok {
				t.Fatalf("Runtime(%q) not found", arch)
			}
			if f.Kind != KindRuntime || f.Name != "libonnxruntime.so.1" || f.Arch != arch ||
				!isSHA256(f.SHA256) || f.Source != "onnxruntime-node@1.24.1" {
				t.Errorf("Runtime(%q) = %+v", arch, f)
			}
			if want := "package/bin/napi-v6/linux/" + dir + "/libonnxruntime.so.1"; f.Path != want {
				t.Errorf("Runtime(%q).Path = %q, want %q", arch, f.Path, want)
			}
		})
	}
	if _, ok := m.Runtime("riscv64"); ok {
		t.Errorf("Runtime(riscv64) found")
	}

	// Packages returns a copy.
	pkgs[0].Name = "changed"
	if m.Packages()[0].Name == "changed" {
		t.Errorf("Packages() shares its backing array with the manifest")
	}
}

func TestParseRejects(t *testing.T) {
	const (
		h   = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		pkg = "package\tp@1\t" + h + "\t-\t-\t-\n"
	)
	tests := []struct {
		name, in, want string
	}{
		{"too few fields", pkg + "model\tm.onnx\t" + h + "\tp@1\tpackage/m.onnx\n", "line 2: want 6 tab-separated fields"},
		{"too many fields", "# c\n\n" + pkg + "model\tm.onnx\t" + h + "\tp@1\tx\t-\textra\n", "line 4: want 6"},
		{"spaces not tabs", "package p@1 " + h + " - - -\n", "line 1: want 6"},
		{"empty field", "package\tp@1\t\t-\t-\t-\n", "line 1: field 3 (sha256) is empty"},
		{"white space in field", "package\tp@1 \t" + h + "\t-\t-\t-\n", "line 1: field 2 (name)"},
		{"unknown kind", pkg + "weights\tm.onnx\t" + h + "\tp@1\tx\t-\n", `line 2: unknown kind "weights"`},
		{"short sha", "package\tp@1\tabc\t-\t-\t-\n", "line 1: package p@1: sha256"},
		{"upper-case sha", "package\tp@1\t" + strings.ToUpper(h) + "\t-\t-\t-\n", "line 1: package p@1: sha256"},
		{"package without version", "package\tp\t" + h + "\t-\t-\t-\n", "line 1: package \"p\": name must be NAME@VERSION"},
		{"package with path", "package\tp@1\t" + h + "\t-\tx\t-\n", "line 1: package p@1: source, path and arch must be -"},
		{"duplicate package", pkg + pkg, "line 2: package p@1 listed twice"},
		{"model name with slash", pkg + "model\tx/m.onnx\t" + h + "\tp@1\tx\t-\n", "line 2: model \"x/m.onnx\": name must be a plain file name"},
		{"model path escapes", pkg + "model\tm.onnx\t" + h + "\tp@1\t../m.onnx\t-\n", "line 2: model m.onnx: path"},
		{"model absolute path", pkg + "model\tm.onnx\t" + h + "\tp@1\t/m.onnx\t-\n", "line 2: model m.onnx: path"},
		{"model with arch", pkg + "model\tm.onnx\t" + h + "\tp@1\tm.onnx\tamd64\n", "line 2: model m.onnx: arch must be -"},
		{"duplicate model", pkg + "model\tm.onnx\t" + h + "\tp@1\ta\t-\nmodel\tm.onnx\t" + h + "\tp@1\tb\t-\n", "line 3: model m.onnx already listed on line 2"},
		{"runtime without arch", pkg + "runtime\tlib.so\t" + h + "\tp@1\tlib.so\t-\n", "line 2: runtime lib.so: arch"},
		{"duplicate runtime arch", pkg + "runtime\tlib.so\t" + h + "\tp@1\ta\tamd64\nruntime\tlib.so\t" + h + "\tp@1\tb\tamd64\n", "line 3: runtime for amd64 already listed on line 2"},
		{"unknown source", pkg + "\nmodel\tm.onnx\t" + h + "\tq@2\tm.onnx\t-\n", "line 3: model m.onnx: source q@2 is not a package row"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tt.in)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error = %q, want it to contain %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "manifest line ") {
				t.Errorf("Parse error = %q, want it to start with \"manifest line \"", err)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	const h = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	in := "# comment\r\n" +
		"  # indented comment\n" +
		"\n" +
		// Source may be declared after its use; scoped npm names are fine.
		"runtime\tlib.so\t" + h + "\t@s/p@1.0.0-rc.1\tpackage/lib.so\triscv64\r\n" +
		"package\t@s/p@1.0.0-rc.1\t" + h + "\t-\t-\t-\n"
	m, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	f, ok := m.Runtime("riscv64")
	if !ok || f.Path != "package/lib.so" || f.Source != "@s/p@1.0.0-rc.1" {
		t.Errorf("Runtime(riscv64) = %+v, %v", f, ok)
	}
	if len(m.Packages()) != 1 || len(m.Models()) != 0 {
		t.Errorf("got %d packages, %d models", len(m.Packages()), len(m.Models()))
	}
	var zero Manifest
	if _, ok := zero.Model("x"); ok || len(zero.Packages()) != 0 {
		t.Errorf("zero Manifest not empty")
	}
}

func TestVerifyFile(t *testing.T) {
	dir := t.TempDir()
	content := []byte("not really an onnx model\n")
	sum := sha256.Sum256(content)
	good := hex.EncodeToString(sum[:])
	path := filepath.Join(dir, "fr_detect.onnx")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	model := File{Kind: KindModel, Name: "fr_detect.onnx", SHA256: good}
	wrong := model
	wrong.SHA256 = strings.Repeat("ab", 32)
	missing := filepath.Join(dir, "nope", "fr_detect.onnx")

	tests := []struct {
		name string
		f    File
		path string
		want []string // substrings of the error; nil means success
	}{
		{"right hash", model, path, nil},
		{"wrong hash", wrong, path, []string{"model fr_detect.onnx: ", path, "sha256 is " + good[:12] + "…, want abababababab…", "run make setup again"}},
		{"missing", model, missing, []string{"model fr_detect.onnx: ", missing, "no such file", "run make setup, or set --models"}},
		{"directory", model, dir, []string{"model fr_detect.onnx: ", "not a regular file"}},
		{"runtime missing", File{Kind: KindRuntime, Name: "libonnxruntime.so.1", SHA256: good}, missing, []string{"runtime libonnxruntime.so.1: ", "no such file (run make setup)"}},
		{"no hash in entry", File{Kind: KindModel, Name: "x.onnx"}, path, []string{"model x.onnx: ", "no valid sha256"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyFile(tt.f, tt.path)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("VerifyFile: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("VerifyFile accepted %s", tt.path)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
	if err := VerifyFile(model, missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: errors.Is(%v, fs.ErrNotExist) = false", err)
	}
}

func TestDefaultDir(t *testing.T) {
	dir, err := DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(filepath.ToSlash(dir), "/lib/facegate") {
		t.Errorf("DefaultDir() = %q, want it to end in lib/facegate", dir)
	}
	if !filepath.IsAbs(dir) {
		t.Errorf("DefaultDir() = %q, want an absolute path", dir)
	}
}

func TestFindRepoDir(t *testing.T) {
	t.Setenv(libDirEnv, "")
	root := t.TempDir()
	lib := filepath.Join(root, "lib", "facegate")
	if err := os.MkdirAll(filepath.Join(lib, "models"), 0o755); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(deep)
	got, err := FindRepoDir()
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := filepath.EvalSymlinks(lib); got != lib && got != want {
		t.Errorf("FindRepoDir() = %q, want %q", got, lib)
	}

	t.Setenv(libDirEnv, lib)
	t.Chdir(t.TempDir())
	if got, err := FindRepoDir(); err != nil || got != lib {
		t.Errorf("with %s: FindRepoDir() = %q, %v; want %q", libDirEnv, got, err, lib)
	}

	t.Setenv(libDirEnv, "")
	empty := t.TempDir()
	t.Chdir(empty)
	if hasLibAbove(empty) {
		t.Skip("a parent of the temp dir has lib/facegate/models")
	}
	if _, err := FindRepoDir(); err == nil || !strings.Contains(err.Error(), "run make setup") {
		t.Errorf("FindRepoDir() in %s: err = %v, want one saying run make setup", empty, err)
	}
}

func hasLibAbove(dir string) bool {
	for {
		if isDir(filepath.Join(dir, "lib", "facegate", "models")) {
			return true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return false
		}
		dir = parent
	}
}

// TestInstalledFiles checks what `make setup` installed in this checkout.
// It skips when setup has not been run.
func TestInstalledFiles(t *testing.T) {
	dir, err := FindRepoDir()
	if err != nil {
		t.Skip(err)
	}
	m := Default()
	for _, f := range m.Models() {
		if err := VerifyFile(f, filepath.Join(dir, "models", f.Name)); err != nil {
			t.Error(err)
		}
	}
	rt, ok := m.Runtime(runtime.GOARCH)
	if !ok {
		t.Skipf("no runtime for %s in the manifest", runtime.GOARCH)
	}
	if err := VerifyFile(rt, filepath.Join(dir, rt.Name)); err != nil {
		t.Error(err)
	}
}
