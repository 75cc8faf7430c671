package mqttnet

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		in, host, err string
	}{
		{"tcp://broker", "broker:1883", ""},
		{"mqtt://broker:1884", "broker:1884", ""},
		{"ssl://b.example", "b.example:8883", ""},
		{"mqtts://[::1]", "[::1]:8883", ""},
		{"ws://b/mqtt", "b:80", ""},
		{"wss://u:secret@b", "b:443", ""},
		{"http://broker", "", "is not an MQTT broker URL"},
		{"", "", "is not an MQTT broker URL"},
		{"tcp://:1883", "", "has no host"},
		{"tcp://b:0", "", "port 0 is out of range"},
		{"tcp://b:65536", "", "port 65536 is out of range"},
		{"tcp://u:secret@b:x", "", "not a valid URL"},
		{"tcp://u:secret@:1883", "", `"tcp://u:xxxxx@:1883" has no host`},
	} {
		u, err := ParseURL(c.in)
		switch {
		case c.err == "" && (err != nil || u.Host != c.host):
			t.Errorf("ParseURL(%q) = %v, %v; want host %s", c.in, u, err, c.host)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParseURL(%q): error %v, want one saying %q", c.in, err, c.err)
		case err != nil && strings.Contains(err.Error(), "secret"):
			t.Errorf("ParseURL(%q): the error shows the password: %v", c.in, err)
		}
	}
	if got := Redact("tcp://u:secret@b:1883"); strings.Contains(got, "secret") || !strings.Contains(got, "b:1883") {
		t.Errorf("Redact: %s", got)
	}
}

func TestTopicPrefixProblem(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"facegate", ""},
		{"site/door-1", ""},
		{"", "missing"},
		{"a/#", "wildcard"},
		{"a/+/b", "wildcard"},
		{"/a", "empty topic level"},
		{"a/", "empty topic level"},
		{"a//b", "empty topic level"},
		{"$SYS", "reserves"},
		{"a\x00b", "control characters"},
		{"a\xffb", "UTF-8"},
		{strings.Repeat("a", MaxTopicPrefix+1), "longer than 256 bytes"},
	} {
		got := TopicPrefixProblem(c.in)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("TopicPrefixProblem(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestDialHonoursTheContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	u, err := ParseURL("tcp://" + l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := Dial(context.Background(), u, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if c, err := Dial(ctx, u, nil, 5*time.Second); err == nil {
		c.Close()
		t.Error("Dial with a cancelled context connected")
	}
}
