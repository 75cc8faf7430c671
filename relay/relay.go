// Package relay is facegate's reference relay subscriber: it subscribes to
// one door's events/unlock topic, checks each message (Ed25519 signature
// with the door's public key, the door, the kind, freshness, replay) and
// drives an output for each unlock it accepts: a command to run, or a GPIO
// line pulsed through the Linux GPIO character device.
//
// Every message refused is logged with its reason and counted (Stats). The
// checks, in order, each with its Reason:
//
//   - malformed: not a decision message (daemon.ParseEvent refuses it)
//   - wrong_door: a decision of another door
//   - not_unlock: a deny, an expired unlock, or an unlock naming nobody
//   - unsigned: no sig
//   - bad_signature: sig does not verify with the public key (the message
//     was changed, or signed by another key)
//   - stale: the event time is more than MaxAge + Skew before the relay's
//     clock
//   - future: the event time is more than Skew after the relay's clock
//   - replay: an event id already accepted
//   - overload: too many ids to remember (fail closed; see MaxSeen)
//
// The ids accepted are remembered until their event time + MaxAge + Skew
// + a second has passed on the relay's clock; by then a replay is refused as
// stale. So memory is bounded by the rate of genuine unlocks, and by MaxSeen
// in any case. The relay's clock must be kept right (NTP): a clock stepped
// backwards by more than MaxAge could admit a replay of an unlock captured
// before the step.
package relay

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/facegate/facegate/internal/confmsg"
	"github.com/facegate/facegate/internal/mqttnet"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"
	"unsafe"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"

	"github.com/facegate/facegate/daemon"
)

// Reason says why a message was refused.
type Reason string

// The reasons, in the order the checks are made.
const (
	ReasonMalformed    Reason = "malformed"
	ReasonWrongDoor    Reason = "wrong_door"
	ReasonNotUnlock    Reason = "not_unlock"
	ReasonUnsigned     Reason = "unsigned"
	ReasonBadSignature Reason = "bad_signature"
	ReasonStale        Reason = "stale"
	ReasonFuture       Reason = "future"
	ReasonReplay       Reason = "replay"
	ReasonOverload     Reason = "overload"
)

// Reasons lists every Reason.
func Reasons() []Reason {
	return []Reason{ReasonMalformed, ReasonWrongDoor, ReasonNotUnlock, ReasonUnsigned, ReasonBadSignature,
		ReasonStale, ReasonFuture, ReasonReplay, ReasonOverload}
}

// Defaults.
const (
	DefaultMaxAge        = 5 * time.Second
	DefaultSkew          = time.Second
	DefaultURL           = "tcp://127.0.0.1:1883"
	DefaultTopicPrefix   = "facegate"
	DefaultTimeout       = 10 * time.Second
	DefaultPulse         = time.Second
	DefaultMaxSeen       = 1 << 16
	clientIDPrefix       = "facegate-relay-"
	maxConfigBytes       = 1 << 20
	maxWindow            = time.Hour        // longest max_age, skew or timeout
	maxPulse             = 10 * time.Minute // longest gpio.pulse
	seenMargin           = time.Second      // kept beyond the staleness window
	outputCaptureBytes   = 4 << 10          // of a command's output, for the log
	mqttKeepAlive        = 30 * time.Second
	mqttConnectTimeout   = 10 * time.Second
	mqttSubscribeTimeout = 10 * time.Second
	minBackoff           = 500 * time.Millisecond
	maxBackoff           = 30 * time.Second
)

// Rejection is a message refused, with its reason.
type Rejection struct {
	Reason Reason
	Event  string // the event id, when the message could be read that far
	Err    error  // the detail
}

func (r *Rejection) Error() string {
	if r.Err == nil {
		return string(r.Reason)
	}
	return string(r.Reason) + ": " + r.Err.Error()
}

func (r *Rejection) Unwrap() error { return r.Err }

// Verifier judges unlock messages for one door. It is safe for concurrent
// use.
type Verifier struct {
	key          ed25519.PublicKey
	door         string
	maxAge, skew time.Duration
	// MaxSeen bounds the ids remembered (DefaultMaxSeen); set it before
	// the first Check.
	MaxSeen int

	mu        sync.Mutex
	seen      map[string]time.Time // accepted id → when it may be forgotten
	nextSweep int
}

// NewVerifier makes a verifier of door's unlocks signed by key, accepting
// event times from maxAge+skew before the clock to skew after it.
func NewVerifier(key ed25519.PublicKey, door string, maxAge, skew time.Duration) *Verifier {
	return &Verifier{key: key, door: door, maxAge: maxAge, skew: skew, MaxSeen: DefaultMaxSeen, seen: make(map[string]time.Time)}
}

// Check judges one message received at now. It returns the event when it
// is an unlock to act on (and remembers its id), else a *Rejection.
func (v *Verifier) Check(payload []byte, now time.Time) (daemon.Event, error) {
	ev, err := daemon.ParseEvent(payload)
	if err != nil {
		return daemon.Event{}, &Rejection{Reason: ReasonMalformed, Err: err}
	}
	reject := func(r Reason, format string, a ...any) (daemon.Event, error) {
		return daemon.Event{}, &Rejection{Reason: r, Event: ev.ID, Err: fmt.Errorf(format, a...)}
	}
	switch {
	case ev.Door != v.door:
		return reject(ReasonWrongDoor, "door %q, this relay is for %q", ev.Door, v.door)
	case ev.Kind != daemon.KindUnlock:
		return reject(ReasonNotUnlock, "a %s on the unlock topic", ev.Kind)
	case ev.Expired:
		return reject(ReasonNotUnlock, "an expired unlock (audit only)")
	case ev.Person == nil:
		return reject(ReasonNotUnlock, "an unlock naming nobody")
	}
	if err := ev.Verify(v.key); err != nil {
		if errors.Is(err, daemon.ErrUnsigned) {
			return reject(ReasonUnsigned, "no sig; this relay opens only for signed unlocks")
		}
		return reject(ReasonBadSignature, "sig does not verify with the door's public key: changed, or signed by another key")
	}
	age := now.Sub(ev.Time)
	switch {
	case age > v.maxAge+v.skew:
		return reject(ReasonStale, "event time %s is %s old, more than max_age %s + skew %s",
			ev.Time.Format(daemon.EventTimeLayout), age.Round(time.Millisecond), v.maxAge, v.skew)
	case age < -v.skew:
		return reject(ReasonFuture, "event time %s is %s ahead of this relay's clock, more than skew %s",
			ev.Time.Format(daemon.EventTimeLayout), (-age).Round(time.Millisecond), v.skew)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, dup := v.seen[ev.ID]; dup {
		return reject(ReasonReplay, "event id already seen")
	}
	if len(v.seen) >= v.nextSweep {
		v.sweep(now)
	}
	if len(v.seen) >= v.MaxSeen {
		return reject(ReasonOverload, "%d event ids remembered, the most this relay keeps", len(v.seen))
	}
	v.seen[ev.ID] = ev.Time.Add(v.maxAge + v.skew + seenMargin)
	return ev, nil
}

// sweep forgets the ids whose replay would be refused as stale anyway.
func (v *Verifier) sweep(now time.Time) {
	for id, until := range v.seen {
		if now.After(until) {
			delete(v.seen, id)
		}
	}
	v.nextSweep = max(2*len(v.seen), 64)
}

// Remembered is the number of event ids the verifier holds.
func (v *Verifier) Remembered() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.seen)
}

// ---------------------------------------------------------------------------
// Configuration

// Config is the relay's configuration, read from YAML by LoadConfig or
// ParseConfig. The comments give each field's key and its default.
type Config struct {
	Door        string        // door: the door whose unlocks this relay acts on; a-z, 0-9, _ and - (required)
	TopicPrefix string        // topic_prefix: the door's topics are <prefix>/<door>/... (facegate)
	PublicKey   string        // public_key: the door's Ed25519 public key, PEM (required)
	MaxAge      time.Duration // max_age: unlocks older than this (plus skew) are refused (5s)
	Skew        time.Duration // skew: clock difference allowed between the door and the relay (1s)
	LogLevel    string        // log_level: debug, info, warn or error (info)
	MQTT        MQTTConfig    // mqtt
	Output      OutputConfig  // output: exactly one of command and gpio
}

// MQTTConfig is the mqtt section.
type MQTTConfig struct {
	URL          string // url: the broker (tcp://127.0.0.1:1883)
	ClientID     string // client_id ("" = facegate-relay-<door>)
	Username     string // username ("" = none)
	PasswordFile string // password_file: a file holding the password ("" = none)
	CA           string // ca: CA certificate (PEM) of the broker; TLS when set
	Cert, Key    string // cert, key: client certificate and its key (PEM), both or neither
}

// OutputConfig is the output section: what an accepted unlock drives.
type OutputConfig struct {
	// Command is run, without a shell, for each accepted unlock, with
	// FACEGATE_PERSON_ID, FACEGATE_PERSON_NAME, FACEGATE_EVENT_ID,
	// FACEGATE_EVENT_TIME and FACEGATE_DOOR in its environment.
	Command []string      // command: [program, arguments...]
	Timeout time.Duration // timeout: the command is killed after this (10s)
	GPIO    *GPIOConfig   // gpio
}

// GPIOConfig is output.gpio: a line of a GPIO chip, driven active for
// Pulse at each accepted unlock, inactive otherwise.
type GPIOConfig struct {
	Chip      string        // chip: gpiochipN, N or a path such as /dev/gpiochipN (required)
	Line      int           // line: the line's offset on the chip (required)
	ActiveLow bool          // active_low: the line is active when low (false)
	Pulse     time.Duration // pulse: how long the line stays active (1s)
}

// ChipPath is the device file of the chip: /dev/gpiochipN for "gpiochipN"
// or "N", else Chip as written.
func (g GPIOConfig) ChipPath() string {
	if _, err := strconv.ParseUint(g.Chip, 10, 16); err == nil {
		return "/dev/gpiochip" + g.Chip
	}
	if !strings.Contains(g.Chip, "/") {
		return "/dev/" + g.Chip
	}
	return g.Chip
}

// Topic is the topic the relay subscribes to: <prefix>/<door>/events/unlock.
func (c Config) Topic() string {
	return daemon.Topic(c.TopicPrefix, c.Door, daemon.KindUnlock)
}

// defaultConfig is a Config with every default applied.
func defaultConfig() Config {
	return Config{
		TopicPrefix: DefaultTopicPrefix,
		MaxAge:      DefaultMaxAge,
		Skew:        DefaultSkew,
		LogLevel:    "info",
		MQTT:        MQTTConfig{URL: DefaultURL},
	}
}

// LoadConfig reads the YAML file at path (ParseConfig), then checks the
// files it names: the public key parses, the password and certificate files
// can be read, the command can be found. Every error is one line naming the
// file and, where it can, the line and the key at fault.
func LoadConfig(path string) (Config, error) {
	name := confmsg.QuoteIfNeeded(path)
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %s", name, confmsg.FileProblem(err))
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return Config{}, fmt.Errorf("%s: is a folder, not a config file", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return Config{}, fmt.Errorf("%s: %s", name, confmsg.FileProblem(err))
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	if err := c.CheckFiles(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// ParseConfig reads a relay configuration from YAML, applies the defaults
// and validates it (Validate); it reads no other file. Unknown keys, keys
// set twice, a value of the wrong type and a duration without a unit are
// errors. A key set to null keeps its default. Errors are one line:
// "line N: key: problem".
func ParseConfig(data []byte) (Config, error) {
	if len(data) > maxConfigBytes {
		return Config{}, fmt.Errorf("larger than %d KiB, not a config file", maxConfigBytes>>10)
	}
	p := &configParser{cfg: defaultConfig(), lines: make(map[string]int)}
	if err := p.document(data); err != nil {
		return Config{}, oneLine(err)
	}
	if p.cfg.MQTT.ClientID == "" && p.cfg.Door != "" {
		p.cfg.MQTT.ClientID = clientIDPrefix + p.cfg.Door
	}
	if len(p.cfg.Output.Command) > 0 && p.cfg.Output.Timeout == 0 {
		p.cfg.Output.Timeout = DefaultTimeout
	}
	if err := p.cfg.Validate(); err != nil {
		var ke *keyError
		if errors.As(err, &ke) {
			if line := p.lines[ke.key]; line > 0 {
				return Config{}, oneLine(fmt.Errorf("line %d: %w", line, err))
			}
		}
		return Config{}, oneLine(err)
	}
	return p.cfg, nil
}

// keyError is a problem with one key's value.
type keyError struct{ key, msg string }

func (e *keyError) Error() string { return e.key + ": " + e.msg }

func bad(key, format string, a ...any) error {
	return &keyError{key: key, msg: fmt.Sprintf(format, a...)}
}

// Validate reports the first problem with c's values, as one line starting
// with the key at fault. It reads no file (CheckFiles does).
func (c Config) Validate() error {
	switch {
	case c.Door == "":
		return bad("door", "missing; name the door whose unlocks this relay acts on, e.g. front")
	case len(c.Door) > 64:
		return bad("door", "longer than 64 bytes")
	case strings.ContainsFunc(c.Door, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') }):
		return bad("door", "%s may hold only a-z, 0-9, _ and -", confmsg.Quote(c.Door))
	}
	if problem := mqttnet.TopicPrefixProblem(c.TopicPrefix); problem != "" {
		return bad("topic_prefix", "%s", problem)
	}
	switch {
	case c.PublicKey == "":
		return bad("public_key", "missing; name the door's public key file (facegate keygen writes it)")
	case c.MaxAge <= 0:
		return bad("max_age", "%s must be positive", confmsg.FormatDuration(c.MaxAge))
	case c.MaxAge > maxWindow:
		return bad("max_age", "%s is longer than %s", confmsg.FormatDuration(c.MaxAge), confmsg.FormatDuration(maxWindow))
	case c.Skew < 0:
		return bad("skew", "%s is negative", confmsg.FormatDuration(c.Skew))
	case c.Skew > maxWindow:
		return bad("skew", "%s is longer than %s", confmsg.FormatDuration(c.Skew), confmsg.FormatDuration(maxWindow))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return bad("log_level", "%s is not one of debug, info, warn, error", confmsg.Quote(c.LogLevel))
	}
	if err := c.MQTT.validate(); err != nil {
		return err
	}
	return c.Output.validate()
}

// oneLine is err with any control character in its message escaped; err
// itself when there is none.
func oneLine(err error) error {
	if msg := err.Error(); confmsg.OneLine(msg) != msg {
		return errors.New(confmsg.OneLine(msg))
	}
	return err
}

func (m MQTTConfig) validate() error {
	if _, err := mqttnet.ParseURL(m.URL); err != nil {
		return bad("mqtt.url", "%v", err)
	}
	switch {
	case m.ClientID == "":
		return bad("mqtt.client_id", "missing")
	case !utf8.ValidString(m.ClientID) || strings.ContainsFunc(m.ClientID, unicode.IsControl) || len(m.ClientID) > 256:
		return bad("mqtt.client_id", "%s is not up to 256 bytes of printable UTF-8", confmsg.Quote(m.ClientID))
	case !utf8.ValidString(m.Username) || strings.ContainsFunc(m.Username, unicode.IsControl):
		return bad("mqtt.username", "%s is not printable UTF-8", confmsg.Quote(m.Username))
	case m.Cert != "" && m.Key == "":
		return bad("mqtt.cert", "set without mqtt.key; a client certificate needs its private key")
	case m.Key != "" && m.Cert == "":
		return bad("mqtt.key", "set without mqtt.cert; a private key needs its client certificate")
	}
	return nil
}

func (o OutputConfig) validate() error {
	switch {
	case len(o.Command) == 0 && o.GPIO == nil:
		return bad("output", "missing; set output.command (a program to run) or output.gpio (a line to pulse)")
	case len(o.Command) > 0 && o.GPIO != nil:
		return bad("output", "both command and gpio are set; choose one")
	}
	if o.GPIO != nil {
		g := o.GPIO
		switch {
		case o.Timeout != 0:
			return bad("output.timeout", "applies to output.command only; output.gpio.pulse sets how long the line is active")
		case g.Chip == "":
			return bad("output.gpio.chip", "missing; name the chip, e.g. gpiochip0")
		case !utf8.ValidString(g.Chip) || strings.ContainsFunc(g.Chip, unicode.IsControl) || strings.ContainsRune(g.Chip, 0):
			return bad("output.gpio.chip", "%s is not a chip name or path", confmsg.Quote(g.Chip))
		case g.Line < 0:
			return bad("output.gpio.line", "missing; give the line's offset on the chip, e.g. 17 (gpioinfo lists them)")
		case g.Line > 1<<16:
			return bad("output.gpio.line", "%d is not a line offset", g.Line)
		case g.Pulse <= 0:
			return bad("output.gpio.pulse", "%s must be positive", confmsg.FormatDuration(g.Pulse))
		case g.Pulse > maxPulse:
			return bad("output.gpio.pulse", "%s is longer than %s", confmsg.FormatDuration(g.Pulse), confmsg.FormatDuration(maxPulse))
		}
		return nil
	}
	switch {
	case o.Command[0] == "":
		return bad("output.command", "the program (the first item) is empty")
	case o.Timeout <= 0:
		return bad("output.timeout", "%s must be positive", confmsg.FormatDuration(o.Timeout))
	case o.Timeout > maxWindow:
		return bad("output.timeout", "%s is longer than %s", confmsg.FormatDuration(o.Timeout), confmsg.FormatDuration(maxWindow))
	}
	for i, a := range o.Command {
		if strings.ContainsRune(a, 0) {
			return bad("output.command", "item %d holds a NUL byte", i+1)
		}
	}
	return nil
}

// CheckFiles checks the files c names: the public key is an Ed25519 PEM
// public key, the password and TLS files can be read, the command's program
// can be found and run.
func (c Config) CheckFiles() error {
	if _, err := daemon.LoadVerifyKey(c.PublicKey); err != nil {
		return err
	}
	for _, f := range []struct{ key, path string }{
		{"mqtt.password_file", c.MQTT.PasswordFile}, {"mqtt.ca", c.MQTT.CA}, {"mqtt.cert", c.MQTT.Cert}, {"mqtt.key", c.MQTT.Key},
	} {
		if f.path == "" {
			continue
		}
		fi, err := os.Stat(f.path)
		if err == nil && !fi.Mode().IsRegular() {
			return bad(f.key, "%s is not a regular file", confmsg.Quote(f.path))
		}
		if err == nil {
			var fh *os.File
			if fh, err = os.Open(f.path); err == nil {
				fh.Close()
			}
		}
		if err != nil {
			return bad(f.key, "%s: %s", confmsg.Quote(f.path), confmsg.FileProblem(err))
		}
	}
	if len(c.Output.Command) > 0 {
		if _, err := exec.LookPath(c.Output.Command[0]); err != nil {
			return bad("output.command", "%s: %s", confmsg.Quote(c.Output.Command[0]), lookPathProblem(err))
		}
	}
	return nil
}

func lookPathProblem(err error) string {
	switch {
	case errors.Is(err, exec.ErrNotFound):
		return "not found in $PATH (give its full path)"
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "not executable (permission denied)"
	}
	return confmsg.FileProblem(err)
}

// configParser walks the YAML nodes of a config file.
type configParser struct {
	cfg   Config
	lines map[string]int // key → the line that set it
}

// document applies a YAML document to p.cfg.
func (p *configParser) document(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil // empty, or only comments: Validate says what is missing
		}
		return yamlError(err)
	}
	var more yaml.Node
	switch err := dec.Decode(&more); {
	case err == io.EOF:
	case err != nil:
		return yamlError(err)
	default:
		return atLine(more.Line, errors.New("a second YAML document; a config file holds one"))
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return p.mapping(doc.Content[0], "", p.rootKeys())
}

// yamlError turns yaml.v3's "yaml: line 3: ..." into "line 3: invalid YAML: ...".
func yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, what, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				return atLine(n, fmt.Errorf("invalid YAML: %s", what))
			}
		}
	}
	return fmt.Errorf("invalid YAML: %s", msg)
}

func atLine(line int, err error) error {
	if line <= 0 {
		return err
	}
	return fmt.Errorf("line %d: %w", line, err)
}

// setter sets one key from its value node (never null; null keeps the
// default and the setter is not called). name is the dotted key.
type setter func(name string, v *yaml.Node) error

func (p *configParser) rootKeys() map[string]setter {
	c := &p.cfg
	return map[string]setter{
		"door":         stringKey(&c.Door),
		"topic_prefix": stringKey(&c.TopicPrefix),
		"public_key":   stringKey(&c.PublicKey),
		"max_age":      durationKey(&c.MaxAge),
		"skew":         durationKey(&c.Skew),
		"log_level":    stringKey(&c.LogLevel),
		"mqtt": p.section(map[string]setter{
			"url":           stringKey(&c.MQTT.URL),
			"client_id":     stringKey(&c.MQTT.ClientID),
			"username":      stringKey(&c.MQTT.Username),
			"password_file": stringKey(&c.MQTT.PasswordFile),
			"ca":            stringKey(&c.MQTT.CA),
			"cert":          stringKey(&c.MQTT.Cert),
			"key":           stringKey(&c.MQTT.Key),
		}),
		"output": p.section(map[string]setter{
			"command": argvKey(&c.Output.Command),
			"timeout": durationKey(&c.Output.Timeout),
			"gpio": func(name string, v *yaml.Node) error {
				if c.Output.GPIO == nil {
					c.Output.GPIO = &GPIOConfig{Line: -1, Pulse: DefaultPulse}
				}
				g := c.Output.GPIO
				return p.section(map[string]setter{
					"chip":       stringKey(&g.Chip),
					"line":       intKey(&g.Line),
					"active_low": boolKey(&g.ActiveLow),
					"pulse":      durationKey(&g.Pulse),
				})(name, v)
			},
		}),
	}
}

// section is the setter of a mapping of keys.
func (p *configParser) section(keys map[string]setter) setter {
	return func(name string, v *yaml.Node) error {
		return p.mapping(v, name+".", keys)
	}
}

// mapping applies the mapping n, whose keys are prefix + one of keys.
func (p *configParser) mapping(n *yaml.Node, prefix string, keys map[string]setter) error {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		what := "settings (door: ..., public_key: ..., mqtt: ..., output: ...)"
		if prefix != "" {
			what = strings.TrimSuffix(prefix, ".") + ": a mapping of " + strings.Join(sortedKeys(keys), ", ")
		}
		return atLine(n.Line, fmt.Errorf("expected %s, found %s", what, confmsg.DescribeNode(n)))
	}
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, v := resolve(n.Content[i]), n.Content[i+1]
		if kn.Kind != yaml.ScalarNode {
			return atLine(kn.Line, fmt.Errorf("a key must be a name, found %s", confmsg.DescribeNode(kn)))
		}
		name := prefix + kn.Value
		if first, dup := seen[kn.Value]; dup {
			return atLine(kn.Line, fmt.Errorf("%s is set twice (first on line %d)", confmsg.QuoteIfNeeded(name), first))
		}
		seen[kn.Value] = kn.Line
		set, ok := keys[kn.Value]
		if !ok {
			if kn.Value == "<<" {
				return atLine(kn.Line, errors.New("merge keys (<<) are not supported; write the keys out"))
			}
			return atLine(kn.Line, fmt.Errorf("unknown key %s (known here: %s)", confmsg.Quote(name), strings.Join(sortedKeys(keys), ", ")))
		}
		p.lines[name] = kn.Line
		v = resolve(v)
		if isNull(v) {
			continue
		}
		if err := set(name, v); err != nil {
			var ke *keyError
			if errors.As(err, &ke) {
				return atLine(v.Line, err)
			}
			return err
		}
	}
	return nil
}

func sortedKeys(keys map[string]setter) []string {
	out := make([]string, 0, len(keys))
	for k := range keys {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 10; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func scalar(name string, v *yaml.Node, want string) (string, error) {
	if v.Kind != yaml.ScalarNode {
		return "", bad(name, "expected %s, found %s", want, confmsg.DescribeNode(v))
	}
	return v.Value, nil
}

func stringKey(p *string) setter {
	return func(name string, v *yaml.Node) error {
		s, err := scalar(name, v, "text")
		if err != nil {
			return err
		}
		*p = s
		return nil
	}
}

func durationKey(p *time.Duration) setter {
	return func(name string, v *yaml.Node) error {
		s, err := scalar(name, v, "a duration such as \"5s\"")
		if err != nil {
			return err
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return bad(name, "%s is not a duration (write it with a unit: \"5s\", \"1500ms\")", confmsg.Quote(s))
		}
		*p = d
		return nil
	}
}

func boolKey(p *bool) setter {
	return func(name string, v *yaml.Node) error {
		s, err := scalar(name, v, "true or false")
		if err != nil {
			return err
		}
		switch strings.ToLower(s) {
		case "true", "yes", "on":
			*p = true
		case "false", "no", "off":
			*p = false
		default:
			return bad(name, "%s is not true or false", confmsg.Quote(s))
		}
		return nil
	}
}

func intKey(p *int) setter {
	return func(name string, v *yaml.Node) error {
		s, err := scalar(name, v, "a whole number")
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return bad(name, "%s is not a whole number", confmsg.Quote(s))
		}
		*p = int(n)
		return nil
	}
}

func argvKey(p *[]string) setter {
	return func(name string, v *yaml.Node) error {
		if v.Kind != yaml.SequenceNode {
			return bad(name, "expected a list: the program and its arguments, e.g. [/usr/local/bin/open-door, --seconds, \"3\"] (no shell runs it), found %s", confmsg.DescribeNode(v))
		}
		argv := make([]string, 0, len(v.Content))
		for i, a := range v.Content {
			a = resolve(a)
			if a.Kind != yaml.ScalarNode || isNull(a) {
				return bad(name, "item %d: expected text, found %s", i+1, confmsg.DescribeNode(a))
			}
			argv = append(argv, a.Value)
		}
		if len(argv) == 0 {
			return bad(name, "an empty list; give the program to run")
		}
		*p = argv
		return nil
	}
}

// ---------------------------------------------------------------------------
// The relay

// Options are what a Relay is given rather than configured with.
type Options struct {
	Log *slog.Logger // where to log (nothing when nil)
	// Now is the relay's clock (time.Now when nil).
	Now func() time.Time
	// OnResult, when set, is called with the verdict on every message
	// received, in order, before the output acts on it. It must not block.
	OnResult func(Result)
	// OnOutput, when set, is called after the output acted on an accepted
	// unlock, with the output's error (nil when it worked).
	OnOutput func(ev daemon.Event, err error)
}

// Result is the verdict on one message.
type Result struct {
	Topic  string
	Event  string // the event id ("" when the message could not be read)
	Person string // the person of an accepted unlock
	Reason Reason // "" when accepted
	Err    error  // the detail of a refusal
}

// Stats are a relay's counts since it started.
type Stats struct {
	Received  uint64            // messages received
	Accepted  uint64            // unlocks accepted
	Rejected  map[Reason]uint64 // messages refused, by reason
	Coalesced uint64            // accepted while the output was busy with an earlier unlock, and merged with it
	Outputs   uint64            // output runs that worked
	Failures  uint64            // output runs that failed
	Connected bool              // subscribed to the broker now
}

// Relay subscribes to a door's unlocks and drives the output.
type Relay struct {
	cfg      Config
	opt      Options
	log      *slog.Logger
	key      ed25519.PublicKey
	verifier *Verifier
	topic    string
	broker   string // the broker URL with its port (mqttnet.ParseURL)
	password string
	tls      *tls.Config

	running   atomic.Bool
	connected atomic.Bool
	received  atomic.Uint64
	accepted  atomic.Uint64
	coalesced atomic.Uint64
	outputs   atomic.Uint64
	failures  atomic.Uint64
	rejected  map[Reason]*atomic.Uint64 // fixed at New
	refusals  refusalLog
	pending   chan daemon.Event // accepted unlocks for the output goroutine
}

// refusalLogEvery is how often a reason of refusal may be logged: a
// stream of forged or replayed messages must not fill the disk with one
// line each. The counters (Stats) still count every one.
const refusalLogEvery = 10 * time.Second

// refusalLog decides which refusals are logged: the first of each reason,
// then at most one per reason every refusalLogEvery, with the count of
// those left out since.
type refusalLog struct {
	mu         sync.Mutex
	last       map[Reason]time.Time
	suppressed map[Reason]int
}

// allow reports whether a refusal for reason at now is logged, and how
// many of that reason were not logged since the last one that was.
func (l *refusalLog) allow(reason Reason, now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.suppressed = make(map[Reason]time.Time), make(map[Reason]int)
	}
	if last, seen := l.last[reason]; seen && now.Sub(last) < refusalLogEvery && now.Sub(last) >= 0 {
		l.suppressed[reason]++
		return false, 0
	}
	l.last[reason] = now
	suppressed = l.suppressed[reason]
	l.suppressed[reason] = 0
	return true, suppressed
}

// New makes a relay from a valid configuration: it reads the public key, the
// password and the TLS files. The output is opened by Run.
func New(cfg Config, opt Options) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	key, err := daemon.LoadVerifyKey(cfg.PublicKey)
	if err != nil {
		return nil, err
	}
	broker, err := mqttnet.ParseURL(cfg.MQTT.URL)
	if err != nil {
		return nil, bad("mqtt.url", "%v", err)
	}
	r := &Relay{
		cfg:      cfg,
		opt:      opt,
		log:      opt.Log,
		key:      key,
		verifier: NewVerifier(key, cfg.Door, cfg.MaxAge, cfg.Skew),
		topic:    cfg.Topic(),
		broker:   broker.String(),
		rejected: make(map[Reason]*atomic.Uint64),
		pending:  make(chan daemon.Event, 1),
	}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if r.opt.Now == nil {
		r.opt.Now = time.Now
	}
	for _, reason := range Reasons() {
		r.rejected[reason] = new(atomic.Uint64)
	}
	m := cfg.MQTT
	if m.PasswordFile != "" {
		b, err := os.ReadFile(m.PasswordFile)
		if err != nil {
			return nil, bad("mqtt.password_file", "%s: %s", confmsg.Quote(m.PasswordFile), confmsg.FileProblem(err))
		}
		r.password = strings.TrimRight(string(b), "\r\n")
	}
	if m.CA != "" || m.Cert != "" {
		t := &tls.Config{MinVersion: tls.VersionTLS12}
		if m.CA != "" {
			pem, err := os.ReadFile(m.CA)
			if err != nil {
				return nil, bad("mqtt.ca", "%s: %s", confmsg.Quote(m.CA), confmsg.FileProblem(err))
			}
			t.RootCAs = x509.NewCertPool()
			if !t.RootCAs.AppendCertsFromPEM(pem) {
				return nil, bad("mqtt.ca", "%s: no PEM certificate in it", confmsg.Quote(m.CA))
			}
		}
		if m.Cert != "" {
			c, err := tls.LoadX509KeyPair(m.Cert, m.Key)
			if err != nil {
				return nil, bad("mqtt.cert", "%s with mqtt.key %s: %v", confmsg.Quote(m.Cert), confmsg.Quote(m.Key), err)
			}
			t.Certificates = []tls.Certificate{c}
		}
		r.tls = t
	}
	return r, nil
}

// Stats returns the relay's counts.
func (r *Relay) Stats() Stats {
	s := Stats{
		Received: r.received.Load(), Accepted: r.accepted.Load(), Coalesced: r.coalesced.Load(),
		Outputs: r.outputs.Load(), Failures: r.failures.Load(), Connected: r.connected.Load(),
		Rejected: make(map[Reason]uint64, len(r.rejected)),
	}
	for reason, n := range r.rejected {
		if v := n.Load(); v > 0 {
			s.Rejected[reason] = v
		}
	}
	return s
}

// CheckOutput opens the output and releases it again, so that a missing
// GPIO chip or a line in use shows now. A command is not run.
func (r *Relay) CheckOutput() error {
	out, err := openOutput(r.cfg)
	if err != nil {
		return err
	}
	return out.close()
}

// Run opens the output (an error now if it cannot be: a missing GPIO chip,
// a line in use), then subscribes and acts on the door's unlocks until ctx
// ends (nil). A lost connection is remade, with backoff. Run may be called
// once.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("relay: Run called twice")
	}
	out, err := openOutput(r.cfg)
	if err != nil {
		return err
	}
	r.log.Info("relay ready", "door", r.cfg.Door, "topic", r.topic, "broker", mqttnet.Redact(r.cfg.MQTT.URL),
		"public_key", daemon.KeyFingerprint(r.key), "max_age", r.cfg.MaxAge, "skew", r.cfg.Skew, "output", out.describe())

	outCtx, stopOut := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.drive(outCtx, out)
	}()
	defer func() {
		stopOut()
		wg.Wait()
		if err := out.close(); err != nil {
			r.log.Error("closing the output", "err", err)
		}
	}()

	backoff := minBackoff
	for attempt := 1; ; attempt++ {
		established, err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if established {
			backoff, attempt = minBackoff, 1
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		r.log.Warn("mqtt connection failed or ended; reconnecting", "broker", mqttnet.Redact(r.cfg.MQTT.URL), "err", err,
			"attempt", attempt, "retry_in", wait.Round(time.Millisecond))
		backoff = min(2*backoff, maxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// drive runs the output for each accepted unlock until ctx ends.
func (r *Relay) drive(ctx context.Context, out output) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-r.pending:
			err := out.trigger(ctx, ev)
			if err != nil {
				r.failures.Add(1)
				r.log.Error("output failed", "event", ev.ID, "person", ev.Person.ID, "err", err)
			} else {
				r.outputs.Add(1)
				r.log.Info("output done", "event", ev.ID, "person", ev.Person.ID)
			}
			if r.opt.OnOutput != nil {
				r.opt.OnOutput(ev, err)
			}
		}
	}
}

// handle judges one message and hands an accepted unlock to the output.
func (r *Relay) handle(topic string, payload []byte) {
	r.received.Add(1)
	now := r.opt.Now()
	res := Result{Topic: topic}
	var ev daemon.Event
	var err error
	if topic != r.topic {
		err = &Rejection{Reason: ReasonWrongDoor, Err: fmt.Errorf("topic %q, subscribed to %q", topic, r.topic)}
	} else {
		ev, err = r.verifier.Check(payload, now)
	}
	var rej *Rejection
	if errors.As(err, &rej) {
		res.Event, res.Reason, res.Err = rej.Event, rej.Reason, rej.Err
		r.rejected[rej.Reason].Add(1)
		if ok, left := r.refusals.allow(rej.Reason, now); ok {
			r.log.Warn("unlock refused", "reason", string(rej.Reason), "event", rej.Event, "detail", rej.Err, "topic", topic, "bytes", len(payload),
				"not_logged_since", left)
		}
		if r.opt.OnResult != nil {
			r.opt.OnResult(res)
		}
		return
	}
	res.Event, res.Person = ev.ID, ev.Person.ID
	r.accepted.Add(1)
	r.log.Info("unlock accepted", "event", ev.ID, "person", ev.Person.ID, "name", ev.Person.Name,
		"age", now.Sub(ev.Time).Round(time.Millisecond))
	if r.opt.OnResult != nil {
		r.opt.OnResult(res)
	}
	select {
	case r.pending <- ev:
	default:
		// The output is busy with an earlier unlock and one more waits
		// already: the door is being opened; this one adds nothing.
		r.coalesced.Add(1)
		r.log.Warn("output busy; unlock merged with the one already waiting", "event", ev.ID, "person", ev.Person.ID)
	}
}

// session makes one connection, subscribes, and serves it until ctx ends
// (nil) or the connection is lost. established reports whether the broker
// accepted the connection.
func (r *Relay) session(ctx context.Context) (established bool, err error) {
	lost := make(chan error, 1)
	o := mqtt.NewClientOptions().
		AddBroker(r.broker).
		SetClientID(r.cfg.MQTT.ClientID).
		SetUsername(r.cfg.MQTT.Username).
		SetPassword(r.password).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(true).
		SetKeepAlive(mqttKeepAlive).
		SetPingTimeout(10 * time.Second).
		SetConnectTimeout(mqttConnectTimeout).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	if r.tls != nil {
		o.SetTLSConfig(r.tls)
	}
	c, err := mqttnet.Connect(ctx, o, r.dial)
	if err != nil {
		return false, fmt.Errorf("connect to %s: %w", mqttnet.Redact(r.cfg.MQTT.URL), err)
	}
	defer c.Disconnect(250)
	if ctx.Err() != nil {
		return true, nil
	}
	sub := c.Subscribe(r.topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		r.handle(m.Topic(), m.Payload())
	})
	if !sub.WaitTimeout(mqttSubscribeTimeout) {
		return true, fmt.Errorf("subscribe to %s: no SUBACK within %s", r.topic, mqttSubscribeTimeout)
	}
	if err := sub.Error(); err != nil {
		return true, fmt.Errorf("subscribe to %s: %w", r.topic, err)
	}
	if st, ok := sub.(*mqtt.SubscribeToken); ok {
		if q, ok := st.Result()[r.topic]; ok && q >= 0x80 {
			return true, fmt.Errorf("the broker refused the subscription to %s (check its ACL for user %q)", r.topic, r.cfg.MQTT.Username)
		}
	}
	r.connected.Store(true)
	defer r.connected.Store(false)
	r.log.Info("subscribed", "topic", r.topic, "broker", mqttnet.Redact(r.cfg.MQTT.URL), "client_id", r.cfg.MQTT.ClientID)
	select {
	case <-ctx.Done():
		return true, nil
	case err := <-lost:
		return true, fmt.Errorf("connection lost: %w", err)
	}
}

// dial opens the network connection for paho, honouring ctx.
func (r *Relay) dial(ctx context.Context, u *url.URL) (net.Conn, error) {
	return mqttnet.Dial(ctx, u, r.tls, mqttConnectTimeout)
}

// ---------------------------------------------------------------------------
// Outputs

// output is what an accepted unlock drives.
type output interface {
	trigger(ctx context.Context, ev daemon.Event) error
	close() error
	describe() string
}

func openOutput(cfg Config) (output, error) {
	if cfg.Output.GPIO != nil {
		return openGPIO(*cfg.Output.GPIO)
	}
	return &commandOutput{argv: cfg.Output.Command, timeout: cfg.Output.Timeout}, nil
}

// commandOutput runs a program, without a shell, for each unlock.
type commandOutput struct {
	argv    []string
	timeout time.Duration
}

func (c *commandOutput) describe() string {
	return fmt.Sprintf("command %q (timeout %s)", c.argv, c.timeout)
}

func (c *commandOutput) close() error { return nil }

// trigger runs the command with the event in its environment. It is killed,
// with its process group, when the timeout passes or ctx ends.
func (c *commandOutput) trigger(ctx context.Context, ev daemon.Event) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
	cmd.Env = append(os.Environ(),
		"FACEGATE_PERSON_ID="+ev.Person.ID,
		"FACEGATE_PERSON_NAME="+ev.Person.Name,
		"FACEGATE_EVENT_ID="+ev.ID,
		"FACEGATE_EVENT_TIME="+ev.Time.UTC().Format(daemon.EventTimeLayout),
		"FACEGATE_DOOR="+ev.Door,
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var out capped
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	switch {
	case err == nil:
		return nil
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%s: killed after the timeout (%s)%s", c.argv[0], c.timeout, out.tail())
	default:
		return fmt.Errorf("%s: %v%s", c.argv[0], err, out.tail())
	}
}

// capped keeps the first outputCaptureBytes written to it.
type capped struct {
	mu  sync.Mutex
	buf []byte
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := outputCaptureBytes - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// tail is "; output: ..." with the captured output on one line, or "".
func (c *capped) tail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := strings.TrimSpace(string(c.buf))
	if s == "" {
		return ""
	}
	return "; output: " + strconv.Quote(s)
}

// The GPIO v2 character-device uAPI (linux/gpio.h): the line flags
// golang.org/x/sys/unix does not define.
const (
	gpioV2LineFlagActiveLow = 1 << 1
	gpioV2LineFlagOutput    = 1 << 3
	gpioConsumer            = "facegate-relay"
)

// gpioOutput holds one GPIO line requested as an output, inactive between
// pulses.
type gpioOutput struct {
	cfg  GPIOConfig
	path string
	mu   sync.Mutex
	fd   int // the line request's fd; -1 once closed
}

func ioctl(fd int, req uint, arg unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
	if e != 0 {
		return e
	}
	return nil
}

// openGPIO requests the line as an output, driven inactive.
func openGPIO(cfg GPIOConfig) (*gpioOutput, error) {
	path := cfg.ChipPath()
	name := confmsg.QuoteIfNeeded(path)
	chip, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("output.gpio.chip %s: no such GPIO chip (ls /dev/gpiochip* lists them; gpioinfo names their lines)", name)
		}
		return nil, fmt.Errorf("output.gpio.chip %s: %v", name, err)
	}
	defer unix.Close(chip)
	var info unix.GPIOChipInfo
	if err := ioctl(chip, unix.GPIO_GET_CHIPINFO_IOCTL, unsafe.Pointer(&info)); err != nil {
		return nil, fmt.Errorf("output.gpio.chip %s: not a GPIO character device (%v)", name, err)
	}
	if uint32(cfg.Line) >= info.Lines {
		return nil, fmt.Errorf("output.gpio.line %d: chip %s (%s) has %d lines, 0 to %d", cfg.Line, name,
			unix.ByteSliceToString(info.Label[:]), info.Lines, int(info.Lines)-1)
	}
	var req unix.GPIOV2LineRequest
	req.Offsets[0] = uint32(cfg.Line)
	req.Num_lines = 1
	copy(req.Consumer[:len(req.Consumer)-1], gpioConsumer)
	req.Config.Flags = gpioV2LineFlagOutput
	if cfg.ActiveLow {
		req.Config.Flags |= gpioV2LineFlagActiveLow
	}
	// Start inactive (logical 0), whatever the line was before.
	req.Config.Num_attrs = 1
	req.Config.Attrs[0].Attr.Id = unix.GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES
	req.Config.Attrs[0].Attr.Flags = 0 // the values: line 0 inactive
	req.Config.Attrs[0].Mask = 1
	if err := ioctl(chip, unix.GPIO_V2_GET_LINE_IOCTL, unsafe.Pointer(&req)); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("output.gpio.line %d of %s: in use by another program (gpioinfo says which)", cfg.Line, name)
		}
		return nil, fmt.Errorf("output.gpio.line %d of %s: requesting it as an output: %v", cfg.Line, name, err)
	}
	return &gpioOutput{cfg: cfg, path: path, fd: int(req.Fd)}, nil
}

func (g *gpioOutput) describe() string {
	level := "high"
	if g.cfg.ActiveLow {
		level = "low"
	}
	return fmt.Sprintf("gpio %s line %d, active %s, pulse %s", g.path, g.cfg.Line, level, g.cfg.Pulse)
}

// set drives the line active or inactive.
func (g *gpioOutput) set(active bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fd < 0 {
		return errors.New("gpio line closed")
	}
	v := unix.GPIOV2LineValues{Mask: 1}
	if active {
		v.Bits = 1
	}
	if err := ioctl(g.fd, unix.GPIO_V2_LINE_SET_VALUES_IOCTL, unsafe.Pointer(&v)); err != nil {
		return fmt.Errorf("gpio %s line %d: set %v: %w", g.path, g.cfg.Line, active, err)
	}
	return nil
}

// trigger drives the line active for the pulse (cut short if ctx ends),
// then inactive.
func (g *gpioOutput) trigger(ctx context.Context, _ daemon.Event) error {
	if err := g.set(true); err != nil {
		g.set(false)
		return err
	}
	t := time.NewTimer(g.cfg.Pulse)
	select {
	case <-ctx.Done():
		t.Stop()
	case <-t.C:
	}
	return g.set(false)
}

// close drives the line inactive and releases it.
func (g *gpioOutput) close() error {
	err := g.set(false)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fd >= 0 {
		unix.Close(g.fd)
		g.fd = -1
	}
	return err
}
