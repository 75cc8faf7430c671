// Package deploy holds the files that install facegate as a service; its
// tests check them.
package deploy

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// tree lists every path under root with its mode and content hash.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		line := fmt.Sprintf("%s %v", rel, info.Mode())
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func install(t *testing.T, root string) string {
	t.Helper()
	cmd := exec.Command("bash", "install.sh")
	cmd.Env = append(os.Environ(), "DESTDIR="+root)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("install.sh into %s: %v\n%s", root, err, out)
	}
	return string(out)
}

func TestInstallTwiceGivesTheSameTree(t *testing.T) {
	if _, err := os.Stat("../bin/facegate"); err != nil {
		t.Fatal("bin/facegate is missing: run make build (make test does)")
	}
	root := t.TempDir()
	install(t, root)
	first := tree(t, root)
	second := install(t, root)
	if again := tree(t, root); strings.Join(again, "\n") != strings.Join(first, "\n") {
		t.Errorf("the second install changed the tree:\nfirst:\n%s\nsecond:\n%s", strings.Join(first, "\n"), strings.Join(again, "\n"))
	}
	if strings.Contains(second, "installed") {
		t.Errorf("the second install replaced files:\n%s", second)
	}
	for _, want := range []string{"usr/local/bin/facegate -rwxr-xr-x", "usr/local/lib/facegate/models/fr_feature.onnx -rw-r--r--",
		"etc/systemd/system/facegate.service -rw-r--r--", "etc/facegate/facegate.yaml -rw-r-----", "usr/local/bin/facegate-enroll -rwxr-xr-x"} {
		found := false
		for _, l := range first {
			found = found || strings.HasPrefix(l, want)
		}
		if !found {
			t.Errorf("installed tree lacks %q", want)
		}
	}
	// An admin's configuration survives a reinstall.
	cfg := filepath.Join(root, "etc/facegate/facegate.yaml")
	if err := os.WriteFile(cfg, []byte("door: mine\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	install(t, root)
	if b, _ := os.ReadFile(cfg); string(b) != "door: mine\n" {
		t.Errorf("reinstall overwrote the admin's config: %q", b)
	}
}

// TestUnitVerifies runs systemd-analyze verify on the unit, pointed at the
// built binary, and logs the offline security exposure.
func TestUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze (Debian package systemd) is needed: %v", err)
	}
	bin, err := filepath.Abs("../bin/facegate")
	if err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile("facegate.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "facegate.service")
	body := strings.ReplaceAll(string(unit), "/usr/local/bin/facegate", bin)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	sec, err := exec.Command(sa, "security", "--offline=true", path).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) (\w+)`).FindStringSubmatch(string(sec))
	if err != nil || m == nil {
		t.Fatalf("systemd-analyze security --offline: %v\n%s", err, sec)
	}
	t.Logf("systemd-analyze security: exposure %s %s", m[1], m[2])
	if m[2] != "OK" {
		t.Errorf("exposure %s %s: the hardening regressed", m[1], m[2])
	}
}
