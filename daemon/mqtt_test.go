package daemon

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/facegate/facegate/store"
)

// hangGuard bounds every wait in these tests. It is not a performance
// assertion: a correct run passes with any scheduling, and only a hang
// reaches it.
const hangGuard = 90 * time.Second

const mosquittoPath = "/usr/sbin/mosquitto"

// testBroker is a mosquitto on a loopback port of its own, which can be
// stopped and started again on the same port.
type testBroker struct {
	t    *testing.T
	dir  string
	port int
	log  *os.File
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// newBroker prepares a broker; start starts it. extra lines are added to
// its configuration.
func newBroker(t *testing.T, extra ...string) *testBroker {
	t.Helper()
	if _, err := os.Stat(mosquittoPath); err != nil {
		t.Skipf("no mosquitto: %v", err)
	}
	b := &testBroker{t: t, dir: t.TempDir(), port: freePort(t)}
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n", b.port)
	for _, l := range extra {
		conf += l + "\n"
	}
	if err := os.WriteFile(filepath.Join(b.dir, "mosquitto.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var err error
	if b.log, err = os.Create(filepath.Join(b.dir, "mosquitto.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.stop()
		b.log.Close()
		if t.Failed() {
			if log, err := os.ReadFile(b.log.Name()); err == nil {
				t.Logf("mosquitto log:\n%s", log)
			}
		}
	})
	return b
}

func (b *testBroker) url() string { return fmt.Sprintf("tcp://127.0.0.1:%d", b.port) }

// start starts mosquitto and waits until it accepts connections.
func (b *testBroker) start() {
	b.t.Helper()
	if b.cmd != nil {
		b.t.Fatal("broker already running")
	}
	cmd := exec.Command(mosquittoPath, "-c", filepath.Join(b.dir, "mosquitto.conf"))
	cmd.Stdout, cmd.Stderr = b.log, b.log
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	b.cmd, b.done = cmd, done
	guard := time.Now().Add(hangGuard)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", b.port))
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			b.cmd = nil
			b.t.Fatalf("mosquitto exited at start: %v", cmd.ProcessState)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(guard) {
			b.t.Fatal("mosquitto does not listen")
		}
	}
}

// stop stops mosquitto with SIGTERM and waits for it to exit.
func (b *testBroker) stop() {
	if b.cmd == nil {
		return
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(hangGuard):
		b.cmd.Process.Kill()
		<-b.done
		b.t.Error("mosquitto ignored SIGTERM")
	}
	b.cmd = nil
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

// testMsg is a message a testSub received.
type testMsg struct {
	topic    string
	payload  []byte
	retained bool
	// For events: the id, or why the payload does not parse.
	id       string
	parseErr error
}

func (m testMsg) String() string {
	return fmt.Sprintf("%s %s (retained %v)", m.topic, m.payload, m.retained)
}

// testSub is an MQTT subscriber that reconnects and subscribes again after
// a broker restart (the broker keeps no sessions), recording every message.
type testSub struct {
	client     mqtt.Client
	mu         sync.Mutex
	msgs       []testMsg
	subscribed int // connections on which the subscription was acknowledged
	changed    chan struct{}
}

func newSub(t *testing.T, url string, filters ...string) *testSub {
	t.Helper()
	s := &testSub{changed: make(chan struct{}, 1)}
	want := make(map[string]byte)
	for _, f := range filters {
		want[f] = 1
	}
	o := mqtt.NewClientOptions().
		AddBroker(url).
		SetClientID("test-sub-" + rand.Text()).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(20 * time.Millisecond).
		SetMaxReconnectInterval(50 * time.Millisecond).
		SetOnConnectHandler(func(c mqtt.Client) {
			tok := c.SubscribeMultiple(want, func(_ mqtt.Client, m mqtt.Message) {
				msg := testMsg{topic: m.Topic(), payload: m.Payload(), retained: m.Retained()}
				if strings.Contains(msg.topic, "/events/") {
					e, err := ParseEvent(msg.payload)
					msg.id, msg.parseErr = e.ID, err
				}
				s.mu.Lock()
				s.msgs = append(s.msgs, msg)
				s.mu.Unlock()
				s.signal()
			})
			if tok.Wait() && tok.Error() == nil {
				s.mu.Lock()
				s.subscribed++
				s.mu.Unlock()
				s.signal()
			}
		})
	s.client = mqtt.NewClient(o)
	s.client.Connect()
	t.Cleanup(func() { s.client.Disconnect(100) })
	s.waitSubscribed(t, 1)
	return s
}

func (s *testSub) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds for the messages received so far.
func (s *testSub) waitFor(t *testing.T, what string, cond func([]testMsg) bool) []testMsg {
	t.Helper()
	guard := time.NewTimer(hangGuard)
	defer guard.Stop()
	for {
		s.mu.Lock()
		msgs := append([]testMsg(nil), s.msgs...)
		s.mu.Unlock()
		if cond(msgs) {
			return msgs
		}
		select {
		case <-s.changed:
		case <-guard.C:
			t.Fatalf("hang guard: still waiting for %s; received %d messages", what, len(msgs))
		}
	}
}

// waitSubscribed waits until the subscription holds on the n-th connection.
func (s *testSub) waitSubscribed(t *testing.T, n int) {
	t.Helper()
	guard := time.NewTimer(hangGuard)
	defer guard.Stop()
	for {
		s.mu.Lock()
		ok := s.subscribed >= n
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.changed:
		case <-guard.C:
			t.Fatalf("hang guard: subscriber not subscribed on connection %d", n)
		}
	}
}

func (s *testSub) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subscribed
}

// sync publishes a message to the subscriber's own sentinel topic (which it
// must subscribe) and waits for it: every retained message the broker sent
// at subscription time has arrived by then.
func (s *testSub) sync(t *testing.T, topic string) {
	t.Helper()
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)
	if tok := s.client.Publish(topic, 1, false, nonce); !tok.WaitTimeout(hangGuard) || tok.Error() != nil {
		t.Fatalf("sentinel publish: %v", tok.Error())
	}
	s.waitFor(t, "the sentinel", func(msgs []testMsg) bool {
		for _, m := range msgs {
			if m.topic == topic && string(m.payload) == nonce {
				return true
			}
		}
		return false
	})
}

// byTopic returns the messages on topic.
func byTopic(msgs []testMsg, topic string) []testMsg {
	var out []testMsg
	for _, m := range msgs {
		if m.topic == topic {
			out = append(out, m)
		}
	}
	return out
}

// eventIDs counts the event ids of the messages on topics under prefix
// ending in /events/<kind>, by topic.
func eventIDs(t *testing.T, msgs []testMsg) map[string]map[string]int {
	t.Helper()
	out := make(map[string]map[string]int)
	for _, m := range msgs {
		if !strings.Contains(m.topic, "/events/") {
			continue
		}
		if m.parseErr != nil {
			t.Fatalf("message on %s does not parse: %v: %s", m.topic, m.parseErr, m.payload)
		}
		if out[m.topic] == nil {
			out[m.topic] = make(map[string]int)
		}
		out[m.topic][m.id]++
	}
	return out
}

// eventually polls cond until it holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	guard := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(guard) {
			t.Fatalf("hang guard: still waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testGate lets a test hold the publisher off the broker.
type testGate struct{ open atomic.Bool }

func (g *testGate) check() error {
	if g.open.Load() {
		return nil
	}
	return errors.New("test gate closed")
}

func testOptions(url string) MQTTOptions {
	return MQTTOptions{
		URL:            url,
		Door:           "front",
		Version:        "1.2.3-test",
		OutboxMaxAge:   10 * time.Minute, // a slow test machine must not age the test's unlocks
		KeepAlive:      5 * time.Second,
		ConnectTimeout: 10 * time.Second,
		MinBackoff:     5 * time.Millisecond,
		MaxBackoff:     50 * time.Millisecond,
	}
}

func openTestDB(t *testing.T, path string) *store.DB {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "facegate.db")
	}
	db, err := store.Open(context.Background(), path, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// testWriter writes to the test's log and counts the lines holding count.
type testWriter struct {
	t     *testing.T
	count string
	n     *atomic.Int64
}

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s", strings.TrimSuffix(string(b), "\n"))
	if w.n != nil && strings.Contains(string(b), w.count) {
		w.n.Add(1)
	}
	return len(b), nil
}

// runningPub is a Publisher whose Run the test started.
type runningPub struct {
	*Publisher
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// startPub runs a publisher of db; gate, if not nil, holds it off the
// broker while closed.
func startPub(t *testing.T, opt MQTTOptions, db *store.DB, gate *testGate) *runningPub {
	t.Helper()
	return startPubLog(t, opt, db, gate, testLogger(t))
}

func startPubLog(t *testing.T, opt MQTTOptions, db *store.DB, gate *testGate, log *slog.Logger) *runningPub {
	t.Helper()
	p, err := NewPublisher(opt, db, log)
	if err != nil {
		t.Fatal(err)
	}
	if gate != nil {
		p.gate = gate.check
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningPub{Publisher: p, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	// Return only once Run owns the publisher, so a test's own call to Run
	// cannot win the race to start it (on a loaded machine it did, and then
	// ran forever on a context nobody cancels).
	for !p.running.Load() {
		time.Sleep(time.Millisecond)
	}
	return r
}

// stop cancels Run and waits for it to return.
func (r *runningPub) stop(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(hangGuard):
			t.Fatal("hang guard: Run did not return after cancel")
		}
	})
}

func unlockDecision(at time.Time) Decision {
	return Decision{Kind: KindUnlock, PersonID: "alice", PersonName: "Alice", Score: 0.81, Margin: 0.3, Liveness: 0.97, Frames: 3, At: at}
}

func denyDecision(at time.Time) Decision {
	return Decision{Kind: KindDeny, Reason: ReasonUnknown, Score: 0.1, Margin: 0.01, Liveness: 0.9, Frames: 3, At: at}
}

// record records a decision as the daemon does and notifies p (if any).
func record(t *testing.T, db *store.DB, p *Publisher, d Decision) Event {
	t.Helper()
	e := NewEvent("front", d, time.Now())
	s, err := e.StoreEvent()
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RecordDecision(context.Background(), s, e.Topic(DefaultTopicPrefix)); err != nil {
		t.Fatal(err)
	}
	if p != nil {
		p.Notify()
	}
	return e
}

func depth(t *testing.T, db *store.DB) int {
	t.Helper()
	n, err := db.OutboxDepth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

const (
	unlockTopic  = "facegate/front/events/unlock"
	denyTopic    = "facegate/front/events/deny"
	expiredTopic = "facegate/front/events/expired"
	statusTopic  = "facegate/front/status"
)

func TestPublishDecision(t *testing.T) {
	b := newBroker(t)
	b.start()
	sub := newSub(t, b.url(), "facegate/#")
	db := openTestDB(t, "")
	p := startPub(t, testOptions(b.url()), db, nil)

	unlock := record(t, db, p.Publisher, unlockDecision(time.Now()))
	deny := record(t, db, p.Publisher, denyDecision(time.Now()))
	msgs := sub.waitFor(t, "both events", func(msgs []testMsg) bool {
		return len(byTopic(msgs, unlockTopic)) > 0 && len(byTopic(msgs, denyTopic)) > 0
	})
	for _, tc := range []struct {
		e     Event
		topic string
	}{{unlock, unlockTopic}, {deny, denyTopic}} {
		got := byTopic(msgs, tc.topic)
		want, err := tc.e.Payload()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || string(got[0].payload) != string(want) || got[0].retained {
			t.Errorf("on %s got %+v, want one non-retained %s", tc.topic, got, want)
		}
	}
	eventually(t, "an empty outbox", func() bool { return depth(t, db) == 0 })
	eventually(t, "the delivered counter", func() bool { return p.Delivered() == 2 })
	if !p.Connected() {
		t.Error("Connected() is false while connected")
	}
}

// TestPublishBrokerOutage records decisions while the broker is down: they
// wait in the outbox and each arrives exactly once after it is back.
func TestPublishBrokerOutage(t *testing.T) {
	b := newBroker(t)
	b.start()
	sub := newSub(t, b.url(), "facegate/front/events/#")
	db := openTestDB(t, "")
	gate := &testGate{}
	gate.open.Store(true)
	p := startPub(t, testOptions(b.url()), db, gate)

	first := record(t, db, p.Publisher, unlockDecision(time.Now()))
	sub.waitFor(t, "the first event", func(msgs []testMsg) bool { return eventIDs(t, msgs)[unlockTopic][first.ID] == 1 })

	// The gate keeps the publisher off the restarted broker until the
	// subscriber is back: the broker keeps no sessions, so messages
	// published before it subscribes again would reach nobody.
	gate.open.Store(false)
	b.stop()
	eventually(t, "the publisher to see the broker gone", func() bool { return !p.Connected() })
	var want []Event
	for i := range 5 {
		d := unlockDecision(time.Now())
		if i%2 == 1 {
			d = denyDecision(time.Now())
		}
		want = append(want, record(t, db, p.Publisher, d))
	}
	if n := depth(t, db); n != 5 {
		t.Fatalf("outbox depth %d while the broker is down, want 5", n)
	}

	b.start()
	sub.waitSubscribed(t, 2)
	gate.open.Store(true)
	msgs := sub.waitFor(t, "the five events", func(msgs []testMsg) bool {
		ids := eventIDs(t, msgs)
		for _, e := range want {
			if ids[e.Topic(DefaultTopicPrefix)][e.ID] == 0 {
				return false
			}
		}
		return true
	})
	eventually(t, "an empty outbox", func() bool { return depth(t, db) == 0 })
	// Anything sent twice would have been sent before this one.
	last := record(t, db, p.Publisher, denyDecision(time.Now()))
	msgs = sub.waitFor(t, "the last event", func(msgs []testMsg) bool { return eventIDs(t, msgs)[denyTopic][last.ID] > 0 })

	ids := eventIDs(t, msgs)
	for _, e := range append(want, first, last) {
		if n := ids[e.Topic(DefaultTopicPrefix)][e.ID]; n != 1 {
			t.Errorf("event %s (%s) arrived %d times, want once", e.ID, e.Kind, n)
		}
	}
	total := 0
	for _, m := range ids {
		for _, n := range m {
			total += n
		}
	}
	if total != 7 {
		t.Errorf("%d event messages, want 7", total)
	}
	eventually(t, "an empty outbox", func() bool { return depth(t, db) == 0 })
}

// TestPublishPoisonRowDoesNotBlock has the broker refuse one outbox row
// for good (a packet over its max_packet_size: mosquitto drops the
// connection): after store.OutboxTriesInOrder tries it goes behind the
// rest, and the decisions written after it are delivered; it stays in
// the outbox, not lost.
func TestPublishPoisonRowDoesNotBlock(t *testing.T) {
	b := newBroker(t, "max_packet_size 4096")
	b.start()
	sub := newSub(t, b.url(), "facegate/front/events/#")
	db := openTestDB(t, "")
	poison := NewEvent("front", denyDecision(time.Now()), time.Now())
	se, err := poison.StoreEvent()
	if err != nil {
		t.Fatal(err)
	}
	se.Payload = []byte(`{"padding":"` + strings.Repeat("x", 8000) + `"}`)
	if err := db.RecordDecision(context.Background(), se, poison.Topic(DefaultTopicPrefix)); err != nil {
		t.Fatal(err)
	}
	var after []Event
	for range 3 {
		after = append(after, record(t, db, nil, unlockDecision(time.Now())))
	}
	connects := new(atomic.Int64)
	p := startPubLog(t, testOptions(b.url()), db, nil,
		slog.New(slog.NewTextHandler(testWriter{t: t, count: `msg="mqtt connected"`, n: connects}, &slog.HandlerOptions{Level: slog.LevelInfo})))
	sub.waitFor(t, "the events written after the refused one", func(msgs []testMsg) bool {
		ids := eventIDs(t, msgs)
		for _, e := range after {
			if ids[unlockTopic][e.ID] == 0 {
				return false
			}
		}
		return true
	})
	// The subscriber may see the last event before its PUBACK deletes its row.
	eventually(t, "the others' outbox rows deleted", func() bool { return depth(t, db) == 1 })
	pending, err := db.PendingOutbox(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].Event != poison.ID || pending[0].Attempts < store.OutboxTriesInOrder {
		for _, e := range pending {
			t.Errorf("in the outbox: event %s, tried %d times", e.Event, e.Attempts)
		}
		t.Errorf("want only the refused event %s, tried at least %d times", poison.ID, store.OutboxTriesInOrder)
	}
	// Parked for a minute now: no more reconnecting for it. (With 5 ms
	// backoffs, retrying it at once would connect about a hundred times.)
	before := connects.Load()
	time.Sleep(time.Second)
	if n := connects.Load() - before; n > 1 {
		t.Errorf("%d connections in the second after the other events went out: the refused event is retried in a loop", n)
	}
	if pending, _ := db.PendingOutbox(context.Background(), 10); len(pending) != 1 || pending[0].Attempts > store.OutboxTriesInOrder+1 {
		t.Errorf("%d rows in the outbox, the first tried %d times: the refused event was tried again at once", len(pending), pending[0].Attempts)
	}
	p.stop(t)
}

// TestPublishConnectionCutMidStream cuts the publisher's connection while
// a backlog is being delivered (the broker and the subscriber stay up):
// every event arrives, at most one twice (a PUBACK lost with the
// connection), and the outbox empties.
func TestPublishConnectionCutMidStream(t *testing.T) {
	b := newBroker(t)
	b.start()
	sub := newSub(t, b.url(), "facegate/front/events/#")
	proxy := newProxy(t, fmt.Sprintf("127.0.0.1:%d", b.port))
	db := openTestDB(t, "")
	const n = 500
	var want []Event
	for range n {
		want = append(want, record(t, db, nil, denyDecision(time.Now())))
	}
	p := startPub(t, testOptions(proxy.url()), db, nil)
	sub.waitFor(t, "the backlog to start", func(msgs []testMsg) bool { return len(msgs) >= 20 })
	proxy.cut()
	eventually(t, "the publisher to see the cut", func() bool { return !p.Connected() })
	left := depth(t, db)
	t.Logf("connection cut with %d of %d events in the outbox", left, n)
	if left == 0 {
		t.Fatal("the backlog was delivered before the cut: nothing was tested")
	}
	proxy.open.Store(true)
	eventually(t, "an empty outbox", func() bool { return depth(t, db) == 0 })
	// Everything the publisher sent was sent before this one.
	last := record(t, db, p.Publisher, unlockDecision(time.Now()))
	msgs := sub.waitFor(t, "the last event", func(msgs []testMsg) bool { return eventIDs(t, msgs)[unlockTopic][last.ID] > 0 })
	ids := eventIDs(t, msgs)[denyTopic]
	lost, dups := 0, 0
	for _, e := range want {
		switch c := ids[e.ID]; {
		case c == 0:
			lost++
		case c > 1:
			dups += c - 1
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d events never arrived", lost, n)
	}
	// One message is in flight at a time, so one cut loses at most one
	// PUBACK.
	if dups > 1 {
		t.Errorf("%d duplicates after one cut, want at most 1", dups)
	}
	t.Logf("%d duplicates, %d messages acknowledged", dups, p.Delivered())
}

// TestPublishBrokerRestartMidStream stops the broker (SIGTERM) while a
// backlog is being delivered: the publisher resumes from the outbox, which
// empties, with at most one duplicate. The broker (persistence false) may
// drop messages it had acknowledged but not yet passed on to the
// subscriber when it stopped: QoS 1 is hop by hop, and that loss is the
// broker's, so it is reported, not failed.
func TestPublishBrokerRestartMidStream(t *testing.T) {
	b := newBroker(t)
	b.start()
	sub := newSub(t, b.url(), "facegate/front/events/#")
	db := openTestDB(t, "")
	gate := &testGate{}
	const n = 500
	var want []Event
	for range n {
		want = append(want, record(t, db, nil, denyDecision(time.Now())))
	}
	p := startPub(t, testOptions(b.url()), db, gate)
	gate.open.Store(true)
	sub.waitFor(t, "the backlog to start", func(msgs []testMsg) bool { return len(msgs) >= 20 })
	gate.open.Store(false)
	b.stop()
	left := depth(t, db)
	t.Logf("broker stopped with %d of %d events in the outbox", left, n)
	if left == 0 {
		t.Fatal("the backlog was delivered before the broker stopped: nothing was tested")
	}
	b.start()
	sub.waitSubscribed(t, 2)
	gate.open.Store(true)
	eventually(t, "an empty outbox", func() bool { return depth(t, db) == 0 })
	last := record(t, db, p.Publisher, unlockDecision(time.Now()))
	msgs := sub.waitFor(t, "the last event", func(msgs []testMsg) bool { return eventIDs(t, msgs)[unlockTopic][last.ID] > 0 })
	ids := eventIDs(t, msgs)[denyTopic]
	lost, dups := 0, 0
	for _, e := range want {
		switch c := ids[e.ID]; {
		case c == 0:
			lost++
		case c > 1:
			dups += c - 1
		}
	}
	if dups > 1 {
		t.Errorf("%d duplicates after one outage, want at most 1", dups)
	}
	t.Logf("%d duplicates; %d events acknowledged by the stopping broker but never passed on", dups, lost)
}

// testProxy forwards TCP connections to a broker; cut closes them and
// refuses new ones until open is set again.
type testProxy struct {
	l      net.Listener
	target string
	open   atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *testProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &testProxy{l: l, target: target}
	p.open.Store(true)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.forward(c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *testProxy) url() string { return "tcp://" + p.l.Addr().String() }

func (p *testProxy) forward(c net.Conn) {
	if !p.open.Load() {
		c.Close()
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, up)
	p.mu.Unlock()
	for _, pair := range [][2]net.Conn{{c, up}, {up, c}} {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			io.Copy(pair[0], pair[1])
			pair[0].Close()
			pair[1].Close()
		}()
	}
}

// cut closes every forwarded connection and refuses new ones.
func (p *testProxy) cut() {
	p.open.Store(false)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestPublishDeleteFailsAfterAck: when the outbox row of an acknowledged
// message cannot be deleted, the publisher retries the delete, not the
// publish.
func TestPublishDeleteFailsAfterAck(t *testing.T) {
	b := newBroker(t)
	b.start()
	sub := newSub(t, b.url(), "facegate/front/events/#")
	path := filepath.Join(t.TempDir(), "facegate.db")
	db := openTestDB(t, path)
	raw, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`CREATE TRIGGER outbox_keeps BEFORE DELETE ON outbox BEGIN SELECT RAISE(ABORT, 'outbox keeps its rows'); END`); err != nil {
		t.Fatal(err)
	}
	var failures atomic.Int64
	log := slog.New(slog.NewTextHandler(testWriter{t: t, count: "outbox keeps its rows", n: &failures}, nil))
	p := startPubLog(t, testOptions(b.url()), db, nil, log)
	e := record(t, db, p.Publisher, unlockDecision(time.Now()))
	sub.waitFor(t, "the event", func(msgs []testMsg) bool { return len(msgs) > 0 })
	// The first failure is the delete after the PUBACK, the next ones the
	// retries of the delete.
	eventually(t, "three failed deletes", func() bool { return failures.Load() >= 3 })
	var attempts int
	if err := raw.QueryRow(`SELECT attempts FROM outbox WHERE event = ?`, e.ID).Scan(&attempts); err != nil {
		t.Fatal(err)
	}
	if attempts != 1 {
		t.Errorf("%d publish attempts, want 1", attempts)
	}
	if _, err := raw.Exec(`DROP TRIGGER outbox_keeps`); err != nil {
		t.Fatal(err)
	}
	eventually(t, "an empty outbox", func() bool { return depth(t, db) == 0 })
	last := record(t, db, p.Publisher, denyDecision(time.Now()))
	msgs := sub.waitFor(t, "the last event", func(msgs []testMsg) bool { return eventIDs(t, msgs)[denyTopic][last.ID] > 0 })
	if n := eventIDs(t, msgs)[unlockTopic][e.ID]; n != 1 {
		t.Errorf("event arrived %d times, want once", n)
	}
}

// The environment that turns the test binary into a helper process.
const (
	mqttHelperEnv = "FACEGATE_MQTT_HELPER"
	mqttDBEnv     = "FACEGATE_MQTT_DB"
	mqttURLEnv    = "FACEGATE_MQTT_URL"
)

// TestMQTTHelperChild is not a test: it is the daemon that other tests run
// as a child process and kill. "record" records decisions (printing each id
// once recorded, then "done"); "connect" prints "connected" once connected.
// Either then waits to be killed.
func TestMQTTHelperChild(t *testing.T) {
	mode := os.Getenv(mqttHelperEnv)
	if mode == "" {
		t.Skip("helper process for TestPublishAfterKill and TestPublishLastWill")
	}
	fail := func(err error) {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, os.Getenv(mqttDBEnv), "")
	if err != nil {
		fail(err)
	}
	p, err := NewPublisher(testOptions(os.Getenv(mqttURLEnv)), db, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		fail(err)
	}
	go p.Run(ctx) // this process ends by SIGKILL only
	switch mode {
	case "record":
		for i := range 4 {
			d := unlockDecision(time.Now())
			if i%2 == 1 {
				d = denyDecision(time.Now())
			}
			e := NewEvent("front", d, time.Now())
			s, err := e.StoreEvent()
			if err != nil {
				fail(err)
			}
			if err := db.RecordDecision(ctx, s, e.Topic(DefaultTopicPrefix)); err != nil {
				fail(err)
			}
			p.Notify()
			fmt.Println(e.ID)
		}
		fmt.Println("done")
	case "connect":
		for !p.Connected() {
			time.Sleep(5 * time.Millisecond)
		}
		fmt.Println("connected")
	default:
		fail(fmt.Errorf("unknown mode %q", mode))
	}
	time.Sleep(time.Hour)
	os.Exit(1)
}

// testChild is the test binary running TestMQTTHelperChild.
type testChild struct {
	cmd   *exec.Cmd
	lines chan string // its stdout, closed at EOF
}

// startChild runs TestMQTTHelperChild in mode and returns it with its
// stdout lines up to and including the one that says it is ready.
func startChild(t *testing.T, mode, dbPath, url, ready string) (*testChild, []string) {
	t.Helper()
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMQTTHelperChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), mqttHelperEnv+"="+mode, mqttDBEnv+"="+dbPath, mqttURLEnv+"="+url)
	cmd.Stderr = testWriter{t: t}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &testChild{cmd: cmd, lines: make(chan string)}
	go func() {
		defer close(c.lines)
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			c.lines <- s.Text()
		}
	}()
	t.Cleanup(func() { c.kill() })

	var got []string
	guard := time.NewTimer(hangGuard)
	defer guard.Stop()
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatalf("child ended before %q: %q", ready, got)
			}
			got = append(got, line)
			if strings.HasPrefix(line, "error:") {
				t.Fatalf("child: %s", line)
			}
			if line == ready {
				return c, got
			}
		case <-guard.C:
			t.Fatalf("hang guard: child did not say %q: %q", ready, got)
		}
	}
}

// kill kills the child with SIGKILL (no deferred code, no clean
// disconnect), reads the rest of its output and reaps it. It returns Wait's
// error; a second call returns nil.
func (c *testChild) kill() error {
	if c.cmd.Process == nil || c.cmd.ProcessState != nil {
		return nil
	}
	c.cmd.Process.Kill()
	for range c.lines { // until EOF: the reader is done before Wait closes the pipe
	}
	return c.cmd.Wait()
}

// killChild kills the child and checks that SIGKILL is what ended it.
func killChild(t *testing.T, c *testChild) {
	t.Helper()
	err := c.kill()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed: %v", err)
	}
}

// TestPublishAfterKill: a daemon records decisions while the broker is
// down and is killed; a new publisher on the same database delivers them,
// each exactly once.
func TestPublishAfterKill(t *testing.T) {
	b := newBroker(t) // not started yet: the child cannot connect
	path := filepath.Join(t.TempDir(), "facegate.db")
	child, lines := startChild(t, "record", path, b.url(), "done")
	ids := lines[:len(lines)-1]
	if len(ids) != 4 {
		t.Fatalf("child recorded %q", ids)
	}
	killChild(t, child)

	db := openTestDB(t, path)
	if n := depth(t, db); n != 4 {
		t.Fatalf("outbox depth %d after the kill, want 4", n)
	}
	b.start()
	sub := newSub(t, b.url(), "facegate/front/events/#")
	p := startPub(t, testOptions(b.url()), db, nil)
	sub.waitFor(t, "the killed daemon's events", func(msgs []testMsg) bool {
		got := eventIDs(t, msgs)
		for _, id := range ids {
			if got[unlockTopic][id]+got[denyTopic][id] == 0 {
				return false
			}
		}
		return true
	})
	eventually(t, "an empty outbox", func() bool { return depth(t, db) == 0 })
	last := record(t, db, p.Publisher, denyDecision(time.Now()))
	msgs := sub.waitFor(t, "the last event", func(msgs []testMsg) bool { return eventIDs(t, msgs)[denyTopic][last.ID] > 0 })
	got := eventIDs(t, msgs)
	for i, id := range ids {
		topic := unlockTopic
		if i%2 == 1 {
			topic = denyTopic
		}
		if got[topic][id] != 1 {
			t.Errorf("event %s arrived %d times on %s, want once", id, got[topic][id], topic)
		}
	}
	if n := len(got[unlockTopic]) + len(got[denyTopic]); n != 5 {
		t.Errorf("%d distinct events, want 5", n)
	}
}

// TestPublishExpiredUnlock: unlocks older than OutboxMaxAge (or dated too
// far ahead) go to events/expired marked expired and unsigned, never to
// events/unlock; denies and fresh unlocks go out as they are.
func TestPublishExpiredUnlock(t *testing.T) {
	b := newBroker(t)
	b.start()
	sub := newSub(t, b.url(), "facegate/front/events/#")
	db := openTestDB(t, "")
	opt := testOptions(b.url())
	opt.OutboxMaxAge = time.Minute
	now := time.Now()

	// Recorded before the publisher starts, as after an outage.
	old := NewEvent("front", unlockDecision(now.Add(-10*time.Minute)), now)
	old.Sig = base64.StdEncoding.EncodeToString(make([]byte, 64))
	s, err := old.StoreEvent()
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RecordDecision(context.Background(), s, old.Topic(DefaultTopicPrefix)); err != nil {
		t.Fatal(err)
	}
	future := record(t, db, nil, unlockDecision(now.Add(10*time.Minute)))
	oldDeny := record(t, db, nil, denyDecision(now.Add(-10*time.Minute)))
	fresh := record(t, db, nil, unlockDecision(time.Now()))

	p := startPub(t, opt, db, nil)
	msgs := sub.waitFor(t, "four events", func(msgs []testMsg) bool { return len(msgs) >= 4 })
	ids := eventIDs(t, msgs)
	for _, e := range []Event{old, future} {
		if ids[unlockTopic][e.ID] != 0 {
			t.Errorf("stale unlock %s was published on events/unlock", e.ID)
		}
		if ids[expiredTopic][e.ID] != 1 {
			t.Errorf("stale unlock %s arrived %d times on events/expired, want once", e.ID, ids[expiredTopic][e.ID])
		}
	}
	for _, m := range byTopic(msgs, expiredTopic) {
		e, err := ParseEvent(m.payload)
		if err != nil {
			t.Fatal(err)
		}
		if !e.Expired || e.Kind != KindUnlock || e.Sig != "" || strings.Contains(string(m.payload), `"sig"`) {
			t.Errorf("expired message %s is not an unsigned expired unlock", m.payload)
		}
		if e.ID == old.ID && (!e.Time.Equal(old.Time) || e.Person == nil || e.Person.ID != "alice") {
			t.Errorf("expired message %s lost the decision's fields", m.payload)
		}
	}
	if ids[denyTopic][oldDeny.ID] != 1 {
		t.Errorf("old deny arrived %d times on events/deny, want once (denies never expire)", ids[denyTopic][oldDeny.ID])
	}
	if ids[unlockTopic][fresh.ID] != 1 {
		t.Errorf("fresh unlock arrived %d times on events/unlock, want once", ids[unlockTopic][fresh.ID])
	}
	for _, m := range byTopic(msgs, denyTopic) {
		if e, _ := ParseEvent(m.payload); e.Expired {
			t.Errorf("deny marked expired: %s", m.payload)
		}
	}
	eventually(t, "an empty outbox", func() bool { return depth(t, db) == 0 })
	if p.Expired() != 2 {
		t.Errorf("Expired() = %d, want 2", p.Expired())
	}
}

// TestPublishUnlockAgesDuringOutage: an unlock fresh when recorded but
// delivered only after OutboxMaxAge goes out expired.
func TestPublishUnlockAgesDuringOutage(t *testing.T) {
	b := newBroker(t)
	b.start()
	sub := newSub(t, b.url(), "facegate/front/events/#")
	db := openTestDB(t, "")
	opt := testOptions(b.url())
	opt.OutboxMaxAge = 200 * time.Millisecond
	gate := &testGate{} // closed: the broker is unreachable
	p := startPub(t, opt, db, gate)
	e := record(t, db, p.Publisher, unlockDecision(time.Now()))
	// Wait out the age (a wait for a condition, not a timing assertion:
	// the event only gets older).
	for time.Since(e.Time) <= opt.OutboxMaxAge {
		time.Sleep(opt.OutboxMaxAge)
	}
	gate.open.Store(true)
	msgs := sub.waitFor(t, "the event", func(msgs []testMsg) bool { return len(msgs) >= 1 })
	if len(byTopic(msgs, unlockTopic)) != 0 || eventIDs(t, msgs)[expiredTopic][e.ID] != 1 {
		t.Errorf("aged unlock: got %v, want it once on events/expired only", msgs)
	}
}

// statusOf parses a status message.
func statusOf(t *testing.T, m testMsg) map[string]string {
	t.Helper()
	var s map[string]string
	if err := json.Unmarshal(m.payload, &s); err != nil {
		t.Fatalf("status %s: %v", m.payload, err)
	}
	return s
}

// TestPublishStatus: the retained status is "online" while the publisher
// runs and "offline" after it stopped cleanly; no discovery unless asked.
func TestPublishStatus(t *testing.T) {
	b := newBroker(t)
	b.start()
	db := openTestDB(t, "")
	p := startPub(t, testOptions(b.url()), db, nil)
	live := newSub(t, b.url(), statusTopic)
	live.waitFor(t, "online", func(msgs []testMsg) bool {
		return len(msgs) > 0 && statusOf(t, msgs[len(msgs)-1])["state"] == "online"
	})

	// A subscriber arriving later gets the retained status, and no
	// discovery configs (Discovery is off).
	late := newSub(t, b.url(), "#")
	late.sync(t, "test/sentinel")
	msgs := late.waitFor(t, "the retained status", func(msgs []testMsg) bool { return len(byTopic(msgs, statusTopic)) > 0 })
	st := byTopic(msgs, statusTopic)[0]
	s := statusOf(t, st)
	if !st.retained || s["state"] != "online" || s["version"] != "1.2.3-test" {
		t.Errorf("retained status %s (retained %v), want online with the version", st.payload, st.retained)
	}
	if _, err := time.Parse(time.RFC3339, s["since"]); err != nil {
		t.Errorf("status since: %v", err)
	}
	for _, m := range msgs {
		if strings.HasPrefix(m.topic, "homeassistant/") {
			t.Errorf("discovery config on %s with Discovery off", m.topic)
		}
	}

	p.stop(t)
	if p.Connected() {
		t.Error("Connected() after Run returned")
	}
	live.waitFor(t, "offline", func(msgs []testMsg) bool {
		return statusOf(t, msgs[len(msgs)-1])["state"] == "offline"
	})
	after := newSub(t, b.url(), statusTopic)
	msgs = after.waitFor(t, "the retained status", func(msgs []testMsg) bool { return len(msgs) > 0 })
	s = statusOf(t, msgs[0])
	if !msgs[0].retained || s["state"] != "offline" || s["since"] == "" {
		t.Errorf("retained status after a clean stop: %s, want offline with since", msgs[0].payload)
	}
}

// TestPublishLastWill: a daemon killed with SIGKILL leaves the retained
// status "offline", published by the broker as its Last Will.
func TestPublishLastWill(t *testing.T) {
	b := newBroker(t)
	b.start()
	sub := newSub(t, b.url(), statusTopic)
	path := filepath.Join(t.TempDir(), "facegate.db")
	openTestDB(t, path) // create it before the child does
	child, _ := startChild(t, "connect", path, b.url(), "connected")
	sub.waitFor(t, "online", func(msgs []testMsg) bool {
		return len(msgs) > 0 && statusOf(t, msgs[len(msgs)-1])["state"] == "online"
	})
	killChild(t, child)
	msgs := sub.waitFor(t, "the Last Will", func(msgs []testMsg) bool {
		return statusOf(t, msgs[len(msgs)-1])["state"] == "offline"
	})
	will := statusOf(t, msgs[len(msgs)-1])
	if will["version"] != "1.2.3-test" {
		t.Errorf("Last Will %v lacks the version", will)
	}
	if _, ok := will["since"]; ok {
		t.Errorf("Last Will %v has a since, which is not known when the will is set", will)
	}
	after := newSub(t, b.url(), statusTopic)
	msgs = after.waitFor(t, "the retained status", func(msgs []testMsg) bool { return len(msgs) > 0 })
	if !msgs[0].retained || statusOf(t, msgs[0])["state"] != "offline" {
		t.Errorf("retained status after the kill: %s", msgs[0].payload)
	}
}

// TestPublishDiscovery: the Home Assistant discovery configs are retained
// under homeassistant/ and hold what MQTT discovery requires.
func TestPublishDiscovery(t *testing.T) {
	b := newBroker(t)
	b.start()
	db := openTestDB(t, "")
	opt := testOptions(b.url())
	opt.Discovery = true
	startPub(t, opt, db, nil)
	live := newSub(t, b.url(), statusTopic)
	live.waitFor(t, "online", func(msgs []testMsg) bool {
		return len(msgs) > 0 && statusOf(t, msgs[len(msgs)-1])["state"] == "online"
	})

	sub := newSub(t, b.url(), "homeassistant/#", "test/sentinel")
	sub.sync(t, "test/sentinel")
	msgs := sub.waitFor(t, "two configs", func(msgs []testMsg) bool { return len(msgs) >= 3 })
	configs := make(map[string]map[string]any)
	for _, m := range msgs {
		if !strings.HasPrefix(m.topic, "homeassistant/") {
			continue
		}
		if !m.retained {
			t.Errorf("config on %s is not retained", m.topic)
		}
		var c map[string]any
		if err := json.Unmarshal(m.payload, &c); err != nil {
			t.Fatalf("config on %s: %v: %s", m.topic, err, m.payload)
		}
		configs[m.topic] = c
	}
	binary := configs["homeassistant/binary_sensor/facegate_front/unlock/config"]
	sensor := configs["homeassistant/sensor/facegate_front/last_decision/config"]
	if binary == nil || sensor == nil || len(configs) != 2 {
		t.Fatalf("configs on %v", keysOf(configs))
	}
	for name, c := range map[string]map[string]any{"binary_sensor": binary, "sensor": sensor} {
		for _, k := range []string{"name", "unique_id", "state_topic", "value_template", "availability", "device"} {
			if c[k] == nil {
				t.Errorf("%s config lacks %s", name, k)
			}
		}
		av, _ := c["availability"].([]any)
		if len(av) != 1 {
			t.Fatalf("%s availability %v", name, c["availability"])
		}
		a := av[0].(map[string]any)
		if a["topic"] != statusTopic || a["payload_available"] != "online" || a["payload_not_available"] != "offline" || a["value_template"] != "{{ value_json.state }}" {
			t.Errorf("%s availability %v", name, a)
		}
		dev, _ := c["device"].(map[string]any)
		ids, _ := dev["identifiers"].([]any)
		if len(ids) != 1 || ids[0] != "facegate_front" || dev["sw_version"] != "1.2.3-test" {
			t.Errorf("%s device %v", name, dev)
		}
	}
	if binary["state_topic"] != unlockTopic || binary["device_class"] != "lock" || binary["payload_on"] != "ON" || binary["off_delay"] == nil {
		t.Errorf("binary_sensor config %v", binary)
	}
	if sensor["state_topic"] != "facegate/front/events/+" || sensor["json_attributes_topic"] != "facegate/front/events/+" {
		t.Errorf("sensor config %v", sensor)
	}
	if binary["unique_id"] == sensor["unique_id"] {
		t.Error("the two entities share a unique_id")
	}
}

func keysOf[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestMQTTOptions(t *testing.T) {
	db := openTestDB(t, "")
	p, err := NewPublisher(MQTTOptions{URL: "tcp://broker.local", Door: "front"}, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.broker != "tcp://broker.local:1883" || p.opt.ClientID != "facegate-front" || p.opt.Prefix != "facegate" ||
		p.opt.DiscoveryPrefix != "homeassistant" || p.opt.OutboxMaxAge != 30*time.Second || p.statusTopic != statusTopic || p.expiredTopic != expiredTopic {
		t.Errorf("defaults: %+v %s", p.opt, p.broker)
	}
	if p, err := NewPublisher(MQTTOptions{URL: "mqtts://user:secret@broker.local", Door: "front"}, db, nil); err != nil || p.broker != "mqtts://user:secret@broker.local:8883" || strings.Contains(p.redacted, "secret") {
		t.Errorf("mqtts: %v %v", p, err)
	}

	for _, tc := range []struct {
		name string
		edit func(*MQTTOptions)
		want string
	}{
		{"no door", func(o *MQTTOptions) { o.Door = "" }, "door is empty"},
		{"door with slash", func(o *MQTTOptions) { o.Door = "a/b" }, "door"},
		{"door with wildcard", func(o *MQTTOptions) { o.Door = "+" }, "door"},
		{"prefix with wildcard", func(o *MQTTOptions) { o.Prefix = "a/#" }, "topic prefix"},
		{"prefix with empty level", func(o *MQTTOptions) { o.Prefix = "a//b" }, "topic prefix"},
		{"prefix ending in slash", func(o *MQTTOptions) { o.Prefix = "a/" }, "topic prefix"},
		{"bad scheme", func(o *MQTTOptions) { o.URL = "http://broker" }, "not an MQTT broker URL"},
		{"no URL", func(o *MQTTOptions) { o.URL = "" }, "not an MQTT broker URL"},
		{"no host", func(o *MQTTOptions) { o.URL = "tcp://:1883" }, "no host"},
		{"negative max age", func(o *MQTTOptions) { o.OutboxMaxAge = -time.Second }, "outbox max age"},
		{"backoffs reversed", func(o *MQTTOptions) { o.MinBackoff, o.MaxBackoff = time.Second, time.Millisecond }, "max backoff"},
		{"keepalive too short", func(o *MQTTOptions) { o.KeepAlive = time.Millisecond }, "keepalive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions("tcp://127.0.0.1:1")
			tc.edit(&o)
			_, err := NewPublisher(o, db, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewPublisher: %v, want an error saying %q", err, tc.want)
			}
		})
	}
	if _, err := NewPublisher(testOptions("tcp://127.0.0.1:1"), nil, nil); err == nil {
		t.Error("NewPublisher without a database")
	}
}

func TestPublishNotifyAndRunOnce(t *testing.T) {
	db := openTestDB(t, "")
	gate := &testGate{}
	p := startPub(t, testOptions("tcp://127.0.0.1:1"), db, gate)
	for range 1000 {
		p.Notify() // never blocks, running or not
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a hang guard only
	defer cancel()
	if err := p.Run(ctx); err == nil {
		t.Error("a second Run was allowed")
	}
	if p.Connected() {
		t.Error("Connected() with the gate closed")
	}
	p.stop(t)
	p.Notify()
}

// TestPublishStopWhileConnecting: a broker that accepts the TCP connection
// but never answers CONNECT must not hold Run after ctx ends, even with a
// long ConnectTimeout.
func TestPublishStopWhileConnecting(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 1)
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	defer func() {
		l.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	}()

	opt := testOptions("tcp://" + l.Addr().String())
	opt.ConnectTimeout = time.Hour
	db := openTestDB(t, "")
	// Cancelling right after the accept hits every step between the dial
	// and the CONNACK wait, on some iterations.
	for range 20 {
		p := startPub(t, opt, db, nil)
		select {
		case <-accepted:
		case <-time.After(hangGuard):
			t.Fatal("hang guard: the publisher did not connect")
		}
		p.stop(t) // fails by the hang guard if the handshake holds Run
	}
}
