// Package mqttnet holds what the door's publisher and the relay both need
// of an MQTT broker: reading its URL and a topic prefix from a
// configuration, showing the URL without its password, and dialing it.
package mqttnet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/facegate/facegate/internal/confmsg"
)

// Schemes lists the URL schemes ParseURL takes, as a message says them.
const Schemes = "tcp://, ssl://, tls://, mqtt://, mqtts://, ws:// or wss://"

// MaxTopicPrefix bounds a topic prefix, far below MQTT's 65,535-byte
// topics, so that every topic built on it fits.
const MaxTopicPrefix = 256

// defaultPorts are the brokers' usual ports by scheme.
var defaultPorts = map[string]string{
	"tcp": "1883", "mqtt": "1883",
	"ssl": "8883", "tls": "8883", "mqtts": "8883",
	"ws": "80", "wss": "443",
}

// ParseURL reads a broker URL and fills in the scheme's default port
// when it has none (1883, 8883, 80, 443). Its errors describe the value
// for one line of a configuration message and never show a password.
func ParseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password and all
		}
		return nil, fmt.Errorf("not a valid URL: %v", err)
	}
	shown := confmsg.Quote(u.Redacted())
	port, ok := defaultPorts[u.Scheme]
	switch {
	case !ok:
		return nil, fmt.Errorf("%s is not an MQTT broker URL (want %s)", shown, Schemes)
	case u.Hostname() == "":
		return nil, fmt.Errorf("%s has no host", shown)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%s: port %s is out of range", shown, p)
		}
	} else {
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	return u, nil
}

// Redact is s with any password hidden, for logs.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// TopicPrefixProblem says what is wrong with a topic prefix, which must be
// one or more plain topic levels, or "" when nothing is.
func TopicPrefixProblem(s string) string {
	switch {
	case s == "":
		return "missing"
	case len(s) > MaxTopicPrefix:
		return fmt.Sprintf("%s is longer than %d bytes", confmsg.Quote(s), MaxTopicPrefix)
	case !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
		return fmt.Sprintf("%s is not UTF-8 text without control characters", confmsg.Quote(s))
	case strings.ContainsAny(s, "+#"):
		return fmt.Sprintf("%s holds an MQTT wildcard (+ or #)", confmsg.Quote(s))
	case strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") || strings.Contains(s, "//"):
		return fmt.Sprintf("%s has an empty topic level (a leading, trailing or double /)", confmsg.Quote(s))
	case strings.HasPrefix(s, "$"):
		return fmt.Sprintf("%s begins with $, which MQTT reserves for the broker", confmsg.Quote(s))
	}
	return ""
}

// Dial opens the network connection to the broker at u (as ParseURL
// returns it) for paho's custom connection hook, honouring ctx: TCP, TLS
// with cfg (nil: the system's roots), or a websocket.
func Dial(ctx context.Context, u *url.URL, cfg *tls.Config, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	switch u.Scheme {
	case "ssl", "tls", "mqtts":
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		return (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", u.Host)
	case "ws", "wss":
		ws := *u
		ws.User = nil // the credentials go in MQTT's CONNECT, not the HTTP request
		if u.Scheme == "ws" {
			cfg = nil
		}
		return mqtt.NewWebsocket(ws.String(), cfg, timeout, nil, nil)
	default:
		return d.DialContext(ctx, "tcp", u.Host)
	}
}

// Connect makes a paho client of o whose connection is opened by dial,
// and connects it. Ending ctx cuts a dial, TLS handshake or CONNACK wait
// short instead of holding the caller for the connect timeout. It returns
// the client even on error (not connected then).
func Connect(ctx context.Context, o *mqtt.ClientOptions, dial func(context.Context, *url.URL) (net.Conn, error)) (mqtt.Client, error) {
	// The connection being set up, so that ending ctx can close it.
	var mu sync.Mutex
	var dialed net.Conn
	o.SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
		c, err := dial(ctx, u)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		if err := ctx.Err(); err != nil {
			// ctx ended after the dial: the close below found nothing to close.
			c.Close()
			return nil, err
		}
		dialed = c
		return c, nil
	})
	client := mqtt.NewClient(o)
	tok := client.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		mu.Lock()
		if dialed != nil {
			dialed.Close() // the dial itself is cancelled by ctx
		}
		mu.Unlock()
		<-tok.Done()
	}
	return client, tok.Error()
}
