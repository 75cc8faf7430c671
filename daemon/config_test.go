package daemon

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/facegate/facegate/camera"
)

const configTestExample = "../deploy/facegate.example.yaml"

// configTestFile writes text to dir/facegate.yaml, with $DIR replaced by dir
// (an existing folder, so a usable camera.source), and returns its path.
func configTestFile(t testing.TB, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, "facegate.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(text, "$DIR", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// configTestWant is the configuration of a file that sets only door "front"
// and camera.source: every default, written out by hand from the design so
// that a changed default fails the test.
func configTestWant(source string) Config {
	return Config{
		Door: "front",
		Camera: camera.Config{
			Source:     source,
			Realtime:   true,
			ExitAtEnd:  false,
			FolderFPS:  5,
			MinBackoff: 500 * time.Millisecond,
			MaxBackoff: 30 * time.Second,
		},
		DB:      "/var/lib/facegate/facegate.db",
		Models:  "",
		ORTLib:  "",
		Threads: 0,
		MQTT: MQTTConfig{
			URL:             "",
			ClientID:        "facegate-front",
			TopicPrefix:     "facegate",
			OutboxMaxAge:    30 * time.Second,
			Keepalive:       30 * time.Second,
			ConnectTimeout:  10 * time.Second,
			Discovery:       true,
			DiscoveryPrefix: "homeassistant",
		},
		Policy: PolicyYAML{
			Threshold: 0,
			Margin:    0.05,
			Need:      3,
			Of:        5,
			Within:    2 * time.Second,
			Liveness:  0,
			Cooldown:  5 * time.Second,
			DenyEvery: 3 * time.Second,
		},
		HTTP:       "127.0.0.1:9847",
		SigningKey: "",
		LogLevel:   "info",
		DebugFaces: DebugFacesConfig{Dir: "", Keep: 24 * time.Hour},
		EventsKeep: 2160 * time.Hour,
	}
}

// configTestOneLine fails unless err is a non-empty one-line message.
func configTestOneLine(t testing.TB, err error) string {
	t.Helper()
	msg := err.Error()
	if msg == "" || strings.ContainsFunc(msg, unicode.IsControl) {
		t.Fatalf("error is not one line: %q", msg)
	}
	return msg
}

func TestLoadMinimal(t *testing.T) {
	for _, tc := range []struct {
		name, text string
	}{
		{"block style", "door: front\ncamera:\n  source: $DIR\n"},
		{"flow style, comments", "# a door\n{door: front, camera: {source: '$DIR'}}  # done\n"},
		{"null keys keep their defaults", "door: front\ncamera:\n  source: $DIR\n  realtime:\ndb: ~\nmqtt:\npolicy:\n  need: null\ndebug_faces:\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			got, err := Load(configTestFile(t, dir, tc.text), nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := configTestWant(dir); !reflect.DeepEqual(got, want) {
				t.Errorf("Load:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestLoadExampleConfig(t *testing.T) {
	dir := t.TempDir()
	got, err := Load(configTestExample, []string{"camera.source=" + dir})
	if err != nil {
		t.Fatal(err)
	}
	if want := configTestWant(dir); !reflect.DeepEqual(got, want) {
		t.Errorf("the example is not the defaults:\n got %+v\nwant %+v", got, want)
	}

	// The example shows every key, so that it documents them all.
	data, err := os.ReadFile(configTestExample)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var shown []string
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			if v.Kind == yaml.MappingNode {
				walk(v, prefix+k+".")
			} else {
				shown = append(shown, prefix+k)
			}
		}
	}
	walk(doc.Content[0], "")
	for _, k := range configKeys() {
		if !slices.Contains(shown, k.name) {
			t.Errorf("%s: key %s is missing", configTestExample, k.name)
		}
	}
	// The example's own camera source (/dev/video0) is a device, which need
	// not exist: it validates as it stands.
	if _, err := Load(configTestExample, nil); err != nil {
		t.Errorf("the example as shipped: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	const base = "door: front\ncamera:\n  source: $DIR\n" // lines 1-3
	dir := t.TempDir()
	folder := filepath.Join(dir, "folder")
	secret := filepath.Join(dir, "secret")
	if err := os.Mkdir(folder, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name      string
		text      string   // the file; "" with path set: no file written
		path      string   // instead of a written file
		overrides []string // flags
		want      []string // substrings of the one-line error
	}{
		// The file itself.
		{name: "missing file", path: filepath.Join(dir, "nope.yaml"), want: []string{"nope.yaml: no such file"}},
		{name: "a folder", path: folder, want: []string{"folder: is a folder, not a config file"}},
		{name: "invalid YAML", text: base + "policy:\n  need: 3\n need: 4\n", want: []string{"facegate.yaml: line 5: invalid YAML: did not find expected key"}},
		{name: "tab indentation", text: base + "policy:\n\tneed: 3\n", want: []string{"facegate.yaml: line 5: invalid YAML"}},
		{name: "unterminated quote", text: base + "db: \"/var/lib\n", want: []string{"facegate.yaml: line ", "invalid YAML"}},
		{name: "a list, not settings", text: "- door\n- camera\n", want: []string{"facegate.yaml: line 1: expected settings", "found a list"}},
		{name: "a second document", text: base + "---\ndoor: back\n", want: []string{"facegate.yaml: line 4: a second YAML document"}},

		// Keys.
		{name: "unknown key", text: base + "\n\npolcy:\n  need: 3\n", want: []string{`facegate.yaml: line 6: unknown key "polcy" (did you mean "policy"?)`}},
		{name: "unknown nested key", text: base + "policy:\n  treshold: 0.4\n", want: []string{`facegate.yaml: line 5: unknown key "policy.treshold" (did you mean "policy.threshold"?)`}},
		{name: "key in the wrong section", text: base + "source: /dev/video0\n", want: []string{`line 4: unknown key "source" (did you mean "camera.source"?)`}},
		{name: "unknown key, nothing near", text: base + "zzzzzzzz: 1\n", want: []string{`line 4: unknown key "zzzzzzzz"`}},
		{name: "camelCase key", text: base + "mqtt:\n  clientId: x\n", want: []string{`line 5: unknown key "mqtt.clientId" (did you mean "mqtt.client_id"?)`}},
		{name: "key set twice", text: base + "policy:\n  need: 3\n  need: 4\n", want: []string{"line 6: policy.need is set twice (first on line 5)"}},
		{name: "dotted key in the file", text: base + "policy.need: 2\n", want: []string{"line 4: policy.need is a flag's name"}},
		{name: "merge key in a section", text: base + "policy:\n  <<: {need: 2}\n", want: []string{"line 5: merge keys (<<) are not supported"}},

		// Types.
		{name: "not a whole number", text: base + "policy:\n  need: three\n", want: []string{`facegate.yaml: line 5: policy.need: "three" is not a whole number`}},
		{name: "a fraction for a whole number", text: base + "policy:\n  of: 5.5\n", want: []string{`line 5: policy.of: "5.5" is not a whole number`}},
		{name: "not a number", text: base + "policy:\n  margin: lots\n", want: []string{`line 5: policy.margin: "lots" is not a number`}},
		{name: "NaN", text: base + "policy:\n  threshold: NaN\n", want: []string{`line 5: policy.threshold: "NaN" is not a number`}},
		{name: "not a bool", text: "door: front\ncamera:\n  source: $DIR\n  realtime: maybe\n", want: []string{`line 4: camera.realtime: "maybe" is not true or false`}},
		{name: "duration without a unit", text: base + "policy:\n  within: 2\n", want: []string{`line 5: policy.within: "2" is not a duration`}},
		{name: "bad duration", text: base + "mqtt:\n  keepalive: soon\n", want: []string{`line 5: mqtt.keepalive: "soon" is not a duration`}},
		{name: "a list for a number", text: base + "policy:\n  need: [3, 5]\n", want: []string{"line 5: policy.need: expected a whole number, found a list"}},
		{name: "a mapping for text", text: "door: {name: front}\n", want: []string{"line 1: door: expected text, found a mapping"}},
		{name: "text for a section", text: base + "policy: strict\n", want: []string{`line 4: policy: expected a mapping of its keys (threshold, margin, need, ...), found "strict"`}},
		{name: "a huge number", text: base + "threads: 99999999999999999999999\n", want: []string{"line 4: threads: ", "is out of range"}},

		// Validation, attributed to where the value was set.
		{name: "door missing", text: "camera:\n  source: $DIR\n", want: []string{"facegate.yaml: door: missing"}},
		{name: "door empty", text: "door: \"\"\ncamera:\n  source: $DIR\n", want: []string{"facegate.yaml: line 1: door: missing"}},
		{name: "door with a space", text: "door: Front Door\ncamera:\n  source: $DIR\n", want: []string{`facegate.yaml: line 1: door: "Front Door" may hold only a-z, 0-9, _ and -`}},
		{name: "door too long", text: "door: " + strings.Repeat("d", 65) + "\ncamera:\n  source: $DIR\n", want: []string{"line 1: door: ", "is longer than 64 characters"}},
		{name: "door with a slash", text: "door: front/back\ncamera:\n  source: $DIR\n", want: []string{`door: "front/back" may hold only`}},
		{name: "camera.source missing", text: "door: front\n", want: []string{"facegate.yaml: camera.source: missing"}},
		{name: "camera.source no such file", text: "door: front\ncamera:\n  source: $DIR/nope.mp4\n", want: []string{"line 3: camera.source: ", "nope.mp4: no such file"}},
		{name: "camera.source a URL with no host", text: "door: front\ncamera:\n  source: rtsp://\n", want: []string{"line 3: camera.source: ", "has no host"}},
		{name: "camera backoffs crossed", text: base + "  min_backoff: 1m\n  max_backoff: 10s\n", want: []string{"line 4: camera.min_backoff: 1m is longer than camera.max_backoff (10s)"}},
		{name: "camera folder_fps negative", text: base + "  folder_fps: -1\n", want: []string{"line 4: camera.folder_fps: -1 is not a frame rate"}},
		{name: "db empty", text: base + "db: \"\"\n", want: []string{"line 4: db: missing"}},
		{name: "db a folder", text: base + "db: $DIR\n", want: []string{"line 4: db: ", "is a folder"}},
		{name: "threads negative", text: base + "threads: -2\n", want: []string{"line 4: threads: -2 is negative"}},
		{name: "need more than of", text: base + "policy:\n  need: 6\n", want: []string{"line 5: policy.need: 6 is more than policy.of (5)"}},
		{name: "need 0", text: base + "policy:\n  need: 0\n", want: []string{"line 5: policy.need: 0 is less than 1"}},
		{name: "threshold above 1", text: base + "policy:\n  threshold: 1.5\n", want: []string{"line 5: policy.threshold: 1.5 is outside (-1, 1]"}},
		{name: "threshold -1", text: base + "policy:\n  threshold: -1\n", want: []string{"line 5: policy.threshold: -1 is outside (-1, 1]"}},
		{name: "liveness above 1", text: base + "policy:\n  liveness: 2\n", want: []string{"line 5: policy.liveness: 2 is outside [0, 1]"}},
		{name: "liveness negative", text: base + "policy:\n  liveness: -0.1\n", want: []string{"line 5: policy.liveness: -0.1 is outside [0, 1]"}},
		{name: "margin negative", text: base + "policy:\n  margin: -0.1\n", want: []string{"line 5: policy.margin: -0.1 is outside [0, 2]"}},
		{name: "within 0", text: base + "policy:\n  within: 0s\n", want: []string{"line 5: policy.within: 0s must be positive"}},
		{name: "cooldown negative", text: base + "policy:\n  cooldown: -5s\n", want: []string{"line 5: policy.cooldown: -5s is negative"}},
		{name: "mqtt.url http", text: base + "mqtt:\n  url: http://broker:1883\n", want: []string{`line 5: mqtt.url: "http://broker:1883" is not an MQTT broker URL (want tcp://, ssl://, tls://, mqtt://, mqtts://, ws:// or wss://)`}},
		{name: "mqtt.url a bare host", text: base + "mqtt:\n  url: broker:1883\n", want: []string{"line 5: mqtt.url: ", "is not an MQTT broker URL"}},
		{name: "mqtt.url port out of range", text: base + "mqtt:\n  url: tcp://broker:70000\n", want: []string{`line 5: mqtt.url: "tcp://broker:70000": port 70000 is out of range`}},
		{name: "mqtt.url ws with no host", text: base + "mqtt:\n  url: ws:///mqtt\n", want: []string{`line 5: mqtt.url: "ws:///mqtt" has no host`}},
		{name: "mqtt.url no host", text: base + "mqtt:\n  url: mqtts://:8883\n", want: []string{"line 5: mqtt.url: ", "has no host"}},
		{name: "mqtt.url password redacted", text: base + "mqtt:\n  url: https://user:hunter2@broker\n", want: []string{"line 5: mqtt.url: ", "xxxxx"}},
		{name: "mqtt.cert without key", text: base + "mqtt:\n  url: ssl://broker:8883\n  cert: " + secret + "\n", want: []string{"line 6: mqtt.cert: set without mqtt.key"}},
		{name: "mqtt.key without cert", text: base + "mqtt:\n  key: " + secret + "\n", want: []string{"line 5: mqtt.key: set without mqtt.cert"}},
		{name: "mqtt.password_file missing", text: base + "mqtt:\n  password_file: $DIR/pw\n", want: []string{"line 5: mqtt.password_file: ", "pw: no such file"}},
		{name: "mqtt.password_file a folder", text: base + "mqtt:\n  password_file: $DIR\n", want: []string{"line 5: mqtt.password_file: ", "is a folder, not a file"}},
		{name: "mqtt.ca missing", text: base + "mqtt:\n  ca: $DIR/ca.pem\n", want: []string{"line 5: mqtt.ca: ", "ca.pem: no such file"}},
		{name: "mqtt.topic_prefix wildcard", text: base + "mqtt:\n  topic_prefix: site/#\n", want: []string{"line 5: mqtt.topic_prefix: ", "wildcard"}},
		{name: "mqtt.topic_prefix empty", text: base + "mqtt:\n  topic_prefix: \"\"\n", want: []string{"line 5: mqtt.topic_prefix: missing"}},
		{name: "mqtt.discovery_prefix empty", text: base + "mqtt:\n  discovery_prefix: \"\"\n", want: []string{"line 5: mqtt.discovery_prefix: missing"}},
		{name: "mqtt.outbox_max_age 0", text: base + "mqtt:\n  outbox_max_age: 0s\n", want: []string{"line 5: mqtt.outbox_max_age: 0s must be positive"}},
		{name: "mqtt.keepalive under a second", text: base + "mqtt:\n  keepalive: 500ms\n", want: []string{"line 5: mqtt.keepalive: 500ms is less than 1s"}},
		{name: "mqtt.connect_timeout negative", text: base + "mqtt:\n  connect_timeout: -1s\n", want: []string{"line 5: mqtt.connect_timeout: -1s must be positive"}},
		{name: "http not host:port", text: base + "http: 9847\n", want: []string{`line 4: http: "9847" is not host:port`}},
		{name: "http port out of range", text: base + "http: localhost:99999\n", want: []string{`line 4: http: "localhost:99999" is not host:port`}},
		{name: "signing_key missing", text: base + "signing_key: $DIR/door.key\n", want: []string{"line 4: signing_key: ", "door.key: no such file"}},
		{name: "log_level unknown", text: base + "log_level: verbose\n", want: []string{`line 4: log_level: "verbose" is not one of debug, info, warn, error`}},
		{name: "debug_faces.keep negative", text: base + "debug_faces:\n  keep: -1h\n", want: []string{"line 5: debug_faces.keep: -1h is negative"}},
		{name: "events_keep negative", text: base + "events_keep: -24h\n", want: []string{"line 4: events_keep: -24h is negative"}},
		{name: "debug_faces.dir a file", text: base + "debug_faces:\n  dir: " + secret + "\n", want: []string{"line 5: debug_faces.dir: ", "is not a folder"}},
		{name: "first problem only", text: "door: A\ncamera:\n  source: \"\"\npolicy:\n  need: 9\n", want: []string{`line 1: door: "A" may hold only`}},

		// Overrides.
		{name: "override unknown key", text: base, overrides: []string{"polcy.cooldown=10s"}, want: []string{`--polcy.cooldown: unknown key (did you mean "policy.cooldown"?)`}},
		{name: "override a section", text: base, overrides: []string{"policy=strict"}, want: []string{"--policy: a section, not a key; set one of its keys, e.g. --policy.threshold"}},
		{name: "override without =", text: base, overrides: []string{"policy.need"}, want: []string{`override "policy.need": want key=value`}},
		{name: "override wrong type", text: base, overrides: []string{"policy.need=three"}, want: []string{`--policy.need: "three" is not a whole number`}},
		{name: "override bad duration", text: base, overrides: []string{"policy.cooldown=10"}, want: []string{`--policy.cooldown: "10" is not a duration`}},
		{name: "override fails validation", text: base, overrides: []string{"policy.need=7"}, want: []string{"--policy.need: 7 is more than policy.of (5)"}},
		{name: "override of the file's key fails validation", text: base + "mqtt:\n  url: tcp://broker:1883\n", overrides: []string{"mqtt.url=udp://broker:1883"}, want: []string{"--mqtt.url: ", "is not an MQTT broker URL"}},
		{name: "override names a key", text: base, overrides: []string{"door=Front"}, want: []string{`--door: "Front" may hold only`}},
		{name: "override with no file", path: "-", overrides: []string{"door=front"}, want: []string{"camera.source: missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			switch path {
			case "":
				path = configTestFile(t, t.TempDir(), tc.text)
			case "-":
				path = ""
			}
			_, err := Load(path, tc.overrides)
			if err == nil {
				t.Fatalf("Load succeeded; want an error with %q", tc.want)
			}
			msg := configTestOneLine(t, err)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q\n does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error %q shows a password", msg)
			}
		})
	}
}

func TestLoadUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	dir := t.TempDir()
	path := configTestFile(t, dir, "door: front\ncamera:\n  source: $DIR\n")
	secret := filepath.Join(dir, "pw")
	if err := os.WriteFile(secret, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, secret} {
		if err := os.Chmod(p, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, path string
		overrides  []string
		want       string
	}{
		{"config file", path, nil, "facegate.yaml: permission denied"},
		{"password file", "", []string{"door=front", "camera.source=" + dir, "mqtt.password_file=" + secret}, "--mqtt.password_file: " + secret + ": permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.path, tc.overrides)
			if err == nil || !strings.Contains(configTestOneLine(t, err), tc.want) {
				t.Errorf("Load: %v; want %q", err, tc.want)
			}
		})
	}
}

func TestLoadOverrides(t *testing.T) {
	const file = `door: front
camera:
  source: $DIR
  realtime: false
mqtt:
  url: tcp://broker:1883
  keepalive: 20s
policy:
  cooldown: 7s
  need: 2
`
	for _, tc := range []struct {
		name      string
		overrides []string
		check     func(c Config) bool
	}{
		{"none: the file's values", nil, func(c Config) bool {
			return c.Policy.Cooldown == 7*time.Second && c.MQTT.URL == "tcp://broker:1883" && !c.Camera.Realtime && c.Policy.Need == 2
		}},
		{"a flag wins over the file", []string{"policy.cooldown=10s"}, func(c Config) bool { return c.Policy.Cooldown == 10*time.Second }},
		{"a nested duration the file does not set", []string{"policy.deny_every=1m30s"}, func(c Config) bool {
			return c.Policy.DenyEvery == 90*time.Second && c.Policy.Cooldown == 7*time.Second
		}},
		{"a duration in another section", []string{"mqtt.outbox_max_age=2m", "debug_faces.keep=168h"}, func(c Config) bool {
			return c.MQTT.OutboxMaxAge == 2*time.Minute && c.DebugFaces.Keep == 7*24*time.Hour && c.MQTT.Keepalive == 20*time.Second
		}},
		{"the last flag wins", []string{"policy.need=4", "policy.need=1"}, func(c Config) bool { return c.Policy.Need == 1 }},
		{"a camera source", []string{"camera.source=/dev/video2"}, func(c Config) bool { return c.Camera.Source == "/dev/video2" }},
		{"empty text: the embedded broker", []string{"mqtt.url="}, func(c Config) bool { return c.MQTT.URL == "" }},
		{"empty http disables it", []string{"http="}, func(c Config) bool { return c.HTTP == "" }},
		{"booleans", []string{"camera.realtime=true", "camera.exit_at_end=true", "mqtt.discovery=false"}, func(c Config) bool {
			return c.Camera.Realtime && c.Camera.ExitAtEnd && !c.MQTT.Discovery
		}},
		{"discovery off allows an empty prefix", []string{"mqtt.discovery=false", "mqtt.discovery_prefix="}, func(c Config) bool { return c.MQTT.DiscoveryPrefix == "" }},
		{"a value with = in it", []string{"mqtt.username=a=b"}, func(c Config) bool { return c.MQTT.Username == "a=b" }},
		{"the door names the client id", []string{"door=back_2"}, func(c Config) bool { return c.Door == "back_2" && c.MQTT.ClientID == "facegate-back_2" }},
		{"an explicit client id", []string{"mqtt.client_id=relay-7"}, func(c Config) bool { return c.MQTT.ClientID == "relay-7" }},
		{"floats", []string{"policy.threshold=0.42", "policy.liveness=0.6", "camera.folder_fps=2.5"}, func(c Config) bool {
			return c.Policy.Threshold == 0.42 && c.Policy.Liveness == 0.6 && c.Camera.FolderFPS == 2.5
		}},
		{"the threshold sentinel stays 0", []string{"policy.threshold=0"}, func(c Config) bool { return c.Policy.Threshold == 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c, err := Load(configTestFile(t, dir, file), tc.overrides)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("Load(%q): got %+v", tc.overrides, c)
			}
		})
	}
}

func TestRegisterFlags(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("config", "", "")
	fs.String("db", "", "the caller's own --db") // skipped by RegisterFlags
	set := RegisterFlags(fs)

	for _, k := range configKeys() {
		if fs.Lookup(k.name) == nil {
			t.Errorf("no flag --%s", k.name)
		}
	}
	for _, tc := range []struct{ flag, usage string }{
		{"policy.cooldown", "(default 5s)"},
		{"debug_faces.keep", "(default 24h)"},
		{"events_keep", "(default 2160h)"},
		{"http", `(default "127.0.0.1:9847")`},
		{"mqtt.discovery", "(default true)"},
		{"policy.need", "(default 3)"},
		{"mqtt.url", "empty: start the embedded broker"},
		{"db", "the caller's own --db"},
	} {
		if f := fs.Lookup(tc.flag); f == nil || !strings.Contains(f.Usage, tc.usage) {
			t.Errorf("--%s: usage does not say %q", tc.flag, tc.usage)
		}
	}

	dir := t.TempDir()
	args := []string{
		"--config", "x.yaml",
		"--door", "side",
		"--camera.source=" + dir,
		"--camera.exit_at_end",
		"--mqtt.discovery=false",
		"--policy.cooldown", "10s",
		"--mqtt.url", "tcp://127.0.0.1:1884",
		"--db", "/tmp/other.db",
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"door=side",
		"camera.source=" + dir,
		"camera.exit_at_end=true",
		"mqtt.discovery=false",
		"policy.cooldown=10s",
		"mqtt.url=tcp://127.0.0.1:1884",
	}
	if !slices.Equal(*set, want) {
		t.Errorf("recorded %q\nwant %q", *set, want)
	}
	c, err := Load("", *set)
	if err != nil {
		t.Fatal(err)
	}
	if c.Door != "side" || !c.Camera.ExitAtEnd || c.MQTT.Discovery || c.Policy.Cooldown != 10*time.Second || c.MQTT.URL != "tcp://127.0.0.1:1884" || c.DB != "/var/lib/facegate/facegate.db" {
		t.Errorf("Load(flags) = %+v", c)
	}

	// A bad value is Load's to report, as one line naming the flag.
	fs2 := flag.NewFlagSet("serve", flag.ContinueOnError)
	set2 := RegisterFlags(fs2)
	if err := fs2.Parse([]string{"--door=front", "--camera.source", dir, "--policy.need", "three"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Load("", *set2); err == nil || configTestOneLine(t, err) != `--policy.need: "three" is not a whole number` {
		t.Errorf("Load: %v", err)
	}
}

func TestConfigPolicyConfig(t *testing.T) {
	c := configTestWant("/dev/video0")
	for _, tc := range []struct {
		name                string
		threshold, liveness float32 // in the file
		want                PolicyConfig
	}{
		{"sentinels take the defaults", 0, 0, PolicyConfig{Threshold: 0.33, Margin: 0.05, Need: 3, Of: 5, Within: 2 * time.Second, Liveness: 0.5, Cooldown: 5 * time.Second, DenyEvery: 3 * time.Second}},
		{"set values win", 0.4, 0.7, PolicyConfig{Threshold: 0.4, Margin: 0.05, Need: 3, Of: 5, Within: 2 * time.Second, Liveness: 0.7, Cooldown: 5 * time.Second, DenyEvery: 3 * time.Second}},
		{"a negative threshold is a value", -0.2, 0, PolicyConfig{Threshold: -0.2, Margin: 0.05, Need: 3, Of: 5, Within: 2 * time.Second, Liveness: 0.5, Cooldown: 5 * time.Second, DenyEvery: 3 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.Policy.Threshold, c.Policy.Liveness = tc.threshold, tc.liveness
			got := c.PolicyConfig(0.33, 0.5)
			if got != tc.want {
				t.Errorf("PolicyConfig = %+v\nwant %+v", got, tc.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("the result does not validate: %v", err)
			}
		})
	}
	// The defaults are DefaultPolicyConfig's, not a copy that could drift.
	got, want := c.PolicyConfig(0.33, 0.5), DefaultPolicyConfig(0.33)
	got.Threshold, got.Liveness = want.Threshold, want.Liveness
	if got != want {
		t.Errorf("defaults %+v differ from DefaultPolicyConfig %+v", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		want   string // the error starts with this; "" for valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"all TLS files", func(c *Config) {
			c.MQTT.URL, c.MQTT.CA, c.MQTT.Cert, c.MQTT.Key, c.MQTT.PasswordFile = "mqtts://broker:8883", configTestExample, configTestExample, configTestExample, configTestExample
		}, ""},
		{"websocket broker", func(c *Config) { c.MQTT.URL = "wss://broker/mqtt" }, ""},
		{"broker without a port: the scheme's default", func(c *Config) { c.MQTT.URL = "mqtt://broker" }, ""},
		{"a 64-character door", func(c *Config) { c.Door, c.MQTT.ClientID = strings.Repeat("d", 64), "x" }, ""},
		{"topic prefix of several levels", func(c *Config) { c.MQTT.TopicPrefix = "site/a/facegate" }, ""},
		{"topic prefix with a control character", func(c *Config) { c.MQTT.TopicPrefix = "a\tb" }, `mqtt.topic_prefix: "a\tb" is not UTF-8 text`},
		{"http on every interface", func(c *Config) { c.HTTP = ":9847" }, ""},
		{"keepalive off", func(c *Config) { c.MQTT.Keepalive = 0 }, ""},
		{"cooldown off", func(c *Config) { c.Policy.Cooldown, c.Policy.DenyEvery = 0, 0 }, ""},
		{"client id missing", func(c *Config) { c.MQTT.ClientID = "" }, "mqtt.client_id: missing"},
		{"keepalive too long", func(c *Config) { c.MQTT.Keepalive = 20 * time.Hour }, "mqtt.keepalive: 20h is longer than MQTT allows (18h12m15s)"},
		{"topic prefix with $", func(c *Config) { c.MQTT.TopicPrefix = "$SYS" }, `mqtt.topic_prefix: "$SYS" begins with $`},
		{"topic prefix with a trailing /", func(c *Config) { c.MQTT.TopicPrefix = "site/" }, `mqtt.topic_prefix: "site/" has an empty topic level`},
		{"a control character in a path", func(c *Config) { c.SigningKey = "a\nb" }, `signing_key: "a\nb": no such file`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := configTestWant(t.TempDir())
			tc.change(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tc.want != "" && err == nil:
				t.Errorf("Validate passed; want %q", tc.want)
			case tc.want != "" && !strings.HasPrefix(configTestOneLine(t, err), tc.want):
				t.Errorf("Validate: %q\nwant %q...", err, tc.want)
			}
		})
	}
}

func FuzzLoad(f *testing.F) {
	if data, err := os.ReadFile(configTestExample); err == nil {
		f.Add(data)
	}
	for _, s := range []string{
		"door: front\ncamera:\n  source: /dev/video0\n",
		"door: front\ncamera: {source: 0, realtime: no}\npolicy: {need: 2, of: 3, within: 1s}\n",
		"door: x\ncamera:\n  source: rtsp://cam/1\nmqtt:\n  url: tcp://h:1883\n  keepalive: 0s\n",
		"a: &a [*a]\ndoor: *a\n",
		"door: &d front\ncamera: &c {source: *d}\nmqtt: *c\n",
		"polcy:\n  need: 3\n",
		"---\n---\n",
		"door: front\ncamera:\n  source: /dev/video0\npolicy:\n  threshold: 1e40\n",
		"\t",
		"{",
		"",
	} {
		f.Add([]byte(s))
	}
	// One file, rewritten for each input: a fuzz worker runs inputs one at a
	// time, and a fresh folder per input would cost more than Load.
	path := filepath.Join(f.TempDir(), "facegate.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, nil)
		if err != nil {
			msg := configTestOneLine(t, err)
			if !strings.HasPrefix(msg, path+": ") {
				t.Fatalf("error %q does not name the file", msg)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load returned a config that does not validate: %v", err)
		}
		if c.PolicyConfig(0.33, 0.5).Validate() != nil {
			t.Fatalf("policy does not validate: %+v", c.Policy)
		}
		again, err := Load(path, nil)
		if err != nil || !reflect.DeepEqual(c, again) {
			t.Fatalf("Load is not deterministic: %+v, %v", again, err)
		}
	})
}
