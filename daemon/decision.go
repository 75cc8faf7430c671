package daemon

// Decisions on the wire: the JSON message published for each unlock and deny,
// its canonical form (what a signature covers), a strict parser, and the
// topics.

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/facegate/facegate/store"
)

// MaxEventBytes bounds a decision message: ParseEvent refuses longer ones and
// Payload never produces one.
const MaxEventBytes = 4 << 10

// EventTimeLayout is the one form of an event's time on the wire: RFC 3339 in
// UTC with milliseconds.
const EventTimeLayout = "2006-01-02T15:04:05.000Z"

// Limits on an event's text fields, chosen so that the longest event, every
// character escaped, still fits MaxEventBytes.
const (
	maxDoorBytes   = 64
	maxReasonBytes = 128
	maxPersonID    = store.MaxIDBytes // 256
	maxPersonName  = 1024
	maxFrames      = 1 << 20
	// maxWireFloat bounds score, margin and liveness so that they always
	// encode in fixed-point notation. Real values lie within [-1, 2].
	maxWireFloat = 1e6
)

// EventPerson names the person a decision is about.
type EventPerson struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Event is a decision as published: one message on events/unlock,
// events/deny or events/expired.
//
// On the wire it is a JSON object with every key below (person may be
// null, sig is left out when empty). The canonical form, which Payload
// writes and a signature covers, has the keys sorted, no spaces, the time as
// EventTimeLayout and the scores rounded to 6 decimals in fixed-point
// notation.
type Event struct {
	ID     string    // 128 random bits, 32 lowercase hex digits
	Door   string    // the door's id
	Time   time.Time // when the decision was made; milliseconds on the wire
	Kind   string    // KindUnlock or KindDeny
	Person *EventPerson
	// Score, Margin and Liveness are the means over the frames that formed
	// the decision.
	Score, Margin, Liveness float32
	Frames                  int
	Reason                  string // deny reason; "" for unlock
	// Expired marks an unlock that could not be delivered while fresh: it is
	// published on events/expired, for audit only, and never opens a door.
	Expired bool
	// Sig is the base64 (standard, padded) Ed25519 signature of
	// SigningBytes; "" when unsigned.
	Sig string
}

// wireEvent is Event on the wire, its fields in sorted key order so that
// json.Marshal writes the canonical form.
type wireEvent struct {
	Door     string       `json:"door"`
	Expired  bool         `json:"expired"`
	Frames   int          `json:"frames"`
	ID       string       `json:"id"`
	Kind     string       `json:"kind"`
	Liveness float64      `json:"liveness"`
	Margin   float64      `json:"margin"`
	Person   *EventPerson `json:"person"` // fields in sorted order too
	Reason   string       `json:"reason"`
	Score    float64      `json:"score"`
	Sig      string       `json:"sig,omitempty"`
	Time     string       `json:"time"`
}

// NewEvent makes the event for a decision at door with a new random id. now
// is used only when the decision carries no time of its own.
func NewEvent(door string, d Decision, now time.Time) Event {
	at := d.At
	if at.IsZero() {
		at = now
	}
	e := Event{
		ID:       newEventID(),
		Door:     door,
		Time:     at.UTC().Truncate(time.Millisecond),
		Kind:     d.Kind,
		Score:    d.Score,
		Margin:   d.Margin,
		Liveness: d.Liveness,
		Frames:   d.Frames,
		Reason:   d.Reason,
	}
	if d.PersonID != "" {
		e.Person = &EventPerson{ID: d.PersonID, Name: d.PersonName}
	}
	return e
}

// newEventID is 128 bits from crypto/rand in lowercase hex. crypto/rand.Read
// does not fail (it crashes the program if the kernel cannot supply
// randomness), so neither does this.
func newEventID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Payload is the event's canonical JSON, with sig when it is set. It fails
// for an event ParseEvent would refuse.
func (e Event) Payload() ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	w := wireEvent{
		Door:     e.Door,
		Expired:  e.Expired,
		Frames:   e.Frames,
		ID:       e.ID,
		Kind:     e.Kind,
		Liveness: wireFloat(e.Liveness),
		Margin:   wireFloat(e.Margin),
		Person:   e.Person,
		Reason:   e.Reason,
		Score:    wireFloat(e.Score),
		Sig:      e.Sig,
		Time:     e.Time.UTC().Format(EventTimeLayout),
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "<" stays "<": fewer bytes, same canonical form everywhere
	if err := enc.Encode(w); err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(b) > MaxEventBytes {
		return nil, fmt.Errorf("encode event %s: %d bytes, more than %d", e.ID, len(b), MaxEventBytes)
	}
	return b, nil
}

// SigningBytes is what an Ed25519 signature of the event covers: the
// canonical JSON without sig.
func (e Event) SigningBytes() ([]byte, error) {
	e.Sig = ""
	return e.Payload()
}

// Expire returns the event as it goes out when it was not delivered in time:
// marked expired and unsigned (a signature covers expired:false, so the old
// one no longer verifies; a relay that checks signatures refuses the message
// even if it somehow reached it).
func (e Event) Expire() Event {
	e.Expired = true
	e.Sig = ""
	return e
}

// Topic is where the event is published under prefix: events/expired for an
// expired unlock, else events/<kind>.
func (e Event) Topic(prefix string) string {
	if e.Expired {
		return ExpiredTopic(prefix, e.Door)
	}
	return Topic(prefix, e.Door, e.Kind)
}

// StoreEvent is the event as the store records it, its payload included.
func (e Event) StoreEvent() (store.Event, error) {
	payload, err := e.Payload()
	if err != nil {
		return store.Event{}, err
	}
	s := store.Event{
		ID:       e.ID,
		Time:     e.Time,
		Door:     e.Door,
		Kind:     e.Kind,
		Reason:   e.Reason,
		Score:    e.Score,
		Margin:   e.Margin,
		Liveness: e.Liveness,
		Frames:   e.Frames,
		Payload:  payload,
	}
	if e.Person != nil {
		s.Person = e.Person.ID
	}
	return s, nil
}

// wireFloat is v rounded to 6 decimals: enough for a similarity, and always
// written in fixed-point notation (never 1e-07), whatever the reader's JSON
// library. Negative zero becomes zero.
func wireFloat(v float32) float64 {
	r := math.Round(float64(v)*1e6) / 1e6
	if r == 0 {
		return 0
	}
	return r
}

// Topic is the topic of a decision of kind at door: <prefix>/<door>/events/<kind>.
func Topic(prefix, door, kind string) string {
	return prefix + "/" + door + "/events/" + kind
}

// ExpiredTopic is where unlocks that aged out before delivery go:
// <prefix>/<door>/events/expired. Relays subscribe to events/unlock only, so
// none opens for them; audit consumers of events/# see them.
func ExpiredTopic(prefix, door string) string {
	return Topic(prefix, door, "expired")
}

// StatusTopic is the door daemon's retained status: <prefix>/<door>/status.
func StatusTopic(prefix, door string) string {
	return prefix + "/" + door + "/status"
}

// check says what is wrong with an event, naming the field.
func (e Event) check() error {
	if !isEventID(e.ID) {
		return fmt.Errorf("id %q is not 32 lowercase hex digits", e.ID)
	}
	if err := checkDoor(e.Door); err != nil {
		return err
	}
	if e.Time.IsZero() {
		return errors.New("time is not set")
	}
	if y := e.Time.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("time %v is outside years 1 to 9999", e.Time)
	}
	if e.Kind != KindUnlock && e.Kind != KindDeny {
		return fmt.Errorf("kind %q is neither %q nor %q", e.Kind, KindUnlock, KindDeny)
	}
	if e.Expired && e.Kind != KindUnlock {
		return fmt.Errorf("a %s cannot be expired: only unlocks expire", e.Kind)
	}
	if e.Person != nil {
		if err := checkField("person.id", e.Person.ID, maxPersonID, false); err != nil {
			return err
		}
		if err := checkField("person.name", e.Person.Name, maxPersonName, true); err != nil {
			return err
		}
	}
	if err := checkField("reason", e.Reason, maxReasonBytes, true); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    float32
	}{{"score", e.Score}, {"margin", e.Margin}, {"liveness", e.Liveness}} {
		if v := float64(f.v); math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > maxWireFloat {
			return fmt.Errorf("%s %v is not a number within ±%g", f.name, f.v, maxWireFloat)
		}
	}
	if e.Frames < 0 || e.Frames > maxFrames {
		return fmt.Errorf("frames %d is outside [0, %d]", e.Frames, maxFrames)
	}
	if e.Sig != "" {
		sig, err := base64.StdEncoding.Strict().DecodeString(e.Sig)
		if err != nil || len(sig) != 64 {
			return errors.New("sig is not a base64 Ed25519 signature (64 bytes)")
		}
		// Strict decoding still accepts a newline; the canonical form does not.
		if base64.StdEncoding.EncodeToString(sig) != e.Sig {
			return errors.New("sig is not in canonical base64")
		}
	}
	return nil
}

// checkDoor refuses a door id that cannot be one level of a topic or a
// readable name.
func checkDoor(door string) error {
	if err := checkField("door", door, maxDoorBytes, false); err != nil {
		return err
	}
	if strings.ContainsAny(door, "/+#") {
		return fmt.Errorf("door %q holds one of / + #, which MQTT topics reserve", door)
	}
	return nil
}

// checkField refuses text that is not UTF-8, too long, or holds control
// characters; empty only if mayBeEmpty.
func checkField(name, s string, max int, mayBeEmpty bool) error {
	switch {
	case s == "" && !mayBeEmpty:
		return fmt.Errorf("%s is empty", name)
	case len(s) > max:
		return fmt.Errorf("%s is longer than %d bytes", name, max)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not UTF-8", name)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fmt.Errorf("%s %q holds control characters", name, s)
	}
	return nil
}

func isEventID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// eventKeys are the keys of a decision message; all but sig are required.
func eventKeys() []string {
	return []string{"door", "expired", "frames", "id", "kind", "liveness", "margin", "person", "reason", "score", "sig", "time"}
}

// ParseEvent reads a decision message strictly: at most MaxEventBytes of
// UTF-8 holding one JSON object with exactly the keys of the wire format
// (spelled exactly so, each once, all but sig present; only person may be
// null), nothing after it, and values Payload would write. It does not
// require the canonical form: a verifier re-encodes with SigningBytes.
func ParseEvent(b []byte) (Event, error) {
	if len(b) > MaxEventBytes {
		return Event{}, fmt.Errorf("parse event: %d bytes, more than %d", len(b), MaxEventBytes)
	}
	if !utf8.Valid(b) {
		return Event{}, errors.New("parse event: not UTF-8")
	}
	if err := checkEventShape(b); err != nil {
		return Event{}, fmt.Errorf("parse event: %w", err)
	}
	var w wireEvent
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Event{}, fmt.Errorf("parse event: %w", err)
	}
	t, err := time.Parse(EventTimeLayout, w.Time)
	if err != nil || t.Format(EventTimeLayout) != w.Time {
		return Event{}, fmt.Errorf("parse event %s: time %q is not UTC RFC 3339 with milliseconds (%s)", w.ID, w.Time, EventTimeLayout)
	}
	e := Event{
		ID:      w.ID,
		Door:    w.Door,
		Time:    t,
		Kind:    w.Kind,
		Person:  w.Person,
		Frames:  w.Frames,
		Reason:  w.Reason,
		Expired: w.Expired,
		Sig:     w.Sig,
	}
	for _, f := range []struct {
		name string
		v    float64
		to   *float32
	}{{"score", w.Score, &e.Score}, {"margin", w.Margin, &e.Margin}, {"liveness", w.Liveness, &e.Liveness}} {
		if math.Abs(f.v) > maxWireFloat {
			return Event{}, fmt.Errorf("parse event %s: %s %v is not within ±%g", w.ID, f.name, f.v, maxWireFloat)
		}
		*f.to = float32(f.v)
	}
	if err := e.check(); err != nil {
		return Event{}, fmt.Errorf("parse event %s: %w", w.ID, err)
	}
	return e, nil
}

// checkEventShape walks b's tokens: one object, the keys of eventKeys
// exactly (encoding/json alone would accept "ID" for "id", take the last
// of duplicate keys, and leave out missing ones), scalar values except
// person, which is null or {"id":string,"name":string}, and nothing after.
func checkEventShape(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := expectDelim(dec, '{', "an object"); err != nil {
		return err
	}
	keys := eventKeys()
	seen := make(map[string]bool, len(keys))
	for dec.More() {
		key, err := objectKey(dec, keys, seen)
		if err != nil {
			return err
		}
		if key == "person" {
			if err := checkPersonShape(dec); err != nil {
				return err
			}
			continue
		}
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok.(type) {
		case nil:
			return fmt.Errorf("%s is null", key)
		case json.Delim:
			return fmt.Errorf("%s is not a string, number or boolean", key)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return err
	}
	for _, k := range keys {
		if !seen[k] && k != "sig" {
			return fmt.Errorf("no %s", k)
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the object")
	}
	return nil
}

func checkPersonShape(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		return nil
	}
	if tok != json.Delim('{') {
		return errors.New("person is neither null nor an object")
	}
	keys := []string{"id", "name"}
	seen := make(map[string]bool, 2)
	for dec.More() {
		key, err := objectKey(dec, keys, seen)
		if err != nil {
			return fmt.Errorf("person: %w", err)
		}
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if _, ok := tok.(string); !ok {
			return fmt.Errorf("person.%s is not a string", key)
		}
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	if len(seen) != len(keys) {
		return errors.New("person lacks id or name")
	}
	return nil
}

// objectKey reads the next key of an object, which must be one of keys and
// not in seen, and adds it to seen.
func objectKey(dec *json.Decoder, keys []string, seen map[string]bool) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	key, ok := tok.(string)
	if !ok {
		return "", errors.New("object key is not a string")
	}
	known := false
	for _, k := range keys {
		known = known || k == key
	}
	switch {
	case !known:
		return "", fmt.Errorf("unknown key %q", key)
	case seen[key]:
		return "", fmt.Errorf("key %q appears twice", key)
	}
	seen[key] = true
	return key, nil
}

func expectDelim(dec *json.Decoder, d json.Delim, what string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("not %s", what)
	}
	return nil
}
