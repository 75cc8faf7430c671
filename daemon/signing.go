package daemon

// Signed decisions: the door holds an Ed25519 private key and signs each
// event; a relay holds only the public key and verifies. Keys live in PEM
// files: the private key as PKCS#8 ("PRIVATE KEY"), the public key as PKIX
// ("PUBLIC KEY"), the forms openssl and facegate keygen write.

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/facegate/facegate/internal/confmsg"
	"io"
	"os"
	"strconv"
)

// maxKeyFileBytes bounds a key file: an Ed25519 key in PEM is about 120
// bytes; this refuses /dev/zero and the like.
const maxKeyFileBytes = 16 << 10

// Signature problems, for errors.Is.
var (
	// ErrUnsigned is an event without sig.
	ErrUnsigned = errors.New("event is not signed")
	// ErrBadSignature is a sig that does not verify with the key: the
	// event was changed, or signed by another key.
	ErrBadSignature = errors.New("signature does not verify")
)

// Sign returns e with Sig set: the base64 Ed25519 signature of
// e.SigningBytes() by key. It fails only for an event Payload would refuse.
func (e Event) Sign(key ed25519.PrivateKey) (Event, error) {
	if len(key) != ed25519.PrivateKeySize {
		return e, fmt.Errorf("sign event %s: not an Ed25519 private key", e.ID)
	}
	msg, err := e.SigningBytes()
	if err != nil {
		return e, err
	}
	e.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, msg))
	return e, nil
}

// Verify checks e's signature with key: nil when it verifies, else an error
// wrapping ErrUnsigned or ErrBadSignature (or Payload's error for an event
// that cannot be encoded).
func (e Event) Verify(key ed25519.PublicKey) error {
	if e.Sig == "" {
		return ErrUnsigned
	}
	if len(key) != ed25519.PublicKeySize {
		return fmt.Errorf("verify event %s: not an Ed25519 public key", e.ID)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(e.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("event %s: %w (sig is not a base64 Ed25519 signature)", e.ID, ErrBadSignature)
	}
	msg, err := e.SigningBytes()
	if err != nil {
		return err
	}
	if !ed25519.Verify(key, msg, sig) {
		return fmt.Errorf("event %s: %w", e.ID, ErrBadSignature)
	}
	return nil
}

// LoadSigningKey reads the door's Ed25519 private key from a PEM (PKCS#8)
// file. The file must be a regular file that only its owner may read or
// write (mode 0600 or 0400): a key others can read is refused, as ssh does.
// Errors are one line that starts with "signing_key FILE:".
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	data, err := readKeyFile(path, true)
	if err != nil {
		return nil, fmt.Errorf("signing_key %s", err)
	}
	key, err := ParseSigningKey(data)
	if err != nil {
		return nil, fmt.Errorf("signing_key %s: %w", quotePath(path), err)
	}
	return key, nil
}

// LoadVerifyKey reads an Ed25519 public key from a PEM (PKIX, "PUBLIC KEY")
// file. Errors are one line that start with "public_key FILE:".
func LoadVerifyKey(path string) (ed25519.PublicKey, error) {
	data, err := readKeyFile(path, false)
	if err != nil {
		return nil, fmt.Errorf("public_key %s", err)
	}
	key, err := ParseVerifyKey(data)
	if err != nil {
		return nil, fmt.Errorf("public_key %s: %w", quotePath(path), err)
	}
	return key, nil
}

// ParseSigningKey reads an Ed25519 private key from PEM: one "PRIVATE KEY"
// block holding PKCS#8, and nothing else but whitespace.
func ParseSigningKey(data []byte) (ed25519.PrivateKey, error) {
	der, err := onePEMBlock(data, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS#8 private key: %v", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("an %s key, not Ed25519 (make one with facegate keygen)", keyKind(k))
	}
	return priv, nil
}

// ParseVerifyKey reads an Ed25519 public key from PEM: one "PUBLIC KEY"
// block holding PKIX, and nothing else but whitespace.
func ParseVerifyKey(data []byte) (ed25519.PublicKey, error) {
	der, err := onePEMBlock(data, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("not a PKIX public key: %v", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("an %s key, not Ed25519 (make one with facegate keygen)", keyKind(k))
	}
	return pub, nil
}

// MarshalSigningKey is key as PEM PKCS#8, the form LoadSigningKey reads.
func MarshalSigningKey(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// MarshalVerifyKey is key as PEM PKIX, the form LoadVerifyKey reads.
func MarshalVerifyKey(key ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// KeyFingerprint names a public key in logs: "SHA256:" and the unpadded
// base64 of the sha256 of its 32 bytes (the style of ssh-keygen -l), so the
// door's and the relay's logs can be compared.
func KeyFingerprint(key ed25519.PublicKey) string {
	sum := sha256.Sum256(key)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// readKeyFile reads a small regular file; private refuses one that group or
// others may access. Errors start with the quoted path and have no prefix.
func readKeyFile(path string, private bool) ([]byte, error) {
	name := quotePath(path)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", name, confmsg.FileProblem(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %s", name, confmsg.FileProblem(err))
	}
	switch {
	case fi.IsDir():
		return nil, fmt.Errorf("%s: is a folder, not a key file", name)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s: is not a regular file", name)
	case private && fi.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("%s: mode %04o lets group or others read or write the private key; chmod 600 it (owned by the user the door runs as)",
			name, fi.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %s", name, confmsg.FileProblem(err))
	}
	if len(data) > maxKeyFileBytes {
		return nil, fmt.Errorf("%s: larger than %d KiB, not a key file", name, maxKeyFileBytes>>10)
	}
	return data, nil
}

// onePEMBlock returns the bytes of the one PEM block of type typ in data.
func onePEMBlock(data []byte, typ string) ([]byte, error) {
	b, rest := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("no PEM %q block in it", typ)
	}
	if b.Type != typ {
		return nil, fmt.Errorf("a PEM %s, want %q", strconv.Quote(b.Type), typ)
	}
	if len(b.Headers) > 0 {
		return nil, errors.New("PEM headers (an encrypted key?); want an unencrypted PKCS#8 key")
	}
	for _, c := range rest {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return nil, errors.New("more than one PEM block, or text after it")
		}
	}
	return b.Bytes, nil
}

func keyKind(k any) string {
	switch fmt.Sprintf("%T", k) {
	case "*rsa.PrivateKey", "*rsa.PublicKey":
		return "RSA"
	case "*ecdsa.PrivateKey", "*ecdsa.PublicKey":
		return "ECDSA"
	case "*ecdh.PrivateKey", "*ecdh.PublicKey":
		return "X25519/ECDH"
	}
	return fmt.Sprintf("%T", k)
}

// quotePath names a file in an error: as it is when printable, else quoted.
func quotePath(path string) string {
	return confmsg.QuoteIfNeeded(path)
}
