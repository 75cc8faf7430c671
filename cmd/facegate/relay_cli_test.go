package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/facegate/facegate/daemon"
	"github.com/facegate/facegate/relay"
)

// The keygen and relay commands are not yet in main.go's command table, so
// these tests call their Run directly; facegate serve runs as the binary.

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// keygen runs facegate keygen in the test.
func keygen(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	err = (&KeygenCommand{stdout: &o, stderr: &e}).Run(context.Background(), args)
	return o.String(), e.String(), err
}

func isUsage(err error) bool {
	var ue usageError
	return errors.As(err, &ue)
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "front.key")
	pub := filepath.Join(dir, "front.pub")
	stdout, stderr, err := keygen(t, "--key", key)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Key, Pub, Fingerprint string }
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || out.Key != key || out.Pub != pub || !strings.HasPrefix(out.Fingerprint, "SHA256:") {
		t.Errorf("stdout %q (%v)", stdout, err)
	}
	if !strings.Contains(stderr, "wrote private key "+key) || !strings.Contains(stderr, out.Fingerprint) {
		t.Errorf("stderr %q", stderr)
	}
	for p, mode := range map[string]os.FileMode{key: 0o600, pub: 0o644} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, mode %v, want %04o", p, err, fi.Mode().Perm(), mode)
		}
	}
	priv, err := daemon.LoadSigningKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := daemon.LoadVerifyKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !pk.Equal(priv.Public()) || daemon.KeyFingerprint(pk) != out.Fingerprint {
		t.Fatal("the public key is not the private key's")
	}
	before, _ := os.ReadFile(key)

	// Never overwritten without --force, whichever of the two exists.
	if _, _, err := keygen(t, "--key", key); err == nil || !strings.Contains(err.Error(), key+" exists; not overwriting it") {
		t.Errorf("second run: %v", err)
	}
	other := filepath.Join(dir, "other.key")
	if _, _, err := keygen(t, "--key", other, "--pub", pub); err == nil || !strings.Contains(err.Error(), pub+" exists") {
		t.Errorf("existing public key: %v", err)
	}
	if _, err := os.Stat(other); err == nil {
		t.Error("a private key was written although its public key could not be")
	}
	if after, _ := os.ReadFile(key); !bytes.Equal(before, after) {
		t.Fatal("the key changed without --force")
	}
	// --force makes a new pair, atomically, with the same modes.
	if _, _, err := keygen(t, "--key", key, "--force"); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(key); bytes.Equal(before, after) {
		t.Error("--force kept the old key")
	}
	if fi, _ := os.Stat(key); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after --force %v", fi.Mode().Perm())
	}
	if _, err := daemon.LoadSigningKey(key); err != nil {
		t.Error(err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"front.key", "front.pub"}) {
		t.Errorf("files left: %q", names)
	}

	for _, tc := range []struct {
		args  []string
		usage bool
		want  string
	}{
		{nil, true, "--key is required"},
		{[]string{"front.key"}, true, "unexpected argument"},
		{[]string{"--key", key, "--pub", key, "--force"}, true, "is the private key's path"},
		{[]string{"--key", filepath.Join(dir, "no", "such", "dir.key")}, false, "no such file or directory"},
	} {
		_, _, err := keygen(t, tc.args...)
		if err == nil || isUsage(err) != tc.usage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("keygen %q: %v (usage %v), want %q", tc.args, err, isUsage(err), tc.want)
		}
	}
	for in, want := range map[string]string{"a/front.key": "a/front.pub", "front": "front.pub", "k.pem": "k.pem.pub", "a/.key": "a/.key.pub"} {
		if got := defaultPubPath(in); got != want {
			t.Errorf("defaultPubPath(%q) = %q, want %q", in, got, want)
		}
	}
	if _, stderr, err := keygen(t, "-h"); !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr, "Examples:") {
		t.Errorf("-h: %v", err)
	}
}

// relayConfig writes a relay configuration for door front.
func relayConfig(t *testing.T, dir, pub, url, extra string) string {
	t.Helper()
	p := filepath.Join(dir, "relay.yaml")
	body := fmt.Sprintf("door: front\npublic_key: %s\nmqtt:\n  url: %s\n%s", pub, url, extra)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRelayCommandRefuses(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := keygen(t, "--key", filepath.Join(dir, "front.key")); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "front.pub")
	run := func(args ...string) (string, error) {
		var e bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard only
		defer cancel()
		err := (&RelayCommand{stdout: &bytes.Buffer{}, stderr: &e}).Run(ctx, args)
		return e.String(), err
	}
	gpio := relayConfig(t, t.TempDir(), pub, "tcp://127.0.0.1:1", "output:\n  gpio:\n    chip: gpiochip99\n    line: 4\n")
	unknown := relayConfig(t, t.TempDir(), pub, "tcp://127.0.0.1:1", "output:\n  command: [true]\n  comand: [x]\n")
	for _, tc := range []struct {
		name  string
		args  []string
		usage bool
		want  string
	}{
		{"no config", nil, true, "no configuration: give --config FILE"},
		{"stray argument", []string{"--config", unknown, "now"}, true, `unexpected argument "now"`},
		{"missing file", []string{"--config", filepath.Join(dir, "nope.yaml")}, false, "nope.yaml: no such file"},
		{"unknown key", []string{"--config", unknown}, false, `line 7: unknown key "output.comand"`},
		{"no GPIO chip, --check", []string{"--config", gpio, "--check"}, false, "output.gpio.chip /dev/gpiochip99: no such GPIO chip"},
		{"no GPIO chip", []string{"--config", gpio}, false, "output.gpio.chip /dev/gpiochip99: no such GPIO chip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(tc.args...)
			if err == nil || isUsage(err) != tc.usage || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%v (usage %v): want one line holding %q", err, isUsage(err), tc.want)
			}
		})
	}
	good := relayConfig(t, t.TempDir(), pub, "tcp://127.0.0.1:1", "output:\n  command: [true]\n")
	if stderr, err := run("--config", good, "--check"); err != nil || !strings.Contains(stderr, "configuration, public key and output are fine") {
		t.Errorf("--check on a good configuration: %v, %q", err, stderr)
	}
	if stderr, err := run("-h"); !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr, "public_key:") {
		t.Errorf("-h: %v", err)
	}
	// The configuration shown in the usage text is one that works.
	var example []string
	for _, l := range strings.Split(relayUsage, "\n") {
		if strings.HasPrefix(l, "    ") {
			example = append(example, l)
		}
	}
	if c, err := relay.ParseConfig([]byte(strings.Join(example, "\n"))); err != nil || c.Door != "front" || len(c.Output.Command) != 3 {
		t.Errorf("the usage's example configuration: %+v, %v", c, err)
	}
}

// runningRelay is facegate relay running in the test.
type runningRelay struct {
	log  *lockedBuffer
	stop func()
}

func startRelayCommand(t *testing.T, config string) *runningRelay {
	t.Helper()
	rr := &runningRelay{log: &lockedBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- (&RelayCommand{stdout: &bytes.Buffer{}, stderr: rr.log}).Run(ctx, []string{"--config", config})
	}()
	var once sync.Once
	rr.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("relay: %v", err)
				}
			case <-time.After(time.Minute):
				t.Error("the relay did not stop")
			}
		})
	}
	t.Cleanup(func() {
		rr.stop()
		if t.Failed() {
			t.Logf("relay log:\n%s", rr.log)
		}
	})
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(rr.log.String(), "msg=subscribed") {
		select {
		case err := <-done:
			t.Fatalf("relay stopped: %v\n%s", err, rr.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the relay did not subscribe:\n%s", rr.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return rr
}

// eventsOfKind lists the ids of the door's recorded events of kind.
func eventsOfKind(t *testing.T, db, kind string) []string {
	t.Helper()
	conn, err := sql.Open("sqlite3", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query("SELECT id FROM events WHERE kind = ? ORDER BY time", kind)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		rows.Scan(&id)
		ids = append(ids, id)
	}
	return ids
}

// TestServeSignedUnlockOpensTheRelay is signed decisions end to end: keys
// from keygen, the door (facegate serve on a clip of the enrolled man) signs
// its unlocks, and the relay, with only the public key, verifies each and
// runs its command once per unlock. The same door without its key is then
// refused: its unlocks are unsigned.
func TestServeSignedUnlockOpensTheRelay(t *testing.T) {
	b := startBroker(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "door.db")
	enrollMan(t, db)
	key := filepath.Join(dir, "front.key")
	if _, _, err := keygen(t, "--key", key); err != nil {
		t.Fatal(err)
	}
	opened := filepath.Join(dir, "opened")
	rcfg := relayConfig(t, dir, filepath.Join(dir, "front.pub"), b.url(),
		fmt.Sprintf("output:\n  command: [/bin/sh, -c, 'echo \"$FACEGATE_EVENT_ID $FACEGATE_PERSON_ID\" >> \"$0\"', %s]\n", opened))
	rr := startRelayCommand(t, rcfg)
	clip := shortClip(t, 0, 125, 0, 1) // 5 s of the man

	d := startServe(t, writeConfig(t, dir, config(clip, db, b.url(), "signing_key: "+key+"\n")))
	if code := d.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
	if !strings.Contains(d.log(), "decisions are signed") {
		t.Error("serve does not say that it signs")
	}
	unlocks := eventsOfKind(t, db, "unlock")
	if len(unlocks) == 0 {
		t.Fatal("the door recorded no unlock")
	}
	lines := func() []string {
		b, _ := os.ReadFile(opened)
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	deadline := time.Now().Add(time.Minute)
	for len(lines()) < len(unlocks) || lines()[0] == "" {
		if time.Now().After(deadline) {
			t.Fatalf("the relay's command ran for %q; the door recorded unlocks %q", lines(), unlocks)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var want []string
	for _, id := range unlocks {
		want = append(want, id+" m001")
	}
	if got := lines(); !slices.Equal(got, want) {
		t.Errorf("the command ran for %q, want once per unlock %q", got, want)
	}
	if strings.Contains(rr.log.String(), "unlock refused") {
		t.Errorf("the relay refused a signed unlock:\n%s", rr.log)
	}
	t.Logf("%d signed unlock(s), each verified and acted on once", len(unlocks))

	// The same door without its key: the relay refuses every unlock.
	d2 := startServe(t, writeConfig(t, t.TempDir(), config(clip, db, b.url(), "")))
	if code := d2.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("serve without a key: exit %d", code)
	}
	unsigned := len(eventsOfKind(t, db, "unlock")) - len(unlocks)
	if unsigned == 0 {
		t.Fatal("the second run recorded no unlock")
	}
	deadline = time.Now().Add(time.Minute)
	for strings.Count(rr.log.String(), "reason=unsigned") < unsigned {
		if time.Now().After(deadline) {
			t.Fatalf("%d unsigned unlocks, the relay refused %d as unsigned", unsigned, strings.Count(rr.log.String(), "reason=unsigned"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := lines(); len(got) != len(unlocks) {
		t.Errorf("an unsigned unlock ran the command: %q", got)
	}
}

// TestServeRefusesAnExposedSigningKey: a signing key others can read stops
// the door at start with one line that says what to do.
func TestServeRefusesAnExposedSigningKey(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "front.key")
	if _, _, err := keygen(t, "--key", key); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(key, 0o640); err != nil {
		t.Fatal(err)
	}
	clip := filepath.Join(sharedDir, "clips", "cap13_edit2.mp4")
	cfg := writeConfig(t, dir, config(clip, filepath.Join(dir, "door.db"), "tcp://127.0.0.1:1", "signing_key: "+key+"\n"))
	r := facegate(t, "serve", "--config", cfg)
	ls := lines(r.stderr)
	if r.code != 1 || len(ls) != 1 || !strings.Contains(ls[0], "signing_key "+key+": mode 0640") || !strings.Contains(ls[0], "chmod 600") {
		t.Errorf("exit %d, stderr %q: want exit 1 and one line naming the key, its mode and the fix", r.code, r.stderr)
	}
}
