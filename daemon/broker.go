package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// embeddedAddr is where the embedded broker listens when no broker is
// configured: loopback only, so nothing off the controller can publish.
const embeddedAddr = "127.0.0.1:1883"

// startBroker starts the embedded broker when url is empty (for a demo or a
// single box with its relay on it) and returns the URL to connect to.
func startBroker(u string, log *slog.Logger) (*mochi.Server, string, error) {
	if u != "" {
		return nil, u, nil
	}
	s := mochi.New(&mochi.Options{Logger: log.With("part", "broker")})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, "", fmt.Errorf("embedded broker: %w", err)
	}
	// Fail at start, with a clear line, when the port is taken.
	l, err := net.Listen("tcp", embeddedAddr)
	if err != nil {
		return nil, "", fmt.Errorf("embedded broker on %s: %w (set mqtt.url to use another broker)", embeddedAddr, err)
	}
	l.Close()
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "loopback", Address: embeddedAddr})); err != nil {
		return nil, "", fmt.Errorf("embedded broker on %s: %w", embeddedAddr, err)
	}
	go s.Serve() // Serve starts the listeners and returns; Close stops them
	log.Info("embedded MQTT broker started", "addr", embeddedAddr)
	return s, "tcp://" + embeddedAddr, nil
}

// mqttOptions turns the configuration into the publisher's options,
// reading the password and TLS files now so a bad path fails at start.
func mqttOptions(cfg Config, u, version string) (MQTTOptions, error) {
	m := cfg.MQTT
	opt := MQTTOptions{
		URL: u, ClientID: m.ClientID, Username: m.Username, Prefix: m.TopicPrefix, Door: cfg.Door,
		Version: version, OutboxMaxAge: m.OutboxMaxAge, Discovery: m.Discovery, DiscoveryPrefix: m.DiscoveryPrefix,
		KeepAlive: m.Keepalive, ConnectTimeout: m.ConnectTimeout, MinBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second,
	}
	if m.PasswordFile != "" {
		b, err := os.ReadFile(m.PasswordFile)
		if err != nil {
			return opt, fmt.Errorf("mqtt.password_file: %w", err)
		}
		opt.Password = strings.TrimRight(string(b), "\r\n")
	}
	if m.CA != "" || m.Cert != "" {
		t := &tls.Config{MinVersion: tls.VersionTLS12}
		if m.CA != "" {
			pem, err := os.ReadFile(m.CA)
			if err != nil {
				return opt, fmt.Errorf("mqtt.ca: %w", err)
			}
			t.RootCAs = x509.NewCertPool()
			if !t.RootCAs.AppendCertsFromPEM(pem) {
				return opt, fmt.Errorf("mqtt.ca %s: no PEM certificate in it", m.CA)
			}
		}
		if m.Cert != "" {
			c, err := tls.LoadX509KeyPair(m.Cert, m.Key)
			if err != nil {
				return opt, fmt.Errorf("mqtt.cert %s, mqtt.key %s: %w", m.Cert, m.Key, err)
			}
			t.Certificates = []tls.Certificate{c}
		}
		opt.TLS = t
	}
	return opt, nil
}
