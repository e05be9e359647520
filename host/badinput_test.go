package host_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

func TestBadInputGetsATypedErrorAndLosesNothing(t *testing.T) {
	s := natstest.Server(t)
	h := startHost(t, s, host.Config{}, registerCounter)
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	call(t, r, counter.Type, "c", "add", "42")

	big := make([]byte, 2<<20) // above the default 1 MiB max payload
	viaRouter := []struct {
		name    string
		typ     placement.ActorType
		id      placement.ActorID
		method  string
		payload []byte
		want    *protocol.Error
	}{
		{"unknown type", "nosuch", "c", "get", nil, protocol.ErrNoHost},
		{"invalid type", "no.such", "c", "get", nil, protocol.ErrUnknownType},
		{"empty id", counter.Type, "", "get", nil, protocol.ErrInvalidID},
		{"id too long", counter.Type, placement.ActorID(strings.Repeat("x", placement.MaxActorIDLen+1)), "get", nil, protocol.ErrInvalidID},
		{"unknown method", counter.Type, "c", "reset", nil, protocol.ErrUnknownMethod},
		{"invalid method", counter.Type, "c", "get.all", nil, protocol.ErrInvalidMethod},
		{"empty method", counter.Type, "c", "", nil, protocol.ErrInvalidMethod},
		{"malformed payload", counter.Type, "c", "add", []byte("notanumber"), protocol.ErrInvalidArgument},
		{"overflow", counter.Type, "c", "add", []byte("9223372036854775807"), protocol.ErrInvalidArgument},
		{"payload too large", counter.Type, "c", "add", big, protocol.ErrPayloadTooLarge},
	}
	for _, tc := range viaRouter {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := r.Call(ctx, tc.typ, tc.id, tc.method, tc.payload)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}

	raw := natstest.Connect(t, s)
	hdr := func(kv ...string) nats.Header {
		h := nats.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	good := []string{protocol.HeaderType, "counter", protocol.HeaderID, "c", protocol.HeaderMethod, "get"}
	with := func(extra ...string) nats.Header { return hdr(append(append([]string{}, good...), extra...)...) }
	without := func(key string) nats.Header {
		h := with()
		h.Del(key)
		return h
	}
	direct := []struct {
		name string
		hdr  nats.Header
		want protocol.Code
	}{
		{"no headers", nil, protocol.CodeBadRequest},
		{"no type", without(protocol.HeaderType), protocol.CodeBadRequest},
		{"no id", without(protocol.HeaderID), protocol.CodeBadRequest},
		{"two ids", with(protocol.HeaderID, "d"), protocol.CodeBadRequest},
		{"no method", without(protocol.HeaderMethod), protocol.CodeBadRequest},
		{"unknown type", hdr(protocol.HeaderType, "nosuch", protocol.HeaderID, "c", protocol.HeaderMethod, "get"), protocol.CodeUnknownType},
		{"raw dot in id", hdr(protocol.HeaderType, "counter", protocol.HeaderID, "a.b", protocol.HeaderMethod, "get"), protocol.CodeBadRequest},
		{"bad escape in id", hdr(protocol.HeaderType, "counter", protocol.HeaderID, "a%2", protocol.HeaderMethod, "get"), protocol.CodeBadRequest},
		{"needless escape in id", hdr(protocol.HeaderType, "counter", protocol.HeaderID, "%63", protocol.HeaderMethod, "get"), protocol.CodeBadRequest},
		{"empty id", hdr(protocol.HeaderType, "counter", protocol.HeaderID, "", protocol.HeaderMethod, "get"), protocol.CodeInvalidID},
		{"bad generation", with(protocol.HeaderGeneration, "-1"), protocol.CodeBadRequest},
		{"bad timeout", with(protocol.HeaderTimeout, "soon"), protocol.CodeBadRequest},
		{"zero timeout", with(protocol.HeaderTimeout, "0"), protocol.CodeDeadlineExceeded},
		{"generation from the future", with(protocol.HeaderGeneration, "999999999", protocol.HeaderTimeout, "50"), protocol.CodeDeadlineExceeded},
		// The same call in one Troupe-Call header.
		{"call: unknown type", hdr(protocol.HeaderCall, "nosuch c get 0 5000"), protocol.CodeUnknownType},
		{"call: raw dot in id", hdr(protocol.HeaderCall, "counter a.b get 0 5000"), protocol.CodeBadRequest},
		{"call: needless escape in id", hdr(protocol.HeaderCall, "counter %63 get 0 5000"), protocol.CodeBadRequest},
		{"call: invalid method", hdr(protocol.HeaderCall, "counter c g*t 0 5000"), protocol.CodeInvalidMethod},
		{"call: four fields", hdr(protocol.HeaderCall, "counter c get 5000"), protocol.CodeBadRequest},
		{"call: seven fields", hdr(protocol.HeaderCall, "counter c get 0 5000 x y"), protocol.CodeBadRequest},
		{"call: a call id of 65 bytes", hdr(protocol.HeaderCall, "counter c get 0 5000 "+strings.Repeat("k", 65)), protocol.CodeBadRequest},
		{"call: a call id not ASCII", hdr(protocol.HeaderCall, "counter c get 0 5000 é"), protocol.CodeBadRequest},
		{"call: two spaces", hdr(protocol.HeaderCall, "counter  c get 0 5000"), protocol.CodeBadRequest},
		{"call: empty", hdr(protocol.HeaderCall, ""), protocol.CodeBadRequest},
		{"call: bad generation", hdr(protocol.HeaderCall, "counter c get -1 5000"), protocol.CodeBadRequest},
		{"call: bad timeout", hdr(protocol.HeaderCall, "counter c get 0 soon"), protocol.CodeBadRequest},
		{"call: zero timeout", hdr(protocol.HeaderCall, "counter c get 0 0"), protocol.CodeDeadlineExceeded},
		{"call: twice", hdr(protocol.HeaderCall, "counter c get 0 5000", protocol.HeaderCall, "counter d get 0 5000"), protocol.CodeBadRequest},
		{"call: both forms", with(protocol.HeaderCall, "counter c get 0 5000"), protocol.CodeBadRequest},
		{"call: and a timeout", hdr(protocol.HeaderCall, "counter c get 0 5000", protocol.HeaderTimeout, "5000"), protocol.CodeBadRequest},
		{"call: from the future", hdr(protocol.HeaderCall, "counter c get 999999999 50"), protocol.CodeDeadlineExceeded},
	}
	for _, tc := range direct {
		t.Run("raw/"+tc.name, func(t *testing.T) {
			resp, err := raw.RequestMsg(&nats.Msg{Subject: h.Subject(), Header: tc.hdr, Data: []byte("1")}, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			e := protocol.DecodeError(resp.Header, resp.Data)
			if e == nil || e.Code != tc.want {
				t.Fatalf("got %v (reply %q), want code %v", e, resp.Data, tc.want)
			}
		})
	}

	// Both forms reach the actor.
	for _, hd := range []nats.Header{with(), hdr(protocol.HeaderCall, "counter c get 0 5000")} {
		resp, err := raw.RequestMsg(&nats.Msg{Subject: h.Subject(), Header: hd}, 5*time.Second)
		if err != nil || protocol.DecodeError(resp.Header, resp.Data) != nil || string(resp.Data) != "42" {
			t.Fatalf("headers %v: reply %v, %v; want 42", hd, resp, err)
		}
	}

	// A request nobody can answer is dropped, not a crash.
	if err := raw.PublishMsg(&nats.Msg{Subject: h.Subject(), Header: with(), Data: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	// Nothing was lost or changed, and the host still serves.
	if got := call(t, r, counter.Type, "c", "get", ""); got != "42" {
		t.Fatalf("after bad input the total is %s, want 42", got)
	}
}

func TestIDsAreOpaque(t *testing.T) {
	s := natstest.Server(t)
	for range 2 {
		startHost(t, s, host.Config{}, registerCounter)
	}
	r := newRouter(t, s)
	waitMembers(t, r, 2)
	ids := []placement.ActorID{
		"plain", "a.b", "a%2Eb", "a=2Eb", "*", ">", "a.*", "a.>", "with space", " lead", "trail ",
		"tab\there", "new\nline", "cr\rlf", "nul\x00byte", "\x7f", "é", "日本語", "\xff\xfe invalid utf-8",
		"%", "%%", "=", "==", "$KV", "_INBOX.x", "troupe.host.x", placement.ActorID(strings.Repeat("z", placement.MaxActorIDLen)),
	}
	for i, id := range ids {
		call(t, r, counter.Type, id, "add", fmt.Sprint(i+1))
	}
	keys := map[string]placement.ActorID{}
	for i, id := range ids {
		if got := call(t, r, counter.Type, id, "get", ""); got != fmt.Sprint(i+1) {
			t.Errorf("id %q: total %s, want %d (ids collided)", id, got, i+1)
		}
		enc := protocol.EncodeID(string(id))
		if dec, err := protocol.DecodeID(enc); err != nil || dec != string(id) {
			t.Errorf("id %q: header round trip gave %q, %v", id, dec, err)
		}
		if strings.ContainsAny(enc, ".*> \t\r\n") || bytes.ContainsFunc([]byte(enc), func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			t.Errorf("id %q: encoded as %q, not one safe subject token", id, enc)
		}
		key := host.StateKey(counter.Type, id)
		if other, dup := keys[key]; dup {
			t.Errorf("ids %q and %q share state key %q", id, other, key)
		}
		keys[key] = id
	}
}
