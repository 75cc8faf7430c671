package daemon

// The MQTT publisher: delivers the store's outbox to the broker.
//
// # Delivery
//
// A decision is recorded with its outbox row in one SQLite transaction
// before anything is sent. The publisher sends outbox rows oldest first, one
// at a time, at QoS 1, and deletes a row only after the broker's PUBACK for
// it. A row therefore leaves the outbox only once the broker holds its
// message; until then it survives broker outages, lost connections and
// crashes of the daemon (kill -9), and is sent again on the next connection.
// The one way a message reaches the broker twice is a PUBACK lost with the
// connection (or a crash between PUBACK and the delete): the row is still
// there, so it is sent again. Subscribers deduplicate by the event id, which
// is why every event has a unique one.
//
// The MQTT session is clean (CleanSession true) and paho's own reconnect
// and resend are off. paho keeps unacknowledged QoS 1 messages only in
// memory and, with a persistent session, would resend them itself after a
// reconnect; the outbox resends them too, so each outage would produce a
// duplicate, and paho's copy would go out without the age check below. With
// a clean session the broker forgets our in-flight messages, paho drops its
// copies, and the outbox is the only source of retries. Each connection is
// a fresh paho client; Run owns the reconnect loop and its backoff.
//
// # Stale unlocks
//
// An unlock is a permission to open the door now. Before each attempt to
// send one, its age is taken from the event's time: an unlock older than
// OutboxMaxAge (or dated more than OutboxMaxAge into the future, which a
// clock corrected backwards produces) is rewritten in the outbox, as one
// transaction, to go to events/expired with "expired":true and no
// signature. Relays subscribe to events/unlock only, so no relay opens for
// it; audit consumers of events/# still see it. A retry after the rewrite
// sends the rewritten row, so a stale unlock is never sent as an unlock.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/facegate/facegate/internal/mqttnet"
	"github.com/facegate/facegate/store"
)

// MQTTOptions configure a Publisher. Zero durations and empty names take
// the defaults documented on each field.
type MQTTOptions struct {
	// URL is the broker: tcp:// or mqtt:// (port 1883 by default),
	// ssl://, tls:// or mqtts:// (8883), ws:// or wss:// (with a path).
	URL      string
	ClientID string // default "facegate-<door>"
	Username string
	Password string
	TLS      *tls.Config // for ssl, tls, mqtts and wss; nil: system roots, server name from URL

	Prefix  string // topic prefix; default "facegate"
	Door    string // the door's id: one topic level, required
	Version string // facegate's version, in the status message and discovery

	// OutboxMaxAge is how old an unlock may be and still be sent as one
	// (default 30 s); older ones go to events/expired.
	OutboxMaxAge time.Duration

	Discovery       bool   // publish Home Assistant MQTT discovery configs
	DiscoveryPrefix string // default "homeassistant"

	KeepAlive      time.Duration // default 30 s
	ConnectTimeout time.Duration // dial, TLS and CONNACK; default 10 s
	MinBackoff     time.Duration // first wait before reconnecting; default 500 ms
	MaxBackoff     time.Duration // longest wait between attempts; default 30 s
}

// Defaults of MQTTOptions.
const (
	DefaultTopicPrefix     = "facegate"
	DefaultDiscoveryPrefix = "homeassistant"
	DefaultOutboxMaxAge    = 30 * time.Second
)

const (
	outboxBatch = 32
	// outboxPoll is how often the outbox is read without a Notify: a safety
	// net for rows written by another process.
	outboxPoll = 5 * time.Second
	// ackTimeout bounds the wait for one PUBACK on a connection that
	// otherwise looks alive; the connection is then dropped and remade.
	ackTimeout = 30 * time.Second
	// dbRetry is the pause after a database error before the outbox is
	// read again.
	dbRetry = time.Second
	// The shutdown budget: the offline status and an in-flight PUBACK, then
	// the DISCONNECT.
	shutdownWait    = 700 * time.Millisecond
	disconnectWait  = 250 // milliseconds, paho's unit
	unlockOffDelay  = 5   // seconds the discovery binary_sensor stays on
	statusOnline    = "online"
	statusOffline   = "offline"
	expiredTopicEnd = "/events/expired"
)

// Publisher delivers the outbox of a store to an MQTT broker. Run does the
// work; the other methods are safe to call from any goroutine, before,
// during and after Run.
type Publisher struct {
	opt          MQTTOptions
	db           *store.DB
	log          *slog.Logger
	broker       string // opt.URL with its default port, for paho
	redacted     string // for logs
	statusTopic  string
	expiredTopic string
	will         []byte

	notify    chan struct{} // capacity 1: a pending wake-up
	running   atomic.Bool
	connected atomic.Bool
	delivered atomic.Uint64
	expired   atomic.Uint64

	// gate, when set (by tests), is asked before every connection attempt,
	// which fails with its error.
	gate func() error

	// parked holds, for each outbox row tried store.OutboxTriesInOrder
	// times or more, when it may be tried again: a message the broker
	// keeps refusing (it drops the connection) is retried at a slowing
	// pace instead of remaking the connection in a loop. Only Run's
	// goroutine touches it.
	parked map[string]time.Time
}

// parkedRetry is how long a row tried tries times waits before its next
// try, once it is past store.OutboxTriesInOrder: a minute, doubling, at
// most 64 minutes.
func parkedRetry(tries int) time.Duration {
	return time.Minute << min(max(tries-store.OutboxTriesInOrder, 0), 6)
}

// NewPublisher checks the options, fills in defaults and returns a
// publisher of db's outbox. It does not connect: Run does.
func NewPublisher(opt MQTTOptions, db *store.DB, log *slog.Logger) (*Publisher, error) {
	if db == nil {
		return nil, errors.New("mqtt: no database")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := checkDoor(opt.Door); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	if opt.Prefix == "" {
		opt.Prefix = DefaultTopicPrefix
	}
	if err := checkTopicPrefix("topic prefix", opt.Prefix); err != nil {
		return nil, err
	}
	if opt.DiscoveryPrefix == "" {
		opt.DiscoveryPrefix = DefaultDiscoveryPrefix
	}
	if err := checkTopicPrefix("discovery prefix", opt.DiscoveryPrefix); err != nil {
		return nil, err
	}
	if opt.ClientID == "" {
		opt.ClientID = "facegate-" + opt.Door
	}
	if len(opt.ClientID) > 65535 || strings.ContainsRune(opt.ClientID, 0) {
		return nil, fmt.Errorf("mqtt: client id %q is not usable", opt.ClientID)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"outbox max age", &opt.OutboxMaxAge, DefaultOutboxMaxAge},
		{"keepalive", &opt.KeepAlive, 30 * time.Second},
		{"connect timeout", &opt.ConnectTimeout, 10 * time.Second},
		{"min backoff", &opt.MinBackoff, 500 * time.Millisecond},
		{"max backoff", &opt.MaxBackoff, 30 * time.Second},
	} {
		switch {
		case *d.v < 0:
			return nil, fmt.Errorf("mqtt: %s %v is negative", d.name, *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if opt.KeepAlive < time.Second {
		return nil, fmt.Errorf("mqtt: keepalive %v is less than MQTT's 1 s resolution", opt.KeepAlive)
	}
	if opt.MaxBackoff < opt.MinBackoff {
		return nil, fmt.Errorf("mqtt: max backoff %v is less than min backoff %v", opt.MaxBackoff, opt.MinBackoff)
	}
	broker, err := mqttnet.ParseURL(opt.URL)
	if err != nil {
		return nil, fmt.Errorf("mqtt: broker URL: %w", err)
	}
	p := &Publisher{
		opt:          opt,
		db:           db,
		log:          log,
		broker:       broker.String(),
		redacted:     broker.Redacted(),
		statusTopic:  StatusTopic(opt.Prefix, opt.Door),
		expiredTopic: ExpiredTopic(opt.Prefix, opt.Door),
		notify:       make(chan struct{}, 1),
	}
	p.will, err = p.status(statusOffline, time.Time{})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// checkTopicPrefix refuses a prefix that is not one or more plain topic
// levels.
func checkTopicPrefix(what, prefix string) error {
	if problem := mqttnet.TopicPrefixProblem(prefix); problem != "" {
		return fmt.Errorf("mqtt: %s: %s", what, problem)
	}
	return nil
}

// Notify says that a new outbox row exists, so that Run delivers it now. It
// never blocks.
func (p *Publisher) Notify() {
	select {
	case p.notify <- struct{}{}:
	default: // a wake-up is already pending; it will read every row
	}
}

// Connected reports whether the publisher holds a connection to the broker.
func (p *Publisher) Connected() bool { return p.connected.Load() }

// Delivered is the number of messages the broker has acknowledged since the
// publisher was made.
func (p *Publisher) Delivered() uint64 { return p.delivered.Load() }

// Expired is the number of unlocks rerouted to events/expired since the
// publisher was made.
func (p *Publisher) Expired() uint64 { return p.expired.Load() }

// Run connects to the broker and delivers the outbox until ctx is done,
// reconnecting with exponential backoff (with jitter, between MinBackoff and
// MaxBackoff) whenever the connection fails or is lost; it never gives up
// while ctx lives. Once connected it publishes the retained status
// "online" (its Last Will, set at every connect, is the retained status
// "offline") and the discovery configs, then delivers the outbox. When ctx is
// done it publishes the retained status "offline" and disconnects, within
// about a second, and returns nil. Run may be called once.
func (p *Publisher) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("mqtt: Publisher.Run called twice")
	}
	// Events the broker acknowledged whose outbox row could not be
	// deleted: the delete is retried instead of the publish.
	acked := make(map[string]bool)
	backoff := p.opt.MinBackoff
	for attempt := 1; ; attempt++ {
		established, err := p.session(ctx, acked)
		if ctx.Err() != nil {
			return nil
		}
		if established {
			backoff, attempt = p.opt.MinBackoff, 1
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		p.log.Warn("mqtt connection failed or ended; reconnecting", "broker", p.redacted, "err", err, "attempt", attempt, "retry_in", wait.Round(time.Millisecond))
		backoff = min(2*backoff, p.opt.MaxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// errConnectionLost ends a session whose connection paho reported lost.
var errConnectionLost = errors.New("connection lost")

// conn is one connection: a paho client and what ends it.
type conn struct {
	client mqtt.Client
	lost   <-chan struct{} // closed when paho reports the connection lost
	cause  func() error    // why, once lost is closed
}

// session makes one connection and serves it until ctx is done (then shuts
// it down cleanly and returns nil) or it fails. established reports whether
// the broker accepted the connection and the announcement.
func (p *Publisher) session(ctx context.Context, acked map[string]bool) (established bool, err error) {
	lost := make(chan struct{})
	var lostOnce sync.Once
	var lostErr error

	o := mqtt.NewClientOptions().
		AddBroker(p.broker).
		SetClientID(p.opt.ClientID).
		SetUsername(p.opt.Username).
		SetPassword(p.opt.Password).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(p.opt.KeepAlive).
		SetPingTimeout(min(p.opt.KeepAlive, 10*time.Second)).
		SetConnectTimeout(p.opt.ConnectTimeout).
		SetWriteTimeout(ackTimeout).
		SetBinaryWill(p.statusTopic, p.will, 1, true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			lostOnce.Do(func() {
				lostErr = err
				close(lost)
			})
		})
	client, err := mqttnet.Connect(ctx, o, p.dial)
	if err != nil {
		return false, fmt.Errorf("connect to %s: %w", p.redacted, err)
	}
	c := &conn{
		client: client,
		lost:   lost,
		cause: func() error {
			if lostErr == nil {
				return errConnectionLost
			}
			return fmt.Errorf("%w: %w", errConnectionLost, lostErr)
		},
	}
	if ctx.Err() != nil {
		// Connected just as ctx ended (or the close above came too late):
		// shut down cleanly all the same.
		p.shutdown(ctx, c, nil)
		return true, nil
	}

	p.connected.Store(true)
	defer p.connected.Store(false)
	p.log.Info("mqtt connected", "broker", p.redacted, "client_id", p.opt.ClientID)

	inflight, announced, err := p.serve(ctx, c, acked)
	if ctx.Err() != nil {
		p.shutdown(ctx, c, inflight)
		return true, nil
	}
	// The connection was lost or failed: forget it. Disconnect returns at
	// once if paho already knows it is gone.
	c.client.Disconnect(0)
	// A broker that accepts the connection but not our messages gets the
	// growing backoff, like one that refuses it.
	return announced, err
}

// dial opens the network connection for paho, honouring ctx.
func (p *Publisher) dial(ctx context.Context, u *url.URL) (net.Conn, error) {
	if p.gate != nil {
		if err := p.gate(); err != nil {
			return nil, err
		}
	}
	return mqttnet.Dial(ctx, u, p.opt.TLS, p.opt.ConnectTimeout)
}

// inflight is a message sent but not yet acknowledged when ctx ended.
type inflight struct {
	event string
	tok   mqtt.Token
}

// serve announces the publisher and delivers the outbox until ctx is done
// (returning the message then in flight, if any) or the connection fails.
// announced reports whether the announcement was acknowledged.
func (p *Publisher) serve(ctx context.Context, c *conn, acked map[string]bool) (fl *inflight, announced bool, err error) {
	if err := p.announce(ctx, c); err != nil {
		return nil, false, err
	}
	fl, err = p.deliver(ctx, c, acked)
	return fl, true, err
}

// deliver delivers the outbox, and again at every Notify, until ctx is done
// (returning the message then in flight, if any) or the connection fails.
func (p *Publisher) deliver(ctx context.Context, c *conn, acked map[string]bool) (*inflight, error) {
	poll := time.NewTicker(outboxPoll)
	defer poll.Stop()
	for {
		more, fl, err := p.deliverBatch(ctx, c, acked)
		if fl != nil || ctx.Err() != nil {
			return fl, nil
		}
		if errors.Is(err, errConnectionLost) || errors.Is(err, errPublish) {
			return nil, err
		}
		if err != nil {
			// A database error: the connection is fine, the disk may not be.
			p.log.Error("reading the outbox failed; retrying", "err", err, "retry_in", dbRetry)
			if err := p.pause(ctx, c, dbRetry); err != nil || ctx.Err() != nil {
				return nil, err
			}
			continue
		}
		if more {
			continue
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-c.lost:
			return nil, c.cause()
		case <-p.notify:
		case <-poll.C:
		}
	}
}

// errPublish marks a publish the broker did not acknowledge in time or that
// paho failed; the connection is remade.
var errPublish = errors.New("publish failed")

// deliverBatch sends up to outboxBatch rows, oldest first. more reports a
// full batch (there may be more rows).
func (p *Publisher) deliverBatch(ctx context.Context, c *conn, acked map[string]bool) (more bool, fl *inflight, err error) {
	entries, err := p.db.PendingOutbox(ctx, outboxBatch)
	if err != nil {
		return false, nil, err
	}
	sent := 0
	for _, e := range entries {
		if acked[e.Event] {
			if err := p.db.Delivered(ctx, e.Event); err != nil {
				return false, nil, err
			}
			delete(acked, e.Event)
			delete(p.parked, e.Event)
			continue
		}
		if e.Attempts >= store.OutboxTriesInOrder {
			now := time.Now()
			if next, ok := p.parked[e.Event]; ok && now.Before(next) {
				continue
			}
			if p.parked == nil {
				p.parked = make(map[string]time.Time)
			}
			wait := parkedRetry(e.Attempts)
			p.parked[e.Event] = now.Add(wait)
			p.log.Warn("an event the broker did not take in several tries is tried again behind the others", "event", e.Event,
				"tries", e.Attempts, "next_try_in", wait)
		}
		sent++
		topic, payload := e.Topic, e.Payload
		if p.stale(e, time.Now()) {
			if topic, payload, err = p.expire(ctx, e); err != nil {
				return false, nil, err
			}
		}
		if err := p.db.Attempted(ctx, e.Event); errors.Is(err, store.ErrNotFound) {
			continue // gone meanwhile (another publisher on the same file?)
		} else if err != nil {
			return false, nil, err
		}
		tok := c.client.Publish(topic, 1, false, payload)
		if err := p.await(ctx, c, tok, ackTimeout); err != nil {
			if ctx.Err() != nil {
				return false, &inflight{e.Event, tok}, nil
			}
			return false, nil, fmt.Errorf("event %s: %w", e.Event, err)
		}
		if err := p.db.Delivered(ctx, e.Event); err != nil {
			acked[e.Event] = true
			p.log.Error("the broker has the event but its outbox row stays; retrying the delete", "event", e.Event, "err", err)
		}
		delete(p.parked, e.Event)
		p.delivered.Add(1)
		p.log.Debug("event delivered", "event", e.Event, "topic", topic)
	}
	// A full batch of parked rows that are not due is not a reason to read
	// again at once.
	return len(entries) == outboxBatch && sent > 0, nil, nil
}

// stale reports whether e is an unlock that must no longer go out as one:
// older than OutboxMaxAge by its event time, or dated further than that into
// the future.
func (p *Publisher) stale(e store.OutboxEntry, now time.Time) bool {
	if e.Kind != KindUnlock || strings.HasSuffix(e.Topic, expiredTopicEnd) {
		return false
	}
	age := now.Sub(e.Time)
	return age > p.opt.OutboxMaxAge || age < -p.opt.OutboxMaxAge
}

// expire rewrites a stale unlock's row to go to events/expired marked
// expired, and returns the new topic and payload.
func (p *Publisher) expire(ctx context.Context, e store.OutboxEntry) (string, []byte, error) {
	ev, err := ParseEvent(e.Payload)
	if err != nil {
		// Not ours to read, yet an unlock: send what can be said of it.
		p.log.Error("stale unlock in the outbox has an unreadable payload; sending a minimal expired event", "event", e.Event, "err", err)
		ev = Event{ID: e.Event, Door: p.opt.Door, Time: e.Time.UTC().Truncate(time.Millisecond), Kind: KindUnlock, Reason: "unreadable"}
	}
	ev = ev.Expire()
	payload, err := ev.Payload()
	if err != nil {
		return "", nil, fmt.Errorf("expire event %s: %w", e.Event, err)
	}
	if err := p.db.Reroute(ctx, e.Event, p.expiredTopic, payload); err != nil {
		return "", nil, err
	}
	p.expired.Add(1)
	p.log.Warn("unlock aged out before delivery; sent as expired", "event", e.Event, "time", e.Time, "max_age", p.opt.OutboxMaxAge)
	return p.expiredTopic, payload, nil
}

// await waits for tok: nil once the broker acknowledged it; an error if
// paho failed it, the connection was lost, ctx ended or timeout passed.
// An acknowledgement that arrived counts even if the connection was lost
// or ctx ended at the same time.
func (p *Publisher) await(ctx context.Context, c *conn, tok mqtt.Token, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
	case <-c.lost:
	case <-ctx.Done():
	case <-t.C:
	}
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("%w: %w", errPublish, err)
		}
		return nil
	default:
	}
	select {
	case <-c.lost:
		return c.cause()
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("%w: no PUBACK within %v", errPublish, timeout)
}

// pause waits d unless ctx ends or the connection is lost.
func (p *Publisher) pause(ctx context.Context, c *conn, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil
	case <-c.lost:
		return c.cause()
	case <-t.C:
		return nil
	}
}

// announce publishes the retained status "online" and, if enabled, the
// discovery configs, and waits for the broker to acknowledge them.
func (p *Publisher) announce(ctx context.Context, c *conn) error {
	online, err := p.status(statusOnline, time.Now())
	if err != nil {
		return err
	}
	msgs := []retained{{p.statusTopic, online}}
	if p.opt.Discovery {
		d, err := p.discovery()
		if err != nil {
			return err
		}
		msgs = append(msgs, d...)
	}
	for _, m := range msgs {
		tok := c.client.Publish(m.topic, 1, true, m.payload)
		if err := p.await(ctx, c, tok, ackTimeout); err != nil {
			return fmt.Errorf("announce on %s: %w", m.topic, err)
		}
	}
	return nil
}

// shutdown ends a connection cleanly once ctx is done: the retained status
// "offline", the row of a message whose PUBACK arrived meanwhile deleted,
// then DISCONNECT (which tells the broker to drop the Last Will). It takes
// about a second at most.
func (p *Publisher) shutdown(ctx context.Context, c *conn, fl *inflight) {
	defer c.client.Disconnect(disconnectWait)
	// ctx is done; the last writes get a context of their own.
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownWait)
	defer cancel()
	offline, err := p.status(statusOffline, time.Now())
	if err == nil {
		// The broker acknowledges in order, so once this is acknowledged
		// any earlier PUBACK has arrived too.
		err = p.await(bg, c, c.client.Publish(p.statusTopic, 1, true, offline), shutdownWait)
	}
	if err != nil {
		p.log.Warn("mqtt: publishing the offline status failed", "err", err)
	}
	if fl == nil {
		return
	}
	select {
	case <-fl.tok.Done():
		if fl.tok.Error() != nil {
			return
		}
		p.delivered.Add(1)
		if err := p.db.Delivered(bg, fl.event); err != nil {
			p.log.Error("the broker has the event but its outbox row stays; it is sent again at the next start", "event", fl.event, "err", err)
		}
	default:
	}
}

// status is the status message: {"since":...,"state":...,"version":...},
// without since when since is zero (the Last Will, whose time is unknown when
// it is set).
func (p *Publisher) status(state string, since time.Time) ([]byte, error) {
	m := map[string]string{"state": state, "version": p.opt.Version}
	if !since.IsZero() {
		m["since"] = since.UTC().Format(time.RFC3339)
	}
	return marshalCompact(m)
}

// retained is a retained message.
type retained struct {
	topic   string
	payload []byte
}

// discovery is the Home Assistant MQTT discovery configs: a binary_sensor
// (device class lock: on means unlocked) that turns on for unlockOffDelay
// seconds at each unlock, and a sensor holding the last decision (unlock,
// deny or expired) with the decision's fields as attributes. Both are
// available while the status says "online".
func (p *Publisher) discovery() ([]retained, error) {
	// Home Assistant allows [a-zA-Z0-9_-] in a node id.
	node := "facegate_" + strings.Map(func(r rune) rune {
		if r < 128 && (r == '_' || r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return r
		}
		return '_'
	}, p.opt.Door)
	availability := []map[string]string{{
		"topic":                 p.statusTopic,
		"value_template":        "{{ value_json.state }}",
		"payload_available":     statusOnline,
		"payload_not_available": statusOffline,
	}}
	device := map[string]any{
		"identifiers":  []string{node},
		"name":         "facegate " + p.opt.Door,
		"manufacturer": "facegate",
		"model":        "facegate door",
	}
	if p.opt.Version != "" {
		device["sw_version"] = p.opt.Version
	}
	events := p.opt.Prefix + "/" + p.opt.Door + "/events/"
	configs := []struct {
		component, object string
		config            map[string]any
	}{
		{"binary_sensor", "unlock", map[string]any{
			"name":           "Unlock",
			"unique_id":      node + "_unlock",
			"device_class":   "lock",
			"state_topic":    events + KindUnlock,
			"value_template": "{{ 'ON' if value_json.kind == 'unlock' and not value_json.expired else 'OFF' }}",
			"payload_on":     "ON",
			"payload_off":    "OFF",
			"off_delay":      unlockOffDelay,
			"qos":            1,
			"availability":   availability,
			"device":         device,
		}},
		{"sensor", "last_decision", map[string]any{
			"name":                  "Last decision",
			"unique_id":             node + "_last_decision",
			"icon":                  "mdi:door",
			"state_topic":           events + "+",
			"value_template":        "{{ 'expired' if value_json.expired else value_json.kind }}",
			"json_attributes_topic": events + "+",
			"qos":                   1,
			"availability":          availability,
			"device":                device,
		}},
	}
	var msgs []retained
	for _, c := range configs {
		b, err := marshalCompact(c.config)
		if err != nil {
			return nil, err
		}
		topic := p.opt.DiscoveryPrefix + "/" + c.component + "/" + node + "/" + c.object + "/config"
		msgs = append(msgs, retained{topic, b})
	}
	return msgs, nil
}

// marshalCompact is JSON without HTML escaping ("<" stays "<") or a
// trailing newline.
func marshalCompact(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
