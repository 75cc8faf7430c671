package relay

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"

	"github.com/facegate/facegate/daemon"
)

// hang bounds every wait in these tests: far beyond what any step needs, it
// only stops a hung test.
const hang = 20 * time.Second

// testKey is a fixed key per seed, so that failures reproduce.
func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// testEvent is an unlock of Ada at door at time at, with a fixed id when id
// is not "".
func testEvent(door string, at time.Time, id string) daemon.Event {
	e := daemon.NewEvent(door, daemon.Decision{Kind: daemon.KindUnlock, PersonID: "e1042", PersonName: "Ada Lovelace",
		Score: 0.81, Margin: 0.3, Liveness: 0.97, Frames: 3, At: at}, at)
	if id != "" {
		e.ID = id
	}
	return e
}

// payload is e signed by key (unsigned when key is nil), on the wire.
func payload(t testing.TB, e daemon.Event, key ed25519.PrivateKey) []byte {
	t.Helper()
	if key != nil {
		var err error
		if e, err = e.Sign(key); err != nil {
			t.Fatal(err)
		}
	}
	b, err := e.Payload()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func reasonOf(err error) Reason {
	var r *Rejection
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}

// ---------------------------------------------------------------------------
// Verifier

func TestVerifier(t *testing.T) {
	key, other := testKey(1), testKey(2)
	now := time.Date(2026, 3, 1, 8, 30, 5, 0, time.UTC)
	v := NewVerifier(pubOf(key), "front", 5*time.Second, time.Second)
	good := payload(t, testEvent("front", now.Add(-time.Second), ""), key)
	tampered := bytes.Replace(good, []byte("Ada Lovelace"), []byte("Adb Lovelace"), 1)
	deny := testEvent("front", now, "")
	deny.Kind, deny.Reason, deny.Person = daemon.KindDeny, "unknown", nil
	nobody := testEvent("front", now, "")
	nobody.Person = nil
	signedExpired, _ := testEvent("front", now, "").Sign(key)
	signedExpired.Expired = true // still carries a sig: it covered expired:false
	for _, tc := range []struct {
		name string
		msg  []byte
		want Reason
	}{
		{"signed unlock", good, ""},
		{"the same again", good, ReasonReplay},
		{"one byte changed", tampered, ReasonBadSignature},
		{"another key", payload(t, testEvent("front", now, ""), other), ReasonBadSignature},
		{"unsigned", payload(t, testEvent("front", now, ""), nil), ReasonUnsigned},
		{"old", payload(t, testEvent("front", now.Add(-6*time.Second-time.Millisecond), ""), key), ReasonStale},
		{"oldest accepted", payload(t, testEvent("front", now.Add(-6*time.Second), ""), key), ""},
		{"from the future", payload(t, testEvent("front", now.Add(time.Second+time.Millisecond), ""), key), ReasonFuture},
		{"furthest ahead accepted", payload(t, testEvent("front", now.Add(time.Second), ""), key), ""},
		{"another door", payload(t, testEvent("back", now, ""), key), ReasonWrongDoor},
		{"a deny", payload(t, deny, key), ReasonNotUnlock},
		{"expired", payload(t, testEvent("front", now, "").Expire(), nil), ReasonNotUnlock},
		{"expired with the old sig", payload(t, signedExpired, nil), ReasonNotUnlock},
		{"nobody", payload(t, nobody, key), ReasonNotUnlock},
		{"not JSON", []byte("open sesame"), ReasonMalformed},
		{"empty", nil, ReasonMalformed},
		{"extra key", bytes.Replace(good, []byte(`{`), []byte(`{"open":true,`), 1), ReasonMalformed},
		{"too long", bytes.Repeat([]byte(" "), daemon.MaxEventBytes+1), ReasonMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := v.Check(tc.msg, now)
			if got := reasonOf(err); got != tc.want || (err != nil && tc.want == "") {
				t.Fatalf("reason %q (err %v), want %q", got, err, tc.want)
			}
			if err == nil && (ev.Person == nil || ev.Person.ID != "e1042") {
				t.Errorf("accepted event %+v", ev)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error on two lines: %q", err)
			}
		})
	}
	// Re-formatted (spaces, another key order) is the same event: its
	// signature verifies (it covers the canonical form) and its id is
	// already taken.
	if ev, err := v.Check(reformat(t, good), now); reasonOf(err) != ReasonReplay {
		t.Errorf("re-formatted copy: %+v, %v; want a replay", ev, err)
	}
}

// reformat re-encodes a JSON object with indentation and its keys reversed.
func reformat(t *testing.T, b []byte) []byte {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		t.Fatal(err)
	}
	m := n.Content[0]
	var out bytes.Buffer
	out.WriteString("{\n")
	for i := len(m.Content) - 2; i >= 0; i -= 2 {
		k, v := m.Content[i], m.Content[i+1]
		val := strconv.Quote(v.Value)
		switch {
		case v.Kind == yaml.MappingNode:
			val = fmt.Sprintf(`{"id": %q, "name": %q}`, v.Content[1].Value, v.Content[3].Value)
		case v.Tag == "!!null", v.Tag == "!!bool", v.Tag == "!!int", v.Tag == "!!float":
			val = v.Value
		}
		fmt.Fprintf(&out, "  %q : %s", k.Value, val)
		if i > 0 {
			out.WriteString(",")
		}
		out.WriteString("\n")
	}
	out.WriteString("}\n")
	return out.Bytes()
}

func TestVerifierForgetsAndBounds(t *testing.T) {
	key := testKey(1)
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	v := NewVerifier(pubOf(key), "front", 5*time.Second, time.Second)
	v.MaxSeen = 100
	// 100 unlocks a second apart: the window (5 s + 1 s + 1 s margin) holds
	// a handful, and only those are remembered.
	var first []byte
	for i := 0; i < 100; i++ {
		at := t0.Add(time.Duration(i) * time.Second)
		msg := payload(t, testEvent("front", at, ""), key)
		if i == 0 {
			first = msg
		}
		if _, err := v.Check(msg, at); err != nil {
			t.Fatalf("unlock %d: %v", i, err)
		}
	}
	if n := v.Remembered(); n > 64+8 {
		t.Errorf("%d ids remembered after 100 s of unlocks a second apart, want at most one sweep's worth", n)
	}
	// The first, replayed now, is refused as stale: forgetting it was safe.
	if _, err := v.Check(first, t0.Add(99*time.Second)); reasonOf(err) != ReasonStale {
		t.Errorf("replay of a forgotten id: %v, want stale", err)
	}
	// A burst beyond MaxSeen within one window fails closed.
	w := NewVerifier(pubOf(key), "front", 5*time.Second, time.Second)
	w.MaxSeen = 10
	var last error
	for i := 0; i < 11; i++ {
		_, last = w.Check(payload(t, testEvent("front", t0, ""), key), t0)
	}
	if reasonOf(last) != ReasonOverload {
		t.Errorf("11th unlock with MaxSeen 10: %v, want overload", last)
	}
}

// ---------------------------------------------------------------------------
// Configuration

const exampleConfig = `# facegate relay --config relay.yaml
door: front
topic_prefix: facegate
public_key: /etc/facegate/front.pub
max_age: 5s
skew: 1s
log_level: info
mqtt:
  url: tcp://127.0.0.1:1883
  client_id: ""
  username: facegate-relay-front
  password_file: /etc/facegate/mqtt.password
  ca: ""
  cert: ""
  key: ""
output:
  command: [/usr/local/bin/open-door, --seconds, "3"]
  timeout: 10s
`

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte(exampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Door: "front", TopicPrefix: "facegate", PublicKey: "/etc/facegate/front.pub", MaxAge: 5 * time.Second, Skew: time.Second,
		LogLevel: "info",
		MQTT: MQTTConfig{URL: "tcp://127.0.0.1:1883", ClientID: "facegate-relay-front", Username: "facegate-relay-front",
			PasswordFile: "/etc/facegate/mqtt.password"},
		Output: OutputConfig{Command: []string{"/usr/local/bin/open-door", "--seconds", "3"}, Timeout: 10 * time.Second},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	if c.Topic() != "facegate/front/events/unlock" {
		t.Errorf("topic %q", c.Topic())
	}
	// The least that works; the defaults fill the rest.
	c, err = ParseConfig([]byte("door: front\npublic_key: k.pub\noutput:\n  gpio:\n    chip: gpiochip0\n    line: 17\n"))
	if err != nil {
		t.Fatal(err)
	}
	want = Config{Door: "front", TopicPrefix: DefaultTopicPrefix, PublicKey: "k.pub", MaxAge: DefaultMaxAge, Skew: DefaultSkew, LogLevel: "info",
		MQTT:   MQTTConfig{URL: DefaultURL, ClientID: "facegate-relay-front"},
		Output: OutputConfig{GPIO: &GPIOConfig{Chip: "gpiochip0", Line: 17, Pulse: DefaultPulse}}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	for chip, path := range map[string]string{"gpiochip0": "/dev/gpiochip0", "2": "/dev/gpiochip2", "/dev/gpiochip1": "/dev/gpiochip1", "./x": "./x"} {
		if got := (GPIOConfig{Chip: chip}).ChipPath(); got != path {
			t.Errorf("ChipPath(%q) = %q, want %q", chip, got, path)
		}
	}
	c, err = ParseConfig([]byte("door: front\npublic_key: k.pub\noutput:\n  gpio: {chip: /dev/gpiochip3, line: 0, active_low: yes, pulse: 2500ms}\n"))
	if err != nil || *c.Output.GPIO != (GPIOConfig{Chip: "/dev/gpiochip3", Line: 0, ActiveLow: true, Pulse: 2500 * time.Millisecond}) {
		t.Errorf("gpio flow mapping: %+v, %v", c.Output.GPIO, err)
	}
}

func TestParseConfigErrors(t *testing.T) {
	const base = "door: front\npublic_key: k.pub\noutput:\n  command: [/bin/true]\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"empty", "", "door: missing"},
		{"no public key", "door: front\n", "public_key: missing"},
		{"no output", "door: front\npublic_key: k.pub\n", "output: missing; set output.command"},
		{"unknown key", base + "mqtt:\n  usrname: x\n", `line 6: unknown key "mqtt.usrname" (known here: ca, cert, client_id, key, password_file, url, username)`},
		{"unknown top key", "dor: front\n", `line 1: unknown key "dor"`},
		{"set twice", base + "door: back\n", "line 5: door is set twice (first on line 1)"},
		{"duration without unit", base + "max_age: 5\n", `line 5: max_age: "5" is not a duration (write it with a unit`},
		{"negative skew", base + "skew: -1s\n", "line 5: skew: -1s is negative"},
		{"zero max_age", base + "max_age: 0s\n", "line 5: max_age: 0s must be positive"},
		{"huge max_age", base + "max_age: 2h\n", "max_age: 2h is longer than 1h"},
		{"bad door", "door: Front Door\npublic_key: k\noutput:\n  command: [x]\n", `line 1: door: "Front Door" may hold only a-z`},
		{"wildcard prefix", base + "topic_prefix: a/#\n", `topic_prefix: "a/#" holds an MQTT wildcard`},
		{"bad url", base + "mqtt:\n  url: http://x:1\n", `line 6: mqtt.url: "http://x:1" is not an MQTT broker URL`},
		{"no host", base + "mqtt:\n  url: tcp://:1883\n", "has no host"},
		{"port out of range", base + "mqtt:\n  url: tcp://broker:70000\n", "port 70000 is out of range"},
		{"password in url hidden", base + "mqtt:\n  url: ftp://u:secret@h:1\n", `"ftp://u:xxxxx@h:1"`},
		{"cert without key", base + "mqtt:\n  cert: c.pem\n", "mqtt.cert: set without mqtt.key"},
		{"both outputs", base + "  gpio: {chip: gpiochip0, line: 1}\n", "output: both command and gpio are set"},
		{"command as text", "door: front\npublic_key: k\noutput:\n  command: /usr/bin/open-door --now\n", "line 4: output.command: expected a list: the program and its arguments"},
		{"empty command", "door: front\npublic_key: k\noutput:\n  command: []\n", "output.command: an empty list"},
		{"empty program", "door: front\npublic_key: k\noutput:\n  command: ['', x]\n", "output.command: the program (the first item) is empty"},
		{"nested list in command", "door: front\npublic_key: k\noutput:\n  command: [a, [b]]\n", "output.command: item 2: expected text, found a list"},
		{"gpio without line", "door: front\npublic_key: k\noutput:\n  gpio: {chip: gpiochip0}\n", "output.gpio.line: missing"},
		{"gpio without chip", "door: front\npublic_key: k\noutput:\n  gpio: {line: 3}\n", "output.gpio.chip: missing"},
		{"negative line", "door: front\npublic_key: k\noutput:\n  gpio: {chip: c, line: -2}\n", "output.gpio.line: missing"},
		{"line not a number", "door: front\npublic_key: k\noutput:\n  gpio: {chip: c, line: seventeen}\n", `output.gpio.line: "seventeen" is not a whole number`},
		{"active_low not bool", "door: front\npublic_key: k\noutput:\n  gpio: {chip: c, line: 1, active_low: maybe}\n", `"maybe" is not true or false`},
		{"gpio with timeout", "door: front\npublic_key: k\noutput:\n  timeout: 3s\n  gpio: {chip: c, line: 1}\n", "output.timeout: applies to output.command only"},
		{"long pulse", "door: front\npublic_key: k\noutput:\n  gpio: {chip: c, line: 1, pulse: 1h}\n", "output.gpio.pulse: 1h is longer than 10m"},
		{"section not a mapping", base + "mqtt: tcp://x:1\n", `line 5: expected mqtt: a mapping of ca, cert`},
		{"not a mapping", "- door\n", "expected settings"},
		{"second document", base + "---\ndoor: back\n", "line 5: a second YAML document"},
		{"merge key", "x: &a {door: front}\n<<: *a\n", `unknown key "x"`},
		{"merge key only", "<<: {door: front}\n", "merge keys (<<) are not supported"},
		{"bad YAML", "door: [front\n", "invalid YAML"},
		{"tab", "door:\tfront\n\tpublic_key: x\n", "invalid YAML"},
		{"bad log level", base + "log_level: loud\n", `log_level: "loud" is not one of`},
		{"control char in value", "door: \"fr\\nont\"\npublic_key: k\noutput:\n  command: [x]\n", `"fr\nont" may hold only`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("accepted; want an error holding %q", tc.want)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.ContainsAny(msg, "\n\r") {
				t.Errorf("error %q: want one line holding %q", msg, tc.want)
			}
		})
	}
}

func TestLoadConfigChecksFiles(t *testing.T) {
	dir := t.TempDir()
	pubPEM, _ := daemon.MarshalVerifyKey(pubOf(testKey(1)))
	privPEM, _ := daemon.MarshalSigningKey(testKey(1))
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pub := write("front.pub", pubPEM, 0o644)
	priv := write("front.key", privPEM, 0o600)
	pw := write("pw", []byte("secret\n"), 0o600)
	n := 0
	cfg := func(extra string) string {
		n++
		return write(fmt.Sprintf("relay%d.yaml", n), []byte(fmt.Sprintf("door: front\npublic_key: %s\nmqtt:\n  password_file: %s\n%s", pub, pw, extra)), 0o644)
	}
	c, err := LoadConfig(cfg("output:\n  command: [true]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Output.Command[0] != "true" {
		t.Errorf("%+v", c)
	}
	for _, tc := range []struct{ name, file, want string }{
		{"missing file", filepath.Join(dir, "nope.yaml"), "nope.yaml: no such file"},
		{"folder", dir, "is a folder"},
		{"program not found", cfg("output:\n  command: [no-such-program-here]\n"), `output.command: "no-such-program-here": not found in $PATH`},
		{"program path missing", cfg("output:\n  command: [/no/such/open-door]\n"), `output.command: "/no/such/open-door": no such file`},
		{"program not executable", cfg("output:\n  command: [" + pw + "]\n"), "not executable"},
		{"missing public key", write("r2.yaml", []byte("door: front\npublic_key: /no/key.pub\noutput:\n  command: [true]\n"), 0o644), "public_key /no/key.pub: no such file"},
		{"private key as public", write("r3.yaml", []byte("door: front\npublic_key: "+priv+"\noutput:\n  command: [true]\n"), 0o644), `want "PUBLIC KEY"`},
		{"missing password file", write("r4.yaml", []byte("door: front\npublic_key: "+pub+"\nmqtt:\n  password_file: /no/pw\noutput:\n  command: [true]\n"), 0o644), "mqtt.password_file: \"/no/pw\": no such file"},
		{"huge", write("big.yaml", bytes.Repeat([]byte("#\n"), maxConfigBytes), 0o644), "larger than 1024 KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(tc.file)
			if err == nil {
				t.Fatal("loaded")
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || !strings.HasPrefix(msg, tc.file) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line starting with the file and holding %q", msg, tc.want)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Outputs

func TestGPIOOutputRefusesAMissingChip(t *testing.T) {
	// No GPIO chip here: only the configuration and the errors at start can
	// be tested.
	_, err := openGPIO(GPIOConfig{Chip: "gpiochip99", Line: 3, Pulse: time.Second})
	if err == nil || !strings.Contains(err.Error(), "output.gpio.chip /dev/gpiochip99: no such GPIO chip") {
		t.Errorf("missing chip: %v", err)
	}
	_, err = openGPIO(GPIOConfig{Chip: "/dev/null", Line: 3, Pulse: time.Second})
	if err == nil || !strings.Contains(err.Error(), "/dev/null: not a GPIO character device") {
		t.Errorf("/dev/null: %v", err)
	}
	// Run reports it before connecting anywhere.
	dir := t.TempDir()
	pubPEM, _ := daemon.MarshalVerifyKey(pubOf(testKey(1)))
	pub := filepath.Join(dir, "k.pub")
	os.WriteFile(pub, pubPEM, 0o644)
	c, err := ParseConfig([]byte(fmt.Sprintf("door: front\npublic_key: %s\nmqtt:\n  url: tcp://127.0.0.1:1\noutput:\n  gpio: {chip: gpiochip99, line: 3}\n", pub)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	if err := r.Run(ctx); err == nil || !strings.Contains(err.Error(), "gpiochip99") {
		t.Errorf("Run with a missing chip: %v", err)
	}
}

// TestGPIOStructSizes checks the uAPI structs against the sizes encoded in
// the ioctl numbers (bits 16-29), the one check of the GPIO path possible
// without a chip.
func TestGPIOStructSizes(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  uint
		size uintptr
	}{
		{"GPIO_GET_CHIPINFO_IOCTL", unix.GPIO_GET_CHIPINFO_IOCTL, unsafe.Sizeof(unix.GPIOChipInfo{})},
		{"GPIO_V2_GET_LINE_IOCTL", unix.GPIO_V2_GET_LINE_IOCTL, unsafe.Sizeof(unix.GPIOV2LineRequest{})},
		{"GPIO_V2_LINE_SET_VALUES_IOCTL", unix.GPIO_V2_LINE_SET_VALUES_IOCTL, unsafe.Sizeof(unix.GPIOV2LineValues{})},
	} {
		if want := uintptr(tc.req>>16) & 0x3fff; tc.size != want {
			t.Errorf("%s: struct of %d bytes, the ioctl says %d", tc.name, tc.size, want)
		}
	}
}

// blockingOutput is an output that holds each trigger until released.
type blockingOutput struct {
	started chan string
	release chan struct{}
}

func (b *blockingOutput) trigger(ctx context.Context, ev daemon.Event) error {
	b.started <- ev.ID
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return nil
}
func (b *blockingOutput) close() error     { return nil }
func (b *blockingOutput) describe() string { return "test" }

// TestOutputBusy: unlocks accepted while the output is busy wait (one) or
// are merged with the one waiting, never queued without bound.
func TestOutputBusy(t *testing.T) {
	key := testKey(1)
	pubPEM, _ := daemon.MarshalVerifyKey(pubOf(key))
	pub := filepath.Join(t.TempDir(), "k.pub")
	os.WriteFile(pub, pubPEM, 0o644)
	c, err := ParseConfig([]byte("door: front\npublic_key: " + pub + "\noutput:\n  command: [true]\n"))
	if err != nil {
		t.Fatal(err)
	}
	outputs := make(chan error, 10)
	r, err := New(c, Options{OnOutput: func(_ daemon.Event, err error) { outputs <- err }})
	if err != nil {
		t.Fatal(err)
	}
	out := &blockingOutput{started: make(chan string, 10), release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.drive(ctx, out); close(done) }()
	defer func() { cancel(); <-done }()
	var ids []string
	for i := 0; i < 4; i++ {
		ev := testEvent("front", time.Now(), "")
		ids = append(ids, ev.ID)
		r.handle(c.Topic(), payload(t, ev, key))
		if i == 0 {
			if got := <-out.started; got != ev.ID {
				t.Fatalf("started %s, want %s", got, ev.ID)
			}
		}
	}
	// The first runs, the second waits, the third and fourth are merged.
	out.release <- struct{}{}
	if got := <-out.started; got != ids[1] {
		t.Errorf("second output for %s, want %s", got, ids[1])
	}
	out.release <- struct{}{}
	<-outputs
	<-outputs
	if st := r.Stats(); st.Accepted != 4 || st.Coalesced != 2 || st.Outputs != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestCommandOutput(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "env")
	ev := testEvent("front", time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC), "0123456789abcdef0123456789abcdef")
	ev.Person.Name = `Ada "$(touch pwned)" Lovelace`
	c := &commandOutput{argv: []string{"/bin/sh", "-c", `printf '%s|%s|%s|%s|%s|%s\n' "$FACEGATE_PERSON_ID" "$FACEGATE_PERSON_NAME" "$FACEGATE_EVENT_ID" "$FACEGATE_EVENT_TIME" "$FACEGATE_DOOR" "$1" > "$0"`, out, "$(touch pwned2)"}, timeout: hang}
	if err := c.trigger(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	want := `e1042|Ada "$(touch pwned)" Lovelace|0123456789abcdef0123456789abcdef|2026-03-01T08:00:00.000Z|front|$(touch pwned2)` + "\n"
	if string(got) != want {
		t.Errorf("the command saw %q, want %q", got, want)
	}
	// A failure says so, with the command's output.
	c = &commandOutput{argv: []string{"/bin/sh", "-c", "echo strike jammed >&2; exit 3"}, timeout: hang}
	if err := c.trigger(context.Background(), ev); err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "strike jammed") {
		t.Errorf("failing command: %v", err)
	}
	// A command that outlives its timeout is killed with its children.
	pidFile := filepath.Join(dir, "pid")
	c = &commandOutput{argv: []string{"/bin/sh", "-c", `sleep 60 & echo $! > "$0"; wait`, pidFile}, timeout: 300 * time.Millisecond}
	start := time.Now()
	err := c.trigger(context.Background(), ev)
	if err == nil || !strings.Contains(err.Error(), "killed after the timeout (300ms)") {
		t.Errorf("slow command: %v", err)
	}
	if time.Since(start) > hang {
		t.Errorf("the timeout did not stop the command")
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 {
		t.Fatalf("no pid in %q", b)
	}
	deadline := time.Now().Add(hang)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(pid) {
		t.Errorf("the command's child %d outlived the timeout", pid)
	}
}

// alive reports whether process pid runs (a zombie, killed but not yet
// reaped by its new parent, does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

// ---------------------------------------------------------------------------
// With a real mosquitto, loaded with deploy/mosquitto's configuration

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// mosquitto is a real broker on a free loopback port, configured with
// deploy/mosquitto's mosquitto.conf, acl and make-passwd.sh for door
// "front"; passwords holds each user's password file.
type mosquitto struct {
	port      int
	log       *syncBuffer
	passwords string // folder of USER.password files
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startMosquitto(t *testing.T) *mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("mosquitto: %v (apt-get install mosquitto; make setup does)", err)
	}
	deploy := filepath.Join("..", "deploy", "mosquitto")
	dir := t.TempDir()
	m := &mosquitto{port: freePort(t), log: &syncBuffer{}, passwords: filepath.Join(dir, "clients")}
	// The password file recipe, as an admin would run it.
	if out, err := exec.Command("sh", filepath.Join(deploy, "make-passwd.sh"), dir, "front").CombinedOutput(); err != nil {
		t.Fatalf("make-passwd.sh: %v\n%s", err, out)
	}
	acl, err := os.ReadFile(filepath.Join(deploy, "acl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "acl"), acl, 0o644); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(filepath.Join(deploy, "mosquitto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// The example as installed, but with its files here and a free port;
	// as root, mosquitto would drop to user mosquitto, which cannot read a
	// test's temporary folder.
	s := string(conf)
	for _, r := range [][2]string{
		{"/etc/mosquitto/facegate/", dir + "/"},
		{"\nlistener 1883 127.0.0.1\n", fmt.Sprintf("\nlistener %d 127.0.0.1\n", m.port)},
	} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("deploy/mosquitto/mosquitto.conf no longer holds %q", r[0])
		}
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	s += "user root\n"
	if err := os.WriteFile(filepath.Join(dir, "mosquitto.conf"), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-v", "-c", filepath.Join(dir, "mosquitto.conf"))
	cmd.Stdout, cmd.Stderr = m.log, m.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-done
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", m.log)
		}
	})
	deadline := time.Now().Add(hang)
	for {
		if c, err := net.Dial("tcp", m.addr()); err == nil {
			c.Close()
			return m
		}
		select {
		case <-done:
			t.Fatalf("mosquitto exited:\n%s", m.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto did not listen on %s:\n%s", m.addr(), m.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (m *mosquitto) addr() string { return fmt.Sprintf("127.0.0.1:%d", m.port) }
func (m *mosquitto) url() string  { return "tcp://" + m.addr() }

func (m *mosquitto) passwordFile(user string) string {
	return filepath.Join(m.passwords, user+".password")
}

func (m *mosquitto) password(t *testing.T, user string) string {
	t.Helper()
	b, err := os.ReadFile(m.passwordFile(user))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// client connects as user (anonymously when user is ""), or fails the test.
func (m *mosquitto) client(t *testing.T, user string) mqtt.Client {
	t.Helper()
	c, err := m.connect(t, user, "")
	if err != nil {
		t.Fatalf("connect as %q: %v", user, err)
	}
	return c
}

func (m *mosquitto) connect(t *testing.T, user, password string) (mqtt.Client, error) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(m.url()).SetClientID(fmt.Sprintf("test-%s-%d", user, time.Now().UnixNano())).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(hang)
	if user != "" {
		if password == "" {
			password = m.password(t, user)
		}
		o.SetUsername(user).SetPassword(password)
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(hang) {
		return nil, errors.New("no CONNACK")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

func publish(t *testing.T, c mqtt.Client, topic string, payload []byte) {
	t.Helper()
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(hang) || tok.Error() != nil {
		t.Fatalf("publish on %s: %v", topic, tok.Error())
	}
}

// collector gathers the messages a subscription receives.
type collector struct {
	mu   sync.Mutex
	msgs []string // topic + " " + payload
	got  chan struct{}
}

func subscribe(t *testing.T, c mqtt.Client, filter string) (*collector, byte) {
	t.Helper()
	col := &collector{got: make(chan struct{}, 100)}
	tok := c.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		col.mu.Lock()
		col.msgs = append(col.msgs, m.Topic()+" "+string(m.Payload()))
		col.mu.Unlock()
		select {
		case col.got <- struct{}{}:
		default:
		}
	})
	if !tok.WaitTimeout(hang) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return col, tok.(*mqtt.SubscribeToken).Result()[filter]
}

func (c *collector) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.msgs...)
}

// waitFor waits until the collector holds a message containing s.
func (c *collector) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(hang)
	for {
		for _, m := range c.snapshot() {
			if strings.Contains(m, s) {
				return
			}
		}
		select {
		case <-c.got:
		case <-deadline:
			t.Fatalf("no message holding %q; got %q", s, c.snapshot())
		}
	}
}

// TestBrokerACL: with deploy/mosquitto's configuration, ACL and password
// recipe, a client holding the relay's credentials cannot publish an
// unlock. With MQTT 3.1.1 mosquitto acknowledges and drops a refused
// publish, so the proof is what an authorised subscriber (the audit user)
// receives: nothing of the relay's publish, while the door's control
// publish, sent after it, arrives.
func TestBrokerACL(t *testing.T) {
	m := startMosquitto(t)
	const unlockTopic = "facegate/front/events/unlock"
	audit := m.client(t, "facegate-audit")
	seen, q := subscribe(t, audit, "facegate/#")
	if q != 1 {
		t.Fatalf("audit subscription to facegate/# granted %#x, want QoS 1", q)
	}
	relayClient := m.client(t, "facegate-relay-front")
	forged := payload(t, testEvent("front", time.Now(), ""), testKey(9))
	publish(t, relayClient, unlockTopic, forged) // PUBACKed, and dropped
	publish(t, relayClient, "facegate/front/status", []byte(`{"state":"online"}`))
	publish(t, relayClient, "homeassistant/lock/x/config", []byte(`{}`))
	door := m.client(t, "facegate-front")
	publish(t, door, "facegate/back/events/unlock", []byte("door front forging door back")) // not its topics
	publish(t, door, unlockTopic, []byte("control from the door"))
	seen.waitFor(t, "control from the door")
	if got := seen.snapshot(); len(got) != 1 || got[0] != unlockTopic+" control from the door" {
		t.Errorf("the audit subscriber received %q; want only the door's control message", got)
	}
	if !strings.Contains(m.log.String(), "Denied PUBLISH from") {
		t.Error("mosquitto's log does not record the denied publishes")
	}

	// The relay may read its door's unlocks and status, nothing else; the
	// door reads nothing. (mosquitto grants any subscription and filters
	// what it delivers, so the proof is again what arrives.)
	relayAll, _ := subscribe(t, m.client(t, "facegate-relay-front"), "#")
	doorAll, _ := subscribe(t, door, "#")
	for _, msg := range [][2]string{
		{"facegate/front/events/deny", "a deny"},
		{"facegate/front/events/expired", "an expired unlock"},
		{"homeassistant/binary_sensor/facegate_front/unlock/config", "discovery"},
		{"facegate/front/status", "status"},
		{unlockTopic, "second control"},
	} {
		publish(t, door, msg[0], []byte(msg[1]))
	}
	relayAll.waitFor(t, "second control")
	seen.waitFor(t, "second control")
	if got, want := relayAll.snapshot(), []string{"facegate/front/status status", unlockTopic + " second control"}; !reflect.DeepEqual(got, want) {
		t.Errorf("the relay, subscribed to #, received %q; want only %q", got, want)
	}
	if got := doorAll.snapshot(); len(got) != 0 {
		t.Errorf("the door, subscribed to #, received %q; want nothing", got)
	}
	// Nobody without a password; no wrong password.
	if _, err := m.connect(t, "", ""); err == nil {
		t.Error("an anonymous client connected")
	}
	if _, err := m.connect(t, "facegate-relay-front", "guess"); err == nil {
		t.Error("a wrong password connected")
	}
}

// relayRun is a Relay running in the test, with what it reports.
type relayRun struct {
	r       *Relay
	log     *syncBuffer
	results chan Result
	outputs chan error
	stop    func()
}

func startRelay(t *testing.T, cfgPath string) *relayRun {
	t.Helper()
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	rr := &relayRun{log: &syncBuffer{}, results: make(chan Result, 100), outputs: make(chan error, 100)}
	rr.r, err = New(cfg, Options{
		Log:      slog.New(slog.NewTextHandler(rr.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnResult: func(r Result) { rr.results <- r },
		OnOutput: func(_ daemon.Event, err error) { rr.outputs <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rr.r.Run(ctx) }()
	rr.stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(hang):
			t.Error("Run did not return after its context ended")
		}
	}
	t.Cleanup(func() {
		rr.stop()
		if t.Failed() {
			t.Logf("relay log:\n%s", rr.log)
		}
	})
	deadline := time.Now().Add(hang)
	for !rr.r.Stats().Connected {
		if time.Now().After(deadline) {
			t.Fatalf("the relay did not subscribe:\n%s", rr.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return rr
}

func (rr *relayRun) result(t *testing.T) Result {
	t.Helper()
	select {
	case r := <-rr.results:
		return r
	case <-time.After(hang):
		t.Fatal("no verdict from the relay")
		return Result{}
	}
}

func (rr *relayRun) output(t *testing.T) {
	t.Helper()
	select {
	case err := <-rr.outputs:
		if err != nil {
			t.Fatalf("output: %v", err)
		}
	case <-time.After(hang):
		t.Fatal("the output did not run")
	}
}

// TestRelayOverMosquitto is the relay end to end over the example broker
// configuration: the relay with its own credentials, messages published
// with the door's. A signed unlock opens (the command runs once); the same
// message again, one byte changed, another key, an old one, an unsigned
// one, and more, are each refused with their reason, logged and counted.
func TestRelayOverMosquitto(t *testing.T) {
	m := startMosquitto(t)
	dir := t.TempDir()
	key := testKey(1)
	pubPEM, _ := daemon.MarshalVerifyKey(pubOf(key))
	pub := filepath.Join(dir, "front.pub")
	if err := os.WriteFile(pub, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	opened := filepath.Join(dir, "opened")
	cfg := filepath.Join(dir, "relay.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`door: front
public_key: %s
mqtt:
  url: %s
  username: facegate-relay-front
  password_file: %s
output:
  command: [/bin/sh, -c, 'echo "$FACEGATE_EVENT_ID $FACEGATE_PERSON_ID" >> "$0"', %s]
`, pub, m.url(), m.passwordFile("facegate-relay-front"), opened)), 0o644)
	rr := startRelay(t, cfg)
	door := m.client(t, "facegate-front")
	const topic = "facegate/front/events/unlock"

	good := testEvent("front", time.Now(), "")
	goodMsg := payload(t, good, key)
	publish(t, door, topic, goodMsg)
	if r := rr.result(t); r.Reason != "" || r.Event != good.ID || r.Person != "e1042" {
		t.Fatalf("signed unlock: %+v", r)
	}
	rr.output(t)
	lines := func() []string {
		b, _ := os.ReadFile(opened)
		return strings.Fields(strings.ReplaceAll(string(b), " e1042", ""))
	}
	if got := lines(); len(got) != 1 || got[0] != good.ID {
		t.Fatalf("after one signed unlock the command ran for %q, want once for %s", got, good.ID)
	}

	tampered := bytes.Replace(goodMsg, []byte("Ada Lovelace"), []byte("Ada Lovelacf"), 1)
	deny := testEvent("front", time.Now(), "")
	deny.Kind, deny.Reason, deny.Person = daemon.KindDeny, "unknown", nil
	for _, tc := range []struct {
		name string
		msg  []byte
		want Reason
	}{
		{"the same message again", goodMsg, ReasonReplay},
		{"one byte changed", tampered, ReasonBadSignature},
		{"signed by another key", payload(t, testEvent("front", time.Now(), ""), testKey(2)), ReasonBadSignature},
		{"old", payload(t, testEvent("front", time.Now().Add(-time.Minute), ""), key), ReasonStale},
		{"unsigned", payload(t, testEvent("front", time.Now(), ""), nil), ReasonUnsigned},
		{"from the future", payload(t, testEvent("front", time.Now().Add(time.Minute), ""), key), ReasonFuture},
		{"another door's", payload(t, testEvent("back", time.Now(), ""), key), ReasonWrongDoor},
		{"a deny", payload(t, deny, key), ReasonNotUnlock},
		{"malformed", []byte(`{"kind":"unlock"}`), ReasonMalformed},
	} {
		publish(t, door, topic, tc.msg)
		r := rr.result(t)
		if r.Reason != tc.want {
			t.Errorf("%s: reason %q (%v), want %q", tc.name, r.Reason, r.Err, tc.want)
		}
		if !strings.Contains(rr.log.String(), "reason="+string(tc.want)) {
			t.Errorf("%s: the log does not give reason=%s", tc.name, tc.want)
		}
	}
	// Still working: one more signed unlock opens.
	next := testEvent("front", time.Now(), "")
	publish(t, door, topic, payload(t, next, key))
	if r := rr.result(t); r.Reason != "" {
		t.Fatalf("second signed unlock: %+v", r)
	}
	rr.output(t)
	if got := lines(); !reflect.DeepEqual(got, []string{good.ID, next.ID}) {
		t.Errorf("the command ran for %q, want once for each accepted unlock %s, %s", got, good.ID, next.ID)
	}
	st := rr.r.Stats()
	wantRejected := map[Reason]uint64{ReasonReplay: 1, ReasonBadSignature: 2, ReasonStale: 1, ReasonUnsigned: 1,
		ReasonFuture: 1, ReasonWrongDoor: 1, ReasonNotUnlock: 1, ReasonMalformed: 1}
	if st.Received != 11 || st.Accepted != 2 || st.Outputs != 2 || st.Failures != 0 || !reflect.DeepEqual(st.Rejected, wantRejected) {
		t.Errorf("stats %+v", st)
	}
	for _, line := range strings.Split(strings.TrimSpace(rr.log.String()), "\n") {
		if strings.Contains(line, "unlock refused") {
			t.Log(line)
		}
	}
}

// TestRelayReconnects: the broker restarting under the relay costs nothing
// but the time to reconnect.
func TestRelayReconnects(t *testing.T) {
	// A broker of the relay's own, without ACLs, that the test restarts.
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
	}
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "m.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n", port)), 0o644)
	var cmd *exec.Cmd
	start := func() {
		cmd = exec.Command(bin, "-c", conf)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(hang)
		for {
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
				c.Close()
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("mosquitto did not start")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	stop := func() {
		if cmd != nil {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			cmd = nil
		}
	}
	start()
	t.Cleanup(stop)
	key := testKey(1)
	pubPEM, _ := daemon.MarshalVerifyKey(pubOf(key))
	pub := filepath.Join(dir, "front.pub")
	os.WriteFile(pub, pubPEM, 0o644)
	cfg := filepath.Join(dir, "relay.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("door: front\npublic_key: %s\nmqtt:\n  url: tcp://127.0.0.1:%d\noutput:\n  command: [/bin/true]\n", pub, port)), 0o644)
	rr := startRelay(t, cfg)
	stop()
	deadline := time.Now().Add(hang)
	for rr.r.Stats().Connected && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	start()
	for !rr.r.Stats().Connected {
		if time.Now().After(deadline) {
			t.Fatalf("the relay did not reconnect:\n%s", rr.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	o := mqtt.NewClientOptions().AddBroker(fmt.Sprintf("tcp://127.0.0.1:%d", port)).SetClientID("test-door")
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(hang) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(100)
	publish(t, c, "facegate/front/events/unlock", payload(t, testEvent("front", time.Now(), ""), key))
	if r := rr.result(t); r.Reason != "" {
		t.Errorf("after the reconnection: %+v", r)
	}
	rr.output(t)
	if !strings.Contains(rr.log.String(), "reconnecting") {
		t.Error("the log does not say the relay reconnected")
	}
}

// ---------------------------------------------------------------------------
// Fuzzing

// fuzzNow is the relay's clock in FuzzRelayPayload: the time of its seeds.
var fuzzNow = time.Date(2026, 3, 1, 8, 30, 5, 0, time.UTC)

// FuzzRelayPayload feeds the relay's verifier arbitrary messages. Nothing
// may panic; a message is accepted only if it is a fresh unlock of the door
// whose signature verifies with the key, and then only once; every refusal
// has a known reason, and "malformed" exactly when ParseEvent refuses it.
func FuzzRelayPayload(f *testing.F) {
	key := testKey(1)
	pub := pubOf(key)
	const id = "0123456789abcdef0123456789abcdef"
	ev := testEvent("front", fuzzNow, id)
	deny := ev
	deny.Kind, deny.Reason, deny.Person = daemon.KindDeny, "unknown", nil
	for _, seed := range [][]byte{
		payload(f, ev, key),
		payload(f, ev, nil),
		payload(f, ev, testKey(2)),
		payload(f, testEvent("back", fuzzNow, id), key),
		payload(f, testEvent("front", fuzzNow.Add(-time.Minute), id), key),
		payload(f, testEvent("front", fuzzNow.Add(time.Minute), id), key),
		payload(f, deny, key),
		payload(f, ev.Expire(), nil),
		[]byte(`{}`),
		[]byte(`{"door":"front","expired":false,"frames":3,"id":"` + id + `","kind":"unlock","liveness":0.97,"margin":0.3,"person":{"id":"e1042","name":"Ada"},"reason":"","score":0.81,"sig":"","time":"2026-03-01T08:30:05.000Z"}`),
		[]byte("null"),
		[]byte(`[1,2]`),
	} {
		f.Add(seed)
	}
	known := map[Reason]bool{}
	for _, r := range Reasons() {
		known[r] = true
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		v := NewVerifier(pub, "front", 5*time.Second, time.Second)
		got, err := v.Check(msg, fuzzNow)
		_, perr := daemon.ParseEvent(msg)
		if err != nil {
			var rej *Rejection
			if !errors.As(err, &rej) || !known[rej.Reason] {
				t.Fatalf("refusal without a known reason: %v", err)
			}
			if (rej.Reason == ReasonMalformed) != (perr != nil) {
				t.Fatalf("reason %s, ParseEvent error %v", rej.Reason, perr)
			}
			if v.Remembered() != 0 {
				t.Fatal("a refused message was remembered")
			}
			return
		}
		if perr != nil {
			t.Fatalf("accepted a message ParseEvent refuses (%v)", perr)
		}
		if err := got.Verify(pub); err != nil {
			t.Fatalf("accepted a message whose signature does not verify: %v", err)
		}
		if got.Door != "front" || got.Kind != daemon.KindUnlock || got.Expired || got.Person == nil {
			t.Fatalf("accepted %+v", got)
		}
		if age := fuzzNow.Sub(got.Time); age > 6*time.Second || age < -time.Second {
			t.Fatalf("accepted an event %s old", age)
		}
		if _, err := v.Check(msg, fuzzNow); reasonOf(err) != ReasonReplay {
			t.Fatalf("the same message twice: %v, want a replay", err)
		}
	})
}

// FuzzRelayConfig feeds ParseConfig arbitrary files. Nothing may panic;
// every error is one line; every configuration accepted is valid and
// survives a round trip through YAML unchanged.
func FuzzRelayConfig(f *testing.F) {
	for _, seed := range []string{
		exampleConfig,
		"door: front\npublic_key: k.pub\noutput:\n  gpio:\n    chip: gpiochip0\n    line: 17\n    active_low: true\n    pulse: 2s\n",
		"door: front\npublic_key: k\noutput: {command: [a, b], timeout: 1m}\nmqtt: {url: 'ssl://h:8883', ca: ca.pem, cert: c.pem, key: k.pem}\n",
		"door: front\npublic_key: k\nmax_age: 5\n",
		"x: &a {door: front}\n<<: *a\n",
		"door: &d front\npublic_key: *d\noutput:\n  command: [*d]\n",
		"door: front\n---\ndoor: back\n",
		"",
		"null",
		"- a\n- b\n",
		"door: [front\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error on more than one line: %q", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseConfig accepted an invalid configuration: %v", err)
		}
		if (len(c.Output.Command) > 0) == (c.Output.GPIO != nil) {
			t.Fatalf("not exactly one output: %+v", c.Output)
		}
		again, err := ParseConfig(configYAML(t, c))
		if err != nil {
			t.Fatalf("round trip: %v\n%s", err, configYAML(t, c))
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip changed the configuration:\n%+v\n%+v", c, again)
		}
	})
}

// configYAML writes c as a config file.
func configYAML(t *testing.T, c Config) []byte {
	t.Helper()
	m := map[string]any{
		"door": c.Door, "topic_prefix": c.TopicPrefix, "public_key": c.PublicKey,
		"max_age": c.MaxAge.String(), "skew": c.Skew.String(), "log_level": c.LogLevel,
		"mqtt": map[string]any{"url": c.MQTT.URL, "client_id": c.MQTT.ClientID, "username": c.MQTT.Username,
			"password_file": c.MQTT.PasswordFile, "ca": c.MQTT.CA, "cert": c.MQTT.Cert, "key": c.MQTT.Key},
	}
	out := map[string]any{}
	if g := c.Output.GPIO; g != nil {
		out["gpio"] = map[string]any{"chip": g.Chip, "line": g.Line, "active_low": g.ActiveLow, "pulse": g.Pulse.String()}
	} else {
		out["command"] = c.Output.Command
		out["timeout"] = c.Output.Timeout.String()
	}
	m["output"] = out
	b, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Make sure the fuzz seeds stay meaningful: the first is accepted.
func TestFuzzSeedsAccepted(t *testing.T) {
	v := NewVerifier(pubOf(testKey(1)), "front", 5*time.Second, time.Second)
	if _, err := v.Check(payload(t, testEvent("front", fuzzNow, "0123456789abcdef0123456789abcdef"), testKey(1)), fuzzNow); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseConfig([]byte(exampleConfig)); err != nil {
		t.Fatal(err)
	}
}

func TestRefusalLogRateLimits(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	var l refusalLog
	for i, c := range []struct {
		reason     Reason
		at         time.Time
		ok         bool
		suppressed int
	}{
		{ReasonBadSignature, at(0), true, 0},
		{ReasonBadSignature, at(1), false, 0},
		{ReasonBadSignature, at(9.9), false, 0},
		{ReasonReplay, at(5), true, 0}, // each reason on its own
		{ReasonBadSignature, at(10), true, 2},
		{ReasonBadSignature, at(10.5), false, 0},
		{ReasonBadSignature, at(3), true, 1}, // the clock went back: log rather than go quiet
		{ReasonBadSignature, at(100), true, 0},
	} {
		ok, n := l.allow(c.reason, c.at)
		if ok != c.ok || n != c.suppressed {
			t.Errorf("step %d (%s at %v): logged %v with %d left out, want %v with %d", i, c.reason, c.at.Sub(t0), ok, n, c.ok, c.suppressed)
		}
	}
}
