package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// WatchCommand prints a door's decisions as they arrive.
type WatchCommand struct {
	stdout, stderr io.Writer
}

const watchUsage = `Usage: facegate watch [flags]

Subscribes to a door's topics and prints each decision and status change as
it arrives: one line for a person, or the JSON payloads with --json. It only
reads: it cannot open a door.

Examples:

	facegate watch --door front
	facegate watch --mqtt tcp://broker.lan:1883 --door '+' --json
	facegate watch --door front --count 1 --timeout 60s   # wait for one decision
`

func (c *WatchCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	url := fs.String("mqtt", "tcp://127.0.0.1:1883", "the broker")
	door := fs.String("door", "+", "the door to watch; + for every door")
	prefix := fs.String("prefix", "facegate", "the topic prefix (mqtt.topic_prefix)")
	username := fs.String("username", "", "broker user name")
	passwordFile := fs.String("password-file", "", "file holding the broker password")
	asJSON := fs.Bool("json", false, "print each payload as it came, one per line")
	kinds := fs.String("kinds", "unlock,deny,expired", "which event kinds to print")
	count := fs.Int("count", 0, "exit 0 after this many events (0: run until stopped)")
	timeout := fs.Duration("timeout", 0, "exit 1 if --count events have not come within this time")
	if err := parseFlags(fs, args, c.stderr, watchUsage); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	opts := mqtt.NewClientOptions().AddBroker(*url).SetClientID(fmt.Sprintf("facegate-watch-%d", os.Getpid())).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second).
		SetOrderMatters(true)
	if *username != "" {
		opts.SetUsername(*username)
	}
	if *passwordFile != "" {
		b, err := os.ReadFile(*passwordFile)
		if err != nil {
			return err
		}
		opts.SetPassword(strings.TrimRight(string(b), "\r\n"))
	}
	want := map[string]bool{}
	for _, k := range strings.Split(*kinds, ",") {
		want[strings.TrimSpace(k)] = true
	}
	var mu sync.Mutex
	seen := 0
	done := make(chan struct{})
	handle := func(_ mqtt.Client, m mqtt.Message) {
		parts := strings.Split(m.Topic(), "/")
		kind := parts[len(parts)-1]
		if len(parts) >= 2 && parts[len(parts)-1] == "status" {
			fmt.Fprintf(c.stderr, "%s %s\n", m.Topic(), m.Payload())
			return
		}
		if !want[kind] {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if *count > 0 && seen >= *count {
			return
		}
		if *asJSON {
			fmt.Fprintf(c.stdout, "%s\n", m.Payload())
		} else {
			fmt.Fprintln(c.stdout, describeEvent(m.Topic(), m.Payload()))
		}
		seen++
		if *count > 0 && seen == *count {
			close(done)
		}
	}
	opts.SetOnConnectHandler(func(cl mqtt.Client) {
		topics := map[string]byte{
			fmt.Sprintf("%s/%s/events/#", *prefix, *door): 1,
			fmt.Sprintf("%s/%s/status", *prefix, *door):   1,
		}
		cl.SubscribeMultiple(topics, handle)
	})
	cl := mqtt.NewClient(opts)
	tok := cl.Connect()
	var deadline <-chan time.Time
	if *timeout > 0 {
		deadline = time.After(*timeout)
	}
	defer cl.Disconnect(250)
	fmt.Fprintf(c.stderr, "watching %s/%s on %s\n", *prefix, *door, *url)
	select {
	case <-ctx.Done():
		return nil
	case <-done:
		return nil
	case <-deadline:
		if !tok.WaitTimeout(0) || !cl.IsConnected() {
			return fmt.Errorf("no connection to the broker at %s within %s", *url, *timeout)
		}
		return fmt.Errorf("%d of %d events within %s", seen, *count, *timeout)
	}
}

// describeEvent renders a decision payload as one line for a person.
func describeEvent(topic string, payload []byte) string {
	var e struct {
		Door     string  `json:"door"`
		Time     string  `json:"time"`
		Kind     string  `json:"kind"`
		Reason   string  `json:"reason"`
		Score    float64 `json:"score"`
		Liveness float64 `json:"liveness"`
		Frames   int     `json:"frames"`
		Expired  bool    `json:"expired"`
		Sig      string  `json:"sig"`
		Person   *struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"person"`
	}
	if err := json.Unmarshal(payload, &e); err != nil {
		return fmt.Sprintf("%s: unreadable payload (%v)", topic, err)
	}
	who := "nobody enrolled"
	if e.Person != nil {
		who = fmt.Sprintf("%s (%s)", e.Person.Name, e.Person.ID)
	}
	line := fmt.Sprintf("%s  %s  %s  %s  score %.2f  liveness %.2f  %d frames", e.Time, e.Door, strings.ToUpper(e.Kind), who, e.Score, e.Liveness, e.Frames)
	if e.Reason != "" {
		line += "  reason " + e.Reason
	}
	if e.Expired {
		line += "  EXPIRED (not an unlock)"
	}
	if e.Sig != "" {
		line += "  signed"
	}
	return line
}
