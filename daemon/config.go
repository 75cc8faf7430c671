package daemon

// The daemon's configuration: the YAML file of facegate serve, a flag of the
// same dotted name for every key, the defaults, and validation.
//
// One table, configKeys, lists every key once: its dotted name, its meaning
// and the field it sets. The file, the overrides and the flags all go through
// it, so a value is parsed by the same rules wherever it comes from and no
// key can be known to one and unknown to another.

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"github.com/facegate/facegate/internal/confmsg"
	"github.com/facegate/facegate/internal/mqttnet"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/facegate/facegate/camera"
)

// Config is the daemon's configuration. Load builds one from a YAML file and
// overrides; the comments give each field's YAML key, and its default when
// the key is absent.
type Config struct {
	Door       string           // door: names the MQTT topics and the events; [a-z0-9_-]+, required
	Camera     camera.Config    // camera: source (required), realtime (true), exit_at_end, folder_fps (5), min_backoff (500ms), max_backoff (30s)
	DB         string           // db: the database (/var/lib/facegate/facegate.db)
	Models     string           // models: the models' folder ("" = where setup placed them)
	ORTLib     string           // ort_lib: libonnxruntime.so.1 ("" = where setup placed it)
	Threads    int              // threads: per model (0 = all cores)
	MQTT       MQTTConfig       // mqtt
	Policy     PolicyYAML       // policy; see Config.PolicyConfig
	HTTP       string           // http: health and /metrics address (127.0.0.1:9847; "" disables)
	SigningKey string           // signing_key: Ed25519 private key file ("" = unlocks unsigned)
	LogLevel   string           // log_level: debug, info, warn or error (info)
	DebugFaces DebugFacesConfig // debug_faces
	EventsKeep time.Duration    // events_keep: delete delivered decisions older than this from the audit log (2160h, 90 days; 0 keeps them)
}

// MQTTConfig is the mqtt section.
type MQTTConfig struct {
	URL             string        // url: the broker ("" = start the embedded broker on 127.0.0.1:1883)
	ClientID        string        // client_id ("" = "facegate-<door>")
	Username        string        // username ("" = none)
	PasswordFile    string        // password_file: a file holding the password ("" = none)
	CA              string        // ca: CA certificate file (PEM); TLS when set
	Cert, Key       string        // cert, key: client certificate and its key (PEM), both or neither
	TopicPrefix     string        // topic_prefix: topics are <prefix>/<door>/... (facegate)
	OutboxMaxAge    time.Duration // outbox_max_age: older undelivered unlocks go out as expired audit events (30s)
	Keepalive       time.Duration // keepalive (30s; 0 disables)
	ConnectTimeout  time.Duration // connect_timeout (10s)
	Discovery       bool          // discovery: publish Home Assistant discovery messages (true)
	DiscoveryPrefix string        // discovery_prefix (homeassistant)
}

// PolicyYAML is the policy section as written in the file. Threshold and
// Liveness 0 stand for "the calibrated / model default", which only the
// caller knows; Config.PolicyConfig resolves them.
type PolicyYAML struct {
	Threshold float32       // threshold (0 = verify.IdentifyThreshold; an active head brings its own)
	Margin    float32       // margin (0.05)
	Need, Of  int           // need, of (3 of 5)
	Within    time.Duration // within (2s)
	Liveness  float32       // liveness (0 = the model's default threshold)
	Cooldown  time.Duration // cooldown (5s)
	DenyEvery time.Duration // deny_every (3s)
}

// DebugFacesConfig is the debug_faces section: opt-in keeping of the cropped
// faces of denies, for tuning. Faces are biometric data; it is off unless Dir
// is set.
type DebugFacesConfig struct {
	Dir  string        // dir ("" = off)
	Keep time.Duration // keep: delete kept faces older than this (24h)
}

// PolicyConfig returns the door policy c describes, with threshold 0 replaced
// by defaultThreshold and liveness 0 by defaultLiveness.
func (c Config) PolicyConfig(defaultThreshold, defaultLiveness float32) PolicyConfig {
	p := PolicyConfig{
		Threshold: c.Policy.Threshold,
		Margin:    c.Policy.Margin,
		Need:      c.Policy.Need,
		Of:        c.Policy.Of,
		Within:    c.Policy.Within,
		Liveness:  c.Policy.Liveness,
		Cooldown:  c.Policy.Cooldown,
		DenyEvery: c.Policy.DenyEvery,
	}
	if p.Threshold == 0 {
		p.Threshold = defaultThreshold
	}
	if p.Liveness == 0 {
		p.Liveness = defaultLiveness
	}
	return p
}

// Defaults of the keys whose default is not a zero value.
const (
	configDefaultDB   = "/var/lib/facegate/facegate.db"
	configDefaultHTTP = "127.0.0.1:9847"
	configMaxFileSize = 1 << 20 // a config file is a few kilobytes; this refuses /dev/zero and the like
	// A door's audit log: long enough to look into an incident, short
	// enough that the log of who came and went does not grow without bound.
	configDefaultEventsKeep = 90 * 24 * time.Hour
	configMaxKeepalive      = 65535 * time.Second
	configClientIDPrefix    = "facegate-"
)

// configDefaults returns the configuration of a file that sets nothing.
func configDefaults() Config {
	p := DefaultPolicyConfig(0)
	return Config{
		Camera: camera.Config{
			Realtime:   true,
			FolderFPS:  camera.DefaultFolderFPS,
			MinBackoff: camera.DefaultMinBackoff,
			MaxBackoff: camera.DefaultMaxBackoff,
		},
		DB: configDefaultDB,
		MQTT: MQTTConfig{
			TopicPrefix:     "facegate",
			OutboxMaxAge:    30 * time.Second,
			Keepalive:       30 * time.Second,
			ConnectTimeout:  10 * time.Second,
			Discovery:       true,
			DiscoveryPrefix: "homeassistant",
		},
		Policy: PolicyYAML{
			Margin:    p.Margin,
			Need:      p.Need,
			Of:        p.Of,
			Within:    p.Within,
			Cooldown:  p.Cooldown,
			DenyEvery: p.DenyEvery,
		},
		HTTP:       configDefaultHTTP,
		LogLevel:   "info",
		DebugFaces: DebugFacesConfig{Keep: 24 * time.Hour},
		EventsKeep: configDefaultEventsKeep,
	}
}

// configKey is one key of the file: its dotted name, what it means (a flag's
// usage, without the default), and the field it sets, as a pointer to a
// string, bool, int, float32, float64 or time.Duration.
type configKey struct {
	name  string
	usage string
	field func(*Config) any
}

// configKeys lists every key in the order of the example file; validation
// reports problems in this order too.
func configKeys() []configKey {
	return []configKey{
		{"door", "door id: names the MQTT topics and the events; a-z, 0-9, _ and - (required)", func(c *Config) any { return &c.Door }},
		{"camera.source", "frames from: a device index, /dev/videoN, an rtsp:// or http:// URL, a video file, or a folder of images (required)", func(c *Config) any { return &c.Camera.Source }},
		{"camera.realtime", "play a file or folder at its own frame rate, like a camera", func(c *Config) any { return &c.Camera.Realtime }},
		{"camera.exit_at_end", "stop cleanly when a file or folder ends", func(c *Config) any { return &c.Camera.ExitAtEnd }},
		{"camera.folder_fps", "frame rate of a folder of images in realtime mode", func(c *Config) any { return &c.Camera.FolderFPS }},
		{"camera.min_backoff", "first wait before reopening a failed source; doubles up to camera.max_backoff", func(c *Config) any { return &c.Camera.MinBackoff }},
		{"camera.max_backoff", "longest wait before reopening a failed source", func(c *Config) any { return &c.Camera.MaxBackoff }},
		{"db", "the database of people, templates and events", func(c *Config) any { return &c.DB }},
		{"models", "folder holding the .onnx models; empty: where setup placed them", func(c *Config) any { return &c.Models }},
		{"ort_lib", "path of libonnxruntime.so.1; empty: where setup placed it", func(c *Config) any { return &c.ORTLib }},
		{"threads", "threads per model; 0: all cores", func(c *Config) any { return &c.Threads }},
		{"mqtt.url", "MQTT broker, a tcp://, ssl://, tls://, mqtt://, mqtts://, ws:// or wss:// URL; empty: start the embedded broker on 127.0.0.1:1883", func(c *Config) any { return &c.MQTT.URL }},
		{"mqtt.client_id", "MQTT client id; empty: facegate-<door>", func(c *Config) any { return &c.MQTT.ClientID }},
		{"mqtt.username", "MQTT user name; empty: none", func(c *Config) any { return &c.MQTT.Username }},
		{"mqtt.password_file", "file holding the MQTT password; empty: none", func(c *Config) any { return &c.MQTT.PasswordFile }},
		{"mqtt.ca", "CA certificate (PEM) of the broker; TLS when set", func(c *Config) any { return &c.MQTT.CA }},
		{"mqtt.cert", "client certificate (PEM) for TLS client authentication; needs mqtt.key", func(c *Config) any { return &c.MQTT.Cert }},
		{"mqtt.key", "private key (PEM) of mqtt.cert", func(c *Config) any { return &c.MQTT.Key }},
		{"mqtt.topic_prefix", "topics are <prefix>/<door>/...", func(c *Config) any { return &c.MQTT.TopicPrefix }},
		{"mqtt.outbox_max_age", "undelivered unlocks older than this go out as expired audit events", func(c *Config) any { return &c.MQTT.OutboxMaxAge }},
		{"mqtt.keepalive", "MQTT keepalive interval; 0 disables it", func(c *Config) any { return &c.MQTT.Keepalive }},
		{"mqtt.connect_timeout", "longest wait for one connection to the broker", func(c *Config) any { return &c.MQTT.ConnectTimeout }},
		{"mqtt.discovery", "publish Home Assistant discovery messages under mqtt.discovery_prefix", func(c *Config) any { return &c.MQTT.Discovery }},
		{"mqtt.discovery_prefix", "Home Assistant discovery topic prefix", func(c *Config) any { return &c.MQTT.DiscoveryPrefix }},
		{"policy.threshold", "plain cosine similarity a match needs; 0: the built-in 1:N threshold (0.55). An active calibrated head uses its own door threshold", func(c *Config) any { return &c.Policy.Threshold }},
		{"policy.margin", "lead a match needs over the runner-up person", func(c *Config) any { return &c.Policy.Margin }},
		{"policy.need", "unlock when the same person is in this many of the last policy.of frames", func(c *Config) any { return &c.Policy.Need }},
		{"policy.of", "the frame window of policy.need", func(c *Config) any { return &c.Policy.Of }},
		{"policy.within", "those frames all within this time of the newest", func(c *Config) any { return &c.Policy.Within }},
		{"policy.liveness", "live probability each counted frame needs; 0: the model's default threshold", func(c *Config) any { return &c.Policy.Liveness }},
		{"policy.cooldown", "no second unlock of the same person at this door within this time", func(c *Config) any { return &c.Policy.Cooldown }},
		{"policy.deny_every", "at most one deny event per this interval", func(c *Config) any { return &c.Policy.DenyEvery }},
		{"http", "health and /metrics address, host:port; empty: no HTTP server", func(c *Config) any { return &c.HTTP }},
		{"signing_key", "Ed25519 private key file; unlocks are signed when set", func(c *Config) any { return &c.SigningKey }},
		{"log_level", "debug, info, warn or error", func(c *Config) any { return &c.LogLevel }},
		{"debug_faces.dir", "keep the cropped faces of denies in this folder, for tuning; empty: off", func(c *Config) any { return &c.DebugFaces.Dir }},
		{"debug_faces.keep", "delete kept faces older than this", func(c *Config) any { return &c.DebugFaces.Keep }},
		{"events_keep", "delete decisions older than this from the audit log in the database (undelivered ones are kept); 0: keep them forever", func(c *Config) any { return &c.EventsKeep }},
	}
}

// RegisterFlags adds to fs one flag per configuration key, named by its
// dotted key (--camera.source, --mqtt.url, --policy.cooldown, ...). A flag
// that is set appends "key=value" to the returned slice, in command-line
// order, for Load. Boolean keys are boolean flags (--camera.exit_at_end).
// A key whose name fs already defines is skipped: the caller then forwards
// its own flag as an override.
func RegisterFlags(fs *flag.FlagSet) *[]string {
	set := new([]string)
	def := configDefaults()
	for _, k := range configKeys() {
		if fs.Lookup(k.name) != nil {
			continue
		}
		name := k.name
		record := func(v string) error {
			*set = append(*set, name+"="+v)
			return nil
		}
		usage := k.usage + configDefaultText(k.field(&def))
		if _, ok := k.field(&def).(*bool); ok {
			fs.BoolFunc(name, usage, record)
		} else {
			fs.Func(name, usage, record)
		}
	}
	return set
}

// configDefaultText is " (default X)" for a flag's usage, or "" when the
// default is the empty string (the usage says what empty means).
func configDefaultText(p any) string {
	switch p := p.(type) {
	case *string:
		if *p == "" {
			return ""
		}
		return fmt.Sprintf(" (default %q)", *p)
	case *time.Duration:
		return " (default " + confmsg.FormatDuration(*p) + ")"
	case *bool:
		return fmt.Sprintf(" (default %t)", *p)
	case *int:
		return fmt.Sprintf(" (default %d)", *p)
	case *float32:
		return fmt.Sprintf(" (default %v)", *p)
	case *float64:
		return fmt.Sprintf(" (default %v)", *p)
	}
	return ""
}

// Load reads the YAML file at path, applies the defaults to the keys it does
// not set, then the overrides, then validates the result.
//
// Each override is "dotted.key=value" (camera.source=/dev/video2,
// policy.cooldown=10s); its value is taken literally, with no YAML quoting,
// and parsed by the same rules as the file's. Later overrides win over
// earlier ones and all of them over the file. An empty path reads no file.
//
// A key the file sets to null (or leaves empty, "key:") keeps its default;
// write "" to set a text key to empty. Durations are Go durations ("5s",
// "1m30s").
//
// Every error is one line naming the file, and the line where the YAML is at
// fault, or the flag (--key) whose value is; only the first problem is
// reported.
func Load(path string, overrides []string) (Config, error) {
	l := &configLoader{path: path, cfg: configDefaults(), keys: configKeys(), origin: make(map[string]configOrigin)}
	if path != "" {
		data, err := configReadFile(path)
		if err != nil {
			return Config{}, err
		}
		if err := l.file(data); err != nil {
			return Config{}, err
		}
	}
	for _, o := range overrides {
		if err := l.override(o); err != nil {
			return Config{}, configErr(err)
		}
	}
	if l.cfg.MQTT.ClientID == "" {
		l.cfg.MQTT.ClientID = configClientIDPrefix + l.cfg.Door
	}
	if err := l.cfg.Validate(); err != nil {
		return Config{}, l.locate(err)
	}
	return l.cfg, nil
}

// configLoader builds a Config from a file and overrides, remembering where
// each key was set.
type configLoader struct {
	path   string
	cfg    Config
	keys   []configKey
	origin map[string]configOrigin
}

// configOrigin is where a key was last set: a line of the file, or a flag.
type configOrigin struct {
	line int
	flag bool
}

func (l *configLoader) key(name string) *configKey {
	for i := range l.keys {
		if l.keys[i].name == name {
			return &l.keys[i]
		}
	}
	return nil
}

// isSection reports whether name is a section (camera, mqtt, ...).
func (l *configLoader) isSection(name string) bool {
	for _, k := range l.keys {
		if strings.HasPrefix(k.name, name+".") {
			return true
		}
	}
	return false
}

// sectionKeys lists up to n key names of section name, without the section.
func (l *configLoader) sectionKeys(name string, n int) []string {
	var out []string
	for _, k := range l.keys {
		if rest, ok := strings.CutPrefix(k.name, name+"."); ok && len(out) < n {
			out = append(out, rest)
		}
	}
	return out
}

// errorf is an error at a line of the file (none if line is 0).
func (l *configLoader) errorf(line int, format string, a ...any) error {
	msg := fmt.Sprintf(format, a...)
	if line > 0 {
		msg = fmt.Sprintf("line %d: %s", line, msg)
	}
	return configErr(errors.New(configName(l.path) + ": " + msg))
}

// configReadFile reads a config file, refusing folders and huge files.
func configReadFile(path string) ([]byte, error) {
	name := configName(path)
	f, err := os.Open(path)
	if err != nil {
		return nil, configErr(fmt.Errorf("%s: %s", name, confmsg.FileProblem(err)))
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, configErr(fmt.Errorf("%s: is a folder, not a config file", name))
	}
	data, err := io.ReadAll(io.LimitReader(f, configMaxFileSize+1))
	if err != nil {
		return nil, configErr(fmt.Errorf("%s: %s", name, confmsg.FileProblem(err)))
	}
	if len(data) > configMaxFileSize {
		return nil, configErr(fmt.Errorf("%s: larger than %d KiB, not a config file", name, configMaxFileSize>>10))
	}
	return data, nil
}

// file applies a YAML document to l.cfg.
func (l *configLoader) file(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil // empty, or only comments
		}
		return l.yamlError(err)
	}
	var more yaml.Node
	switch err := dec.Decode(&more); {
	case err == io.EOF:
	case err != nil:
		return l.yamlError(err)
	default:
		return l.errorf(more.Line, "a second YAML document; a config file holds one")
	}
	root := &doc
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil
		}
		root = doc.Content[0]
	}
	return l.section(root, "")
}

// yamlError turns a yaml.v3 syntax error ("yaml: line 3: ...") into one line
// naming the file.
func (l *configLoader) yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, what, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				return l.errorf(n, "invalid YAML: %s", what)
			}
		}
	}
	return l.errorf(0, "invalid YAML: %s", msg)
}

// configResolve follows an alias to the node it names.
func configResolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 10; i++ {
		n = n.Alias
	}
	return n
}

func configIsNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// section applies a mapping: the whole file (prefix "") or one section
// (prefix "camera." etc.).
func (l *configLoader) section(n *yaml.Node, prefix string) error {
	at := n.Line
	n = configResolve(n)
	if configIsNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		if prefix == "" {
			return l.errorf(at, "expected settings (door: ..., camera: ...), found %s", confmsg.DescribeNode(n))
		}
		name := strings.TrimSuffix(prefix, ".")
		return l.errorf(at, "%s: expected a mapping of its keys (%s, ...), found %s",
			name, strings.Join(l.sectionKeys(name, 3), ", "), confmsg.DescribeNode(n))
	}
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, v := n.Content[i], n.Content[i+1]
		k := configResolve(kn)
		if k.Kind != yaml.ScalarNode {
			return l.errorf(kn.Line, "a key must be a name, found %s", confmsg.DescribeNode(k))
		}
		name := prefix + k.Value
		if first, dup := seen[k.Value]; dup {
			return l.errorf(kn.Line, "%s is set twice (first on line %d)", confmsg.QuoteIfNeeded(name), first)
		}
		seen[k.Value] = kn.Line
		switch {
		case strings.Contains(k.Value, ".") && l.key(name) != nil:
			return l.errorf(kn.Line, "%s is a flag's name; in the file, nest it (%s: then %s: under it)",
				confmsg.QuoteIfNeeded(name), strings.Split(name, ".")[0], strings.Split(name, ".")[1])
		case l.key(name) != nil:
			if err := l.setNode(l.key(name), v); err != nil {
				return err
			}
			l.origin[name] = configOrigin{line: kn.Line}
		case prefix == "" && l.isSection(name):
			if err := l.section(v, name+"."); err != nil {
				return err
			}
		case k.Value == "<<":
			return l.errorf(kn.Line, "merge keys (<<) are not supported; write the keys out")
		default:
			return l.errorf(kn.Line, "unknown key %s%s", confmsg.Quote(name), l.suggest(name))
		}
	}
	return nil
}

// setNode sets key k from a value node of the file. Null keeps the default.
func (l *configLoader) setNode(k *configKey, v *yaml.Node) error {
	at := v.Line
	v = configResolve(v)
	if configIsNull(v) {
		return nil
	}
	p := k.field(&l.cfg)
	if v.Kind != yaml.ScalarNode {
		return l.errorf(at, "%s: expected %s, found %s", k.name, configWant(p), confmsg.DescribeNode(v))
	}
	if err := configSet(p, v.Value); err != nil {
		return l.errorf(at, "%s: %v", k.name, err)
	}
	return nil
}

// override applies one "key=value".
func (l *configLoader) override(o string) error {
	name, value, ok := strings.Cut(o, "=")
	if !ok {
		return fmt.Errorf("override %s: want key=value, e.g. camera.source=/dev/video2", confmsg.Quote(o))
	}
	k := l.key(name)
	if k == nil {
		if l.isSection(name) {
			return fmt.Errorf("--%s: a section, not a key; set one of its keys, e.g. --%s.%s",
				name, name, l.sectionKeys(name, 1)[0])
		}
		return fmt.Errorf("--%s: unknown key%s", confmsg.QuoteIfNeeded(name), l.suggest(name))
	}
	if err := configSet(k.field(&l.cfg), value); err != nil {
		return fmt.Errorf("--%s: %v", name, err)
	}
	l.origin[name] = configOrigin{flag: true}
	return nil
}

// suggest is " (did you mean "x"?)" for the known key or section nearest to
// the unknown key name, or "" when none is near. Besides misspellings it
// finds a key put in the wrong section ("source" for "camera.source").
func (l *configLoader) suggest(name string) string {
	if len(name) > 64 {
		return ""
	}
	var names []string // every key and section, in table order
	for _, k := range l.keys {
		if sec, _, ok := strings.Cut(k.name, "."); ok && !slices.Contains(names, sec) {
			names = append(names, sec)
		}
		names = append(names, k.name)
	}
	last := func(s string) string { return s[strings.LastIndex(s, ".")+1:] }
	parent := func(s string) string { return s[:max(strings.LastIndex(s, "."), 0)] }
	lname := strings.ToLower(name)
	best, bestD, bestSibling := "", math.MaxInt, false
	for _, c := range names {
		d := min(configDistance(lname, c), configDistance(last(lname), last(c)))
		sibling := parent(c) == parent(name)
		if d < bestD || (d == bestD && sibling && !bestSibling) {
			best, bestD, bestSibling = c, d, sibling
		}
	}
	if best == "" || bestD > max(1, utf8.RuneCountInString(last(name))/3) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// configDistance is the Levenshtein distance between a and b.
func configDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// configSet parses s into the field p points to. The error does not name
// the key; the caller does.
func configSet(p any, s string) error {
	switch p := p.(type) {
	case *string:
		*p = s
	case *bool:
		switch strings.ToLower(s) {
		case "true", "yes", "on":
			*p = true
		case "false", "no", "off":
			*p = false
		default:
			return fmt.Errorf("%s is not true or false", confmsg.Quote(s))
		}
	case *int:
		n, err := strconv.ParseInt(s, 10, 0)
		if errors.Is(err, strconv.ErrRange) {
			return fmt.Errorf("%s is out of range", confmsg.Quote(s))
		} else if err != nil {
			return fmt.Errorf("%s is not a whole number", confmsg.Quote(s))
		}
		*p = int(n)
	case *float32:
		f, err := strconv.ParseFloat(s, 32)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%s is not a number", confmsg.Quote(s))
		}
		*p = float32(f)
	case *float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%s is not a number", confmsg.Quote(s))
		}
		*p = f
	case *time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%s is not a duration (write it with a unit: \"5s\", \"1m30s\")", confmsg.Quote(s))
		}
		*p = d
	default:
		panic(fmt.Sprintf("daemon: config field of type %T", p))
	}
	return nil
}

// configWant describes the value a field takes.
func configWant(p any) string {
	switch p.(type) {
	case *bool:
		return "true or false"
	case *int:
		return "a whole number"
	case *float32, *float64:
		return "a number"
	case *time.Duration:
		return "a duration such as \"5s\""
	}
	return "text"
}

// configName is how messages name the file.
func configName(path string) string {
	return confmsg.QuoteIfNeeded(path)
}

// configErr makes sure err's message is one line.
func configErr(err error) error {
	msg := err.Error()
	if one := confmsg.OneLine(msg); one != msg {
		return errors.New(one)
	}
	return err
}

// configKeyError is a problem with one key's value, found by Validate.
type configKeyError struct {
	key, msg string
}

func (e *configKeyError) Error() string { return e.key + ": " + e.msg }

func configBad(key, format string, a ...any) error {
	return &configKeyError{key: key, msg: confmsg.OneLine(fmt.Sprintf(format, a...))}
}

// locate names where the key at fault was set: the file's line, or the flag.
func (l *configLoader) locate(err error) error {
	var ke *configKeyError
	if !errors.As(err, &ke) {
		if l.path == "" {
			return configErr(err)
		}
		return configErr(fmt.Errorf("%s: %w", configName(l.path), err))
	}
	o, set := l.origin[ke.key]
	switch {
	case set && o.flag:
		return configErr(fmt.Errorf("--%s: %s", ke.key, ke.msg))
	case l.path == "":
		return configErr(err)
	case set:
		return l.errorf(o.line, "%s", err)
	}
	return l.errorf(0, "%s", err)
}

// Validate reports the first problem with c as one line that starts with the
// key at fault ("policy.need: 6 is more than policy.of (5)"). It checks that
// the files c names (password, certificates, signing key) can be read, and
// that a camera source that is a file or folder exists.
func (c Config) Validate() error {
	switch {
	case c.Door == "":
		return configBad("door", "missing; name the door, e.g. \"front\" (it names the MQTT topics and the events)")
	case strings.ContainsFunc(c.Door, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') }):
		return configBad("door", "%s may hold only a-z, 0-9, _ and -", confmsg.Quote(c.Door))
	case len(c.Door) > maxDoorBytes:
		return configBad("door", "%s is longer than %d characters", confmsg.Quote(c.Door), maxDoorBytes)
	}
	if err := c.validateCamera(); err != nil {
		return err
	}
	switch {
	case c.DB == "":
		return configBad("db", "missing; name the database file, e.g. %s", configDefaultDB)
	case c.Threads < 0:
		return configBad("threads", "%d is negative (0 uses all cores)", c.Threads)
	}
	if fi, err := os.Stat(c.DB); err == nil && fi.IsDir() {
		return configBad("db", "%s is a folder, not a database file", confmsg.QuoteIfNeeded(c.DB))
	}
	if err := c.MQTT.validate(); err != nil {
		return err
	}
	// 0 is the "calibrated / model default" sentinel the caller resolves;
	// stand-ins that are valid let the rest be checked now.
	if err := c.PolicyConfig(1, 1).Validate(); err != nil {
		if j, ok := err.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) > 0 {
			err = j.Unwrap()[0]
		}
		key, msg, ok := strings.Cut(err.Error(), ": ")
		if !ok || !strings.HasPrefix(key, "policy.") {
			key, msg = "policy", err.Error()
		}
		return configBad(key, "%s", msg)
	}
	if c.HTTP != "" {
		_, port, err := net.SplitHostPort(c.HTTP)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
			return configBad("http", "%s is not host:port (e.g. %s; \"\" disables the HTTP server)", confmsg.Quote(c.HTTP), configDefaultHTTP)
		}
	}
	if c.SigningKey != "" {
		if err := configReadable("signing_key", c.SigningKey); err != nil {
			return err
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return configBad("log_level", "%s is not one of debug, info, warn, error", confmsg.Quote(c.LogLevel))
	}
	if c.DebugFaces.Dir != "" {
		if fi, err := os.Stat(c.DebugFaces.Dir); err == nil && !fi.IsDir() {
			return configBad("debug_faces.dir", "%s is not a folder", confmsg.QuoteIfNeeded(c.DebugFaces.Dir))
		}
	}
	if c.DebugFaces.Keep < 0 {
		return configBad("debug_faces.keep", "%s is negative", confmsg.FormatDuration(c.DebugFaces.Keep))
	}
	if c.EventsKeep < 0 {
		return configBad("events_keep", "%s is negative", confmsg.FormatDuration(c.EventsKeep))
	}
	return nil
}

// validateCamera names the key at fault for the checks camera.Config.Validate
// also makes, then lets it check the source itself.
func (c Config) validateCamera() error {
	cc := c.Camera
	switch {
	case strings.TrimSpace(cc.Source) == "":
		return configBad("camera.source", "missing; name a camera (0, /dev/video0), an rtsp:// or http:// URL, a video file or a folder of images")
	case !(cc.FolderFPS >= 0) || math.IsInf(cc.FolderFPS, 0):
		return configBad("camera.folder_fps", "%v is not a frame rate (want a positive number, or 0 for %d)", cc.FolderFPS, camera.DefaultFolderFPS)
	case cc.MinBackoff < 0:
		return configBad("camera.min_backoff", "%s is negative", confmsg.FormatDuration(cc.MinBackoff))
	case cc.MaxBackoff < 0:
		return configBad("camera.max_backoff", "%s is negative", confmsg.FormatDuration(cc.MaxBackoff))
	case cc.MinBackoff > 0 && cc.MaxBackoff > 0 && cc.MinBackoff > cc.MaxBackoff:
		return configBad("camera.min_backoff", "%s is longer than camera.max_backoff (%s)",
			confmsg.FormatDuration(cc.MinBackoff), confmsg.FormatDuration(cc.MaxBackoff))
	}
	if err := cc.Validate(); err != nil {
		msg := strings.TrimPrefix(err.Error(), "camera: ")
		if rest, ok := strings.CutPrefix(msg, "source"); ok {
			return configBad("camera.source", "%s", strings.TrimLeft(rest, ": "))
		}
		return configBad("camera", "%s", msg)
	}
	return nil
}

// validate checks the mqtt section.
func (m MQTTConfig) validate() error {
	if m.URL != "" {
		if _, err := mqttnet.ParseURL(m.URL); err != nil {
			return configBad("mqtt.url", "%v", err)
		}
	}
	if m.ClientID == "" {
		return configBad("mqtt.client_id", "missing")
	}
	for _, f := range []struct{ key, path string }{{"mqtt.password_file", m.PasswordFile}, {"mqtt.ca", m.CA}} {
		if f.path == "" {
			continue
		}
		if err := configReadable(f.key, f.path); err != nil {
			return err
		}
	}
	switch {
	case m.Cert != "" && m.Key == "":
		return configBad("mqtt.cert", "set without mqtt.key; a client certificate needs its private key")
	case m.Key != "" && m.Cert == "":
		return configBad("mqtt.key", "set without mqtt.cert; a private key needs its client certificate")
	}
	for _, f := range []struct{ key, path string }{{"mqtt.cert", m.Cert}, {"mqtt.key", m.Key}} {
		if f.path == "" {
			continue
		}
		if err := configReadable(f.key, f.path); err != nil {
			return err
		}
	}
	if problem := mqttnet.TopicPrefixProblem(m.TopicPrefix); problem != "" {
		return configBad("mqtt.topic_prefix", "%s", problem)
	}
	switch {
	case m.OutboxMaxAge <= 0:
		return configBad("mqtt.outbox_max_age", "%s must be positive", confmsg.FormatDuration(m.OutboxMaxAge))
	case m.Keepalive < 0:
		return configBad("mqtt.keepalive", "%s is negative (0 disables it)", confmsg.FormatDuration(m.Keepalive))
	case m.Keepalive > 0 && m.Keepalive < time.Second:
		return configBad("mqtt.keepalive", "%s is less than 1s (MQTT counts whole seconds; 0 disables it)", confmsg.FormatDuration(m.Keepalive))
	case m.Keepalive > configMaxKeepalive:
		return configBad("mqtt.keepalive", "%s is longer than MQTT allows (%s)", confmsg.FormatDuration(m.Keepalive), confmsg.FormatDuration(configMaxKeepalive))
	case m.ConnectTimeout <= 0:
		return configBad("mqtt.connect_timeout", "%s must be positive", confmsg.FormatDuration(m.ConnectTimeout))
	}
	if m.Discovery {
		if problem := mqttnet.TopicPrefixProblem(m.DiscoveryPrefix); problem != "" {
			return configBad("mqtt.discovery_prefix", "%s", problem)
		}
	}
	return nil
}

// configReadable checks that path is a regular file this process can open.
// It does not read it: a FIFO would block, and the file's user checks its
// contents.
func configReadable(key, path string) error {
	name := confmsg.QuoteIfNeeded(path)
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return configBad(key, "%s: %s", name, confmsg.FileProblem(err))
	case fi.IsDir():
		return configBad(key, "%s is a folder, not a file", name)
	case !fi.Mode().IsRegular():
		return configBad(key, "%s is not a regular file", name)
	}
	f, err := os.Open(path)
	if err != nil {
		return configBad(key, "%s: %s", name, confmsg.FileProblem(err))
	}
	f.Close()
	return nil
}
