package daemon

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var decisionTime = time.Date(2026, 3, 1, 8, 30, 5, 123_456_789, time.FixedZone("CET", 3600))

func testDecision() Decision {
	return Decision{
		Kind:       KindUnlock,
		PersonID:   "alice",
		PersonName: "Alice <Admin> & \"Co\"",
		Score:      0.7345678,
		Margin:     0.2,
		Liveness:   0.98,
		Frames:     3,
		At:         decisionTime,
	}
}

// fixedEvent is NewEvent's result for testDecision with a known id.
func fixedEvent() Event {
	e := NewEvent("front", testDecision(), time.Time{})
	e.ID = "0123456789abcdef0123456789abcdef"
	return e
}

func TestDecisionNewEvent(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := NewEvent("front", testDecision(), now)
	if !isEventID(e.ID) {
		t.Errorf("id %q is not 32 lowercase hex digits", e.ID)
	}
	want := Event{
		ID:       e.ID,
		Door:     "front",
		Time:     time.Date(2026, 3, 1, 7, 30, 5, 123_000_000, time.UTC),
		Kind:     KindUnlock,
		Person:   &EventPerson{ID: "alice", Name: "Alice <Admin> & \"Co\""},
		Score:    0.7345678,
		Margin:   0.2,
		Liveness: 0.98,
		Frames:   3,
	}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("NewEvent:\n got %+v\nwant %+v", e, want)
	}

	// A deny without a person; a decision without a time takes now.
	d := Decision{Kind: KindDeny, Reason: ReasonUnknown, Frames: 3}
	e = NewEvent("front", d, now)
	if e.Person != nil || e.Reason != ReasonUnknown || !e.Time.Equal(now) {
		t.Errorf("deny event %+v", e)
	}

	ids := make(map[string]bool)
	for range 10000 {
		id := NewEvent("front", d, now).ID
		if ids[id] {
			t.Fatalf("id %s twice", id)
		}
		ids[id] = true
	}
}

func TestDecisionPayloadCanonical(t *testing.T) {
	e := fixedEvent()
	got, err := e.Payload()
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"door":"front","expired":false,"frames":3,"id":"0123456789abcdef0123456789abcdef","kind":"unlock","liveness":0.98,"margin":0.2,"person":{"id":"alice","name":"Alice <Admin> & \"Co\""},"reason":"","score":0.734568,"time":"2026-03-01T07:30:05.123Z"}`
	if string(got) != want {
		t.Errorf("Payload:\n got %s\nwant %s", got, want)
	}
	// Keys sorted, also inside person.
	keys := objectKeys(t, got)
	if !slices.IsSorted(keys) || len(keys) != 11 {
		t.Errorf("keys %v are not sorted", keys)
	}
	if keys := objectKeys(t, []byte(`{"id":"alice","name":"x"}`)); !slices.Equal(keys, []string{"id", "name"}) {
		t.Errorf("person keys %v", keys)
	}

	signing, err := e.SigningBytes()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(signing, got) {
		t.Error("SigningBytes differs from Payload for an unsigned event")
	}

	// Small values stay in fixed-point notation; -0 is 0.
	e.Score, e.Margin, e.Liveness = 1e-7, float32(math.Copysign(0, -1)), 0.0000015
	got, err = e.Payload()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"score":0,`, `"margin":0,`, `"liveness":0.000002,`} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("payload %s lacks %s", got, want)
		}
	}
	if bytes.ContainsAny(got, "eE ") && !bytes.Contains(got, []byte(`"time"`)) {
		t.Errorf("payload %s has an exponent or a space", got)
	}
}

// objectKeys lists the keys of the JSON object b in their order.
func objectKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", b)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestDecisionSignature(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := fixedEvent()
	msg, err := e.SigningBytes()
	if err != nil {
		t.Fatal(err)
	}
	e.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(priv, msg))
	payload, err := e.Payload()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(payload, []byte(`,"sig":"`+e.Sig+`","time":"2026-03-01T07:30:05.123Z"}`)) {
		t.Errorf("sig is not between score and time: %s", payload)
	}

	// A relay: parse, re-encode without sig, verify.
	verify := func(payload []byte) bool {
		got, err := ParseEvent(payload)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := base64.StdEncoding.DecodeString(got.Sig)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := got.SigningBytes()
		if err != nil {
			t.Fatal(err)
		}
		return ed25519.Verify(pub, msg, sig)
	}
	if !verify(payload) {
		t.Error("signature does not verify after a round trip")
	}
	// The same message with its keys in another order and spaces verifies
	// too: the signature covers the canonical form, not the bytes.
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	indented, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if !verify(indented) {
		t.Error("signature does not verify on a re-formatted message")
	}
	// Tampering breaks it; so does expiring (the signature covered
	// expired:false, and Expire drops it).
	tampered := bytes.Replace(payload, []byte(`"frames":3`), []byte(`"frames":4`), 1)
	if verify(tampered) {
		t.Error("a tampered message verifies")
	}
	if x := e.Expire(); x.Sig != "" || !x.Expired {
		t.Errorf("Expire: %+v", x)
	}
}

func TestDecisionPayloadRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Event)
		want string
	}{
		{"bad id", func(e *Event) { e.ID = "ABC" }, "id"},
		{"no door", func(e *Event) { e.Door = "" }, "door is empty"},
		{"door with slash", func(e *Event) { e.Door = "a/b" }, "MQTT topics reserve"},
		{"no time", func(e *Event) { e.Time = time.Time{} }, "time is not set"},
		{"year 10000", func(e *Event) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "years"},
		{"bad kind", func(e *Event) { e.Kind = "open" }, `kind "open"`},
		{"expired deny", func(e *Event) { e.Kind, e.Expired = KindDeny, true }, "only unlocks expire"},
		{"NaN score", func(e *Event) { e.Score = float32(math.NaN()) }, "score"},
		{"huge margin", func(e *Event) { e.Margin = 1e30 }, "margin"},
		{"negative frames", func(e *Event) { e.Frames = -1 }, "frames"},
		{"empty person id", func(e *Event) { e.Person = &EventPerson{Name: "x"} }, "person.id is empty"},
		{"control in name", func(e *Event) { e.Person.Name = "a\nb" }, "control"},
		{"long reason", func(e *Event) { e.Reason = strings.Repeat("r", maxReasonBytes+1) }, "reason"},
		{"bad sig", func(e *Event) { e.Sig = "not base64!" }, "sig"},
		{"short sig", func(e *Event) { e.Sig = base64.StdEncoding.EncodeToString(make([]byte, 32)) }, "sig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := fixedEvent()
			tc.edit(&e)
			_, err := e.Payload()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Payload: %v, want an error saying %q", err, tc.want)
			}
		})
	}
	// The longest event that passes check fits MaxEventBytes.
	e := fixedEvent()
	e.ID = strings.Repeat("f", 32)
	e.Door = strings.Repeat("\"", maxDoorBytes)
	e.Person = &EventPerson{ID: strings.Repeat("\\", maxPersonID), Name: strings.Repeat("\"", maxPersonName)}
	e.Reason = strings.Repeat("\"", maxReasonBytes)
	e.Score, e.Margin, e.Liveness, e.Frames = -999999.9, -999999.9, -999999.9, maxFrames
	e.Sig = base64.StdEncoding.EncodeToString(make([]byte, 64))
	e.Time = time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC)
	b, err := e.Payload()
	if err != nil {
		t.Fatalf("the longest event: %v", err)
	}
	t.Logf("the longest event has %d bytes", len(b))
}

func TestDecisionTopics(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Topic("facegate", "front", KindUnlock), "facegate/front/events/unlock"},
		{Topic("site/a", "front", KindDeny), "site/a/front/events/deny"},
		{ExpiredTopic("facegate", "front"), "facegate/front/events/expired"},
		{StatusTopic("facegate", "front"), "facegate/front/status"},
		{fixedEvent().Topic("facegate"), "facegate/front/events/unlock"},
		{fixedEvent().Expire().Topic("facegate"), "facegate/front/events/expired"},
	} {
		if tc.got != tc.want {
			t.Errorf("topic %q, want %q", tc.got, tc.want)
		}
	}
}

func TestDecisionStoreEvent(t *testing.T) {
	e := fixedEvent()
	s, err := e.StoreEvent()
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := e.Payload()
	if s.ID != e.ID || s.Person != "alice" || s.Kind != KindUnlock || !s.Time.Equal(e.Time) || !bytes.Equal(s.Payload, payload) || s.Frames != 3 {
		t.Errorf("StoreEvent: %+v", s)
	}
}

// validPayload is a canonical message to edit in table tests.
const validPayload = `{"door":"front","expired":false,"frames":3,"id":"0123456789abcdef0123456789abcdef","kind":"unlock","liveness":0.98,"margin":0.2,"person":{"id":"alice","name":"Alice"},"reason":"","score":0.734568,"time":"2026-03-01T07:30:05.123Z"}`

func TestParseEvent(t *testing.T) {
	sig := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 64))
	replace := func(old, new string) string {
		if !strings.Contains(validPayload, old) {
			t.Fatalf("validPayload lacks %s", old)
		}
		return strings.Replace(validPayload, old, new, 1)
	}
	for _, tc := range []struct {
		name    string
		payload string
		want    string // "" for success
	}{
		{"valid", validPayload, ""},
		{"deny without person", replace(`"kind":"unlock"`, `"kind":"deny"`), ""},
		{"null person", replace(`{"id":"alice","name":"Alice"}`, `null`), ""},
		{"with sig", replace(`"time"`, `"sig":"`+sig+`","time"`), ""},
		{"spaces and other order", `{ "time":"2026-03-01T07:30:05.123Z", "id":"0123456789abcdef0123456789abcdef", "door":"front", "expired":false, "frames":3, "kind":"unlock", "liveness":0.98, "margin":0.2, "person":null, "reason":"", "score":0.5 }`, ""},
		{"expired unlock", replace(`"expired":false`, `"expired":true`), ""},

		{"unknown kind", replace(`"kind":"unlock"`, `"kind":"open"`), `kind "open"`},
		{"kind in capitals", replace(`"kind":"unlock"`, `"kind":"UNLOCK"`), "kind"},
		{"missing id", replace(`"id":"0123456789abcdef0123456789abcdef",`, ``), "no id"},
		{"empty id", replace(`"id":"0123456789abcdef0123456789abcdef"`, `"id":""`), "id"},
		{"short id", replace(`"id":"0123456789abcdef0123456789abcdef"`, `"id":"0123"`), "id"},
		{"upper-case id", replace(`"id":"0123456789abcdef0123456789abcdef"`, `"id":"0123456789ABCDEF0123456789ABCDEF"`), "id"},
		{"missing time", replace(`,"time":"2026-03-01T07:30:05.123Z"`, ``), "no time"},
		{"null time", replace(`"time":"2026-03-01T07:30:05.123Z"`, `"time":null`), "time is null"},
		{"time without ms", replace(`05.123Z`, `05Z`), "milliseconds"},
		{"time with ns", replace(`05.123Z`, `05.123456Z`), "milliseconds"},
		{"time with offset", replace(`07:30:05.123Z`, `08:30:05.123+01:00`), "milliseconds"},
		{"time garbage", replace(`2026-03-01T07:30:05.123Z`, `yesterday`), "time"},
		{"missing expired", replace(`"expired":false,`, ``), "no expired"},
		{"expired deny", replace(`"expired":false,"frames":3,"id":"0123456789abcdef0123456789abcdef","kind":"unlock"`, `"expired":true,"frames":3,"id":"0123456789abcdef0123456789abcdef","kind":"deny"`), "only unlocks expire"},
		{"expired as string", replace(`"expired":false`, `"expired":"false"`), "expired"},
		{"unknown key", replace(`"reason":""`, `"reason":"","extra":1`), `unknown key "extra"`},
		{"key in capitals", replace(`"id":`, `"ID":`), `unknown key "ID"`},
		{"duplicate key", replace(`"kind":"unlock"`, `"kind":"deny","kind":"unlock"`), "twice"},
		{"person without name", replace(`{"id":"alice","name":"Alice"}`, `{"id":"alice"}`), "person lacks"},
		{"person with extra", replace(`{"id":"alice","name":"Alice"}`, `{"id":"alice","name":"Alice","role":"x"}`), "person"},
		{"person as string", replace(`{"id":"alice","name":"Alice"}`, `"alice"`), "person"},
		{"person id number", replace(`{"id":"alice"`, `{"id":7`), "person.id"},
		{"person empty id", replace(`{"id":"alice"`, `{"id":""`), "person.id is empty"},
		{"nested object", replace(`"reason":""`, `"reason":{"a":1}`), "reason is not"},
		{"array value", replace(`"frames":3`, `"frames":[3]`), "frames is not"},
		{"fractional frames", replace(`"frames":3`, `"frames":3.5`), "frames"},
		{"negative frames", replace(`"frames":3`, `"frames":-1`), "frames"},
		{"score as string", replace(`"score":0.734568`, `"score":"0.73"`), "score"},
		{"score too large", replace(`"score":0.734568`, `"score":1e300`), "score"},
		{"score overflows", replace(`"score":0.734568`, `"score":1e999`), "1e999"},
		{"door with slash", replace(`"door":"front"`, `"door":"a/b"`), "reserve"},
		{"door with wildcard", replace(`"door":"front"`, `"door":"#"`), "reserve"},
		{"control in reason", replace(`"reason":""`, `"reason":"a\u0000b"`), "control"},
		{"bad sig", replace(`"time"`, `"sig":"!!","time"`), "sig"},
		{"null sig", replace(`"time"`, `"sig":null,"time"`), "sig is null"},
		{"trailing data", validPayload + `{}`, "after the object"},
		{"trailing garbage", validPayload + `x`, ""},
		{"array", `[` + validPayload + `]`, "not an object"},
		{"empty", ``, "EOF"},
		{"truncated", validPayload[:50], ""},
		{"not UTF-8", replace(`"Alice"`, "\"Al\xffce\""), "UTF-8"},
		{"over 4 KiB", replace(`"reason":""`, `"reason":"`+strings.Repeat(" ", 4096)+`"`), "more than 4096"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ParseEvent([]byte(tc.payload))
			if tc.want == "" && tc.name != "trailing garbage" && tc.name != "truncated" {
				if err != nil {
					t.Fatalf("ParseEvent: %v", err)
				}
				if _, err := e.Payload(); err != nil {
					t.Errorf("a parsed event does not encode: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseEvent accepted it: %+v", e)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestParseEventRoundTrip(t *testing.T) {
	e := fixedEvent()
	payload, err := e.Payload()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseEvent(payload)
	if err != nil {
		t.Fatal(err)
	}
	// The score was rounded to 6 decimals on the wire.
	e.Score = float32(0.734568)
	if !reflect.DeepEqual(got, e) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, e)
	}
	again, err := got.Payload()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, payload) {
		t.Errorf("re-encoded:\n%s\n%s", again, payload)
	}
}

// FuzzParseEvent checks that ParseEvent never panics, refuses what exceeds
// its bounds, and that whatever it accepts encodes to a canonical form that
// parses back to the same event and encodes to the same bytes.
func FuzzParseEvent(f *testing.F) {
	f.Add([]byte(validPayload))
	for _, s := range []string{
		strings.Replace(validPayload, `{"id":"alice","name":"Alice"}`, `null`, 1),
		strings.Replace(validPayload, `"time"`, `"sig":"`+base64.StdEncoding.EncodeToString(make([]byte, 64))+`","time"`, 1),
		strings.Replace(validPayload, `"kind":"unlock"`, `"kind":"deny","kind":"unlock"`, 1),
		strings.Replace(validPayload, `"score":0.734568`, `"score":-1.5e-3`, 1),
		`{"a":1}`, `[]`, `null`, `{"person":{"id":"a","name":"b","id":"c"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEvent(b)
		if err != nil {
			return
		}
		if len(b) > MaxEventBytes {
			t.Fatalf("accepted %d bytes", len(b))
		}
		if !isEventID(e.ID) || e.Time.IsZero() || (e.Kind != KindUnlock && e.Kind != KindDeny) {
			t.Fatalf("accepted an event without id, time or kind: %+v", e)
		}
		p1, err := e.Payload()
		if err != nil {
			t.Fatalf("accepted %q but cannot encode it: %v", b, err)
		}
		e2, err := ParseEvent(p1)
		if err != nil {
			t.Fatalf("canonical form %s of %q does not parse: %v", p1, b, err)
		}
		p2, err := e2.Payload()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p1, p2) {
			t.Fatalf("canonical form is not a fixed point:\n%s\n%s", p1, p2)
		}
		e3, err := ParseEvent(p2)
		if err != nil || !reflect.DeepEqual(e2, e3) {
			t.Fatalf("canonical form parses differently: %+v %+v %v", e2, e3, err)
		}
		if s1, err := e.SigningBytes(); err != nil || bytes.Contains(s1, []byte(`"sig"`)) {
			t.Fatalf("SigningBytes: %s %v", s1, err)
		}
	})
}
