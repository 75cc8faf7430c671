package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/facegate/facegate/daemon"
)

// KeygenCommand makes the Ed25519 key pair of signed unlocks.
type KeygenCommand struct {
	stdout, stderr io.Writer
}

const keygenUsage = `Usage: facegate keygen --key FILE [--pub FILE] [--force]

Makes an Ed25519 key pair for signed decisions. The private key (PEM PKCS#8,
mode 0600) stays on the door: point the door's signing_key at it, and keep
it owned by the user the door runs as (a key group or others can read is
refused). The public key (PEM) goes to every relay of that door: point the
relay's public_key at it. Existing files are never overwritten without
--force; with --force a new pair replaces the old one, and every relay then
needs the new public key.

Prints the public key's fingerprint (the door and the relay log it at start
too) and ends stdout with one JSON line: {"key":...,"pub":...,"fingerprint":...}.

Examples:

	facegate keygen --key /etc/facegate/front.key             # and /etc/facegate/front.pub
	sudo -u facegate facegate keygen --key /var/lib/facegate/front.key --pub /tmp/front.pub
	facegate keygen --key front.key --force                   # a new pair; copy front.pub to the relays again
`

func (c *KeygenCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	keyPath := fs.String("key", "", "where to write the private key (required)")
	pubPath := fs.String("pub", "", "where to write the public key (default: --key with .pub for .key, or .pub added)")
	force := fs.Bool("force", false, "replace existing key files")
	if err := parseFlags(fs, args, c.stderr, keygenUsage); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected argument %q (give the private key's path with --key)", fs.Arg(0))
	case *keyPath == "":
		return usagef("--key is required: where to write the private key")
	}
	if *pubPath == "" {
		*pubPath = defaultPubPath(*keyPath)
	}
	if filepath.Clean(*pubPath) == filepath.Clean(*keyPath) {
		return usagef("--pub %s is the private key's path", *pubPath)
	}
	if !*force {
		for _, p := range []string{*keyPath, *pubPath} {
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("%s exists; not overwriting it (--force replaces the key pair, and every relay then needs the new public key)", p)
			}
		}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	privPEM, err := daemon.MarshalSigningKey(priv)
	if err != nil {
		return err
	}
	pubPEM, err := daemon.MarshalVerifyKey(pub)
	if err != nil {
		return err
	}
	if err := writeKeyFile(*keyPath, privPEM, 0o600, *force); err != nil {
		return err
	}
	if err := writeKeyFile(*pubPath, pubPEM, 0o644, *force); err != nil {
		if !*force {
			os.Remove(*keyPath) // no half pair left behind
		}
		return err
	}
	fp := daemon.KeyFingerprint(pub)
	fmt.Fprintf(c.stderr, "wrote private key %s (mode 0600; the door's signing_key)\n", *keyPath)
	fmt.Fprintf(c.stderr, "wrote public key %s (the relays' public_key)\n", *pubPath)
	fmt.Fprintf(c.stderr, "public key fingerprint %s\n", fp)
	line, err := json.Marshal(map[string]string{"key": *keyPath, "pub": *pubPath, "fingerprint": fp})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s\n", line)
	return nil
}

// defaultPubPath is door.pub for door.key, else path + ".pub".
func defaultPubPath(path string) string {
	if base, ok := strings.CutSuffix(path, ".key"); ok && base != "" && !strings.HasSuffix(base, "/") {
		return base + ".pub"
	}
	return path + ".pub"
}

// writeKeyFile writes data at path with mode, whatever the umask. Without
// force it fails if path exists (checked atomically by O_EXCL); with force
// it replaces path atomically (a temporary file renamed over it), so a
// reader never sees half a key.
func writeKeyFile(path string, data []byte, mode fs.FileMode, force bool) error {
	var f *os.File
	var err error
	if force {
		f, err = os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*") // mode 0600
	} else {
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists; not overwriting it (--force replaces the key pair)", path)
	} else if err != nil {
		return fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && force {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	return nil
}
