package daemon

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// signingTestKey is a fixed key, so that failures reproduce.
func signingTestKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
}

func TestSignVerify(t *testing.T) {
	key := signingTestKey()
	pub := key.Public().(ed25519.PublicKey)
	e, err := fixedEvent().Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	if e.Sig == "" {
		t.Fatal("Sign left sig empty")
	}
	if err := e.Verify(pub); err != nil {
		t.Fatalf("a signed event does not verify: %v", err)
	}
	// Through the wire and back.
	payload, err := e.Payload()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseEvent(payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := back.Verify(pub); err != nil {
		t.Fatalf("after a round trip: %v", err)
	}
	// Signing is deterministic (Ed25519) and covers every field.
	again, _ := fixedEvent().Sign(key)
	if again.Sig != e.Sig {
		t.Error("two signatures of the same event differ")
	}
	for name, change := range map[string]func(*Event){
		"id":       func(e *Event) { e.ID = strings.Repeat("f", 32) },
		"door":     func(e *Event) { e.Door = "back" },
		"time":     func(e *Event) { e.Time = e.Time.Add(1e6) },
		"kind":     func(e *Event) { e.Kind = KindDeny; e.Reason = "unknown" },
		"person":   func(e *Event) { e.Person = &EventPerson{ID: "mallory", Name: e.Person.Name} },
		"name":     func(e *Event) { e.Person = &EventPerson{ID: e.Person.ID, Name: "Mallory"} },
		"nobody":   func(e *Event) { e.Person = nil },
		"score":    func(e *Event) { e.Score += 0.001 },
		"margin":   func(e *Event) { e.Margin += 0.001 },
		"liveness": func(e *Event) { e.Liveness -= 0.001 },
		"frames":   func(e *Event) { e.Frames++ },
		"expired":  func(e *Event) { e.Expired = true },
	} {
		x := e
		change(&x)
		if err := x.Verify(pub); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s changed: Verify = %v, want ErrBadSignature", name, err)
		}
	}
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, ed25519.SeedSize))
	if err := e.Verify(other.Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("another key: Verify = %v, want ErrBadSignature", err)
	}
	if err := fixedEvent().Verify(pub); !errors.Is(err, ErrUnsigned) {
		t.Errorf("unsigned: Verify = %v, want ErrUnsigned", err)
	}
	if err := e.Expire().Verify(pub); !errors.Is(err, ErrUnsigned) {
		t.Errorf("expired: Verify = %v, want ErrUnsigned (Expire drops sig)", err)
	}
	bad := e
	bad.Sig = "not base64!"
	if err := bad.Verify(pub); !errors.Is(err, ErrBadSignature) {
		t.Errorf("garbage sig: Verify = %v, want ErrBadSignature", err)
	}
	if _, err := fixedEvent().Sign(nil); err == nil {
		t.Error("Sign with no key succeeded")
	}
	invalid := fixedEvent()
	invalid.ID = "x"
	if _, err := invalid.Sign(key); err == nil {
		t.Error("Sign of an event Payload refuses succeeded")
	}
}

// writeKeyFile writes data at dir/name with mode (chmod after create, so
// the umask does not interfere).
func writeKeyFile(t *testing.T, dir, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadKeys(t *testing.T) {
	dir := t.TempDir()
	key := signingTestKey()
	pub := key.Public().(ed25519.PublicKey)
	privPEM, err := MarshalSigningKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := MarshalVerifyKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		p := writeKeyFile(t, dir, "door.key", privPEM, mode)
		got, err := LoadSigningKey(p)
		if err != nil {
			t.Fatalf("mode %04o: %v", mode, err)
		}
		if !got.Equal(key) {
			t.Fatal("loaded private key differs")
		}
		os.Remove(p)
	}
	pp := writeKeyFile(t, dir, "door.pub", pubPEM, 0o644)
	gotPub, err := LoadVerifyKey(pp)
	if err != nil {
		t.Fatal(err)
	}
	if !gotPub.Equal(pub) {
		t.Fatal("loaded public key differs")
	}
	if fp := KeyFingerprint(pub); !strings.HasPrefix(fp, "SHA256:") || len(fp) != len("SHA256:")+43 {
		t.Errorf("fingerprint %q", fp)
	}

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})
	ecPubDER, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	ecPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecPubDER})
	headers := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: []byte{1}})

	for _, tc := range []struct {
		name string
		data []byte
		mode os.FileMode
		want string
	}{
		{"group readable", privPEM, 0o640, "mode 0640 lets group or others read or write the private key; chmod 600"},
		{"world readable", privPEM, 0o644, "mode 0644"},
		{"group writable", privPEM, 0o620, "mode 0620"},
		{"empty", nil, 0o600, `no PEM "PRIVATE KEY" block`},
		{"public key in its place", pubPEM, 0o600, `a PEM "PUBLIC KEY", want "PRIVATE KEY"`},
		{"ECDSA", ecPEM, 0o600, "an ECDSA key, not Ed25519"},
		{"two blocks", append(append([]byte{}, privPEM...), privPEM...), 0o600, "more than one PEM block"},
		{"garbage after", append(append([]byte{}, privPEM...), "junk"...), 0o600, "text after it"},
		{"encrypted", headers, 0o600, "PEM headers"},
		{"bad DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("nope")}), 0o600, "not a PKCS#8 private key"},
		{"huge", bytes.Repeat([]byte{'a'}, maxKeyFileBytes+1), 0o600, "larger than 16 KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeKeyFile(t, t.TempDir(), "door.key", tc.data, tc.mode)
			_, err := LoadSigningKey(p)
			if err == nil {
				t.Fatal("loaded")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "signing_key "+p+": ") || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line starting with signing_key %s and holding %q", msg, p, tc.want)
			}
		})
	}
	if _, err := LoadSigningKey(filepath.Join(dir, "missing.key")); err == nil || !strings.Contains(err.Error(), "missing.key: no such file") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadSigningKey(dir); err == nil || !strings.Contains(err.Error(), "is a folder") {
		t.Errorf("folder: %v", err)
	}
	if _, err := LoadSigningKey("/dev/null"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("/dev/null: %v", err)
	}
	// A public key needs no particular mode, but must be an Ed25519 PKIX key.
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"private key in its place", privPEM, `a PEM "PRIVATE KEY", want "PUBLIC KEY"`},
		{"ECDSA", ecPubPEM, "an ECDSA key, not Ed25519"},
		{"not PEM", []byte("ssh-ed25519 AAAA..."), `no PEM "PUBLIC KEY" block`},
	} {
		p := writeKeyFile(t, t.TempDir(), "door.pub", tc.data, 0o644)
		_, err := LoadVerifyKey(p)
		if err == nil || !strings.HasPrefix(err.Error(), "public_key "+p+": ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
