package host_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// keysActor keeps named state keys.
//
//	set k1=v1 k2=v2 ...   sets keys (all in one turn)
//	setfail k=v           sets a key, then fails the turn
//	del k                 deletes a key
//	big k1 k2             sets two keys of 600 KB each
//	unnamed v             sets the unnamed state
//	dump                  replies "unnamed|k1=v1,k2=v2" (keys sorted)
//	visits                counts its calls in a JSON key
func keysActor(self *host.Self) host.Actor {
	return host.ActorFunc(func(_ context.Context, c host.Call) ([]byte, error) {
		args := strings.Fields(string(c.Payload))
		switch c.Method {
		case "set", "setfail":
			for _, kv := range args {
				k, v, _ := strings.Cut(kv, "=")
				if err := self.SetKey(k, []byte(v)); err != nil {
					return nil, protocol.Errorf(protocol.CodeInvalidArgument, "%v", err)
				}
			}
			if c.Method == "setfail" {
				return nil, protocol.AppError("failed", "after setting keys")
			}
		case "del":
			self.DeleteKey(args[0])
		case "big":
			for _, k := range args {
				_ = self.SetKey(k, bytes.Repeat([]byte("x"), 600_000))
			}
			return []byte("big"), nil
		case "unnamed":
			self.SetState([]byte(args[0]))
		case "visits":
			n, _, err := host.GetKey[int](self, "visits", router.JSON)
			if err != nil {
				return nil, err
			}
			if err := host.SetKeyOf(self, "visits", router.JSON, n+1); err != nil {
				return nil, err
			}
		case "dump":
		default:
			return nil, host.UnknownMethod(c)
		}
		var b strings.Builder
		b.Write(self.State())
		b.WriteString("|")
		for i, k := range self.Keys() {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(k + "=" + string(self.Key(k)))
		}
		return []byte(b.String()), nil
	})
}

// keysHost starts a server and a host serving keysActor, and returns a
// router that sees the host.
func keysHost(t *testing.T) (*server.Server, *router.Router) {
	t.Helper()
	s := natstest.Server(t)
	startKeysHost(t, s)
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	return s, r
}

func startKeysHost(t *testing.T, s *server.Server) *host.Host {
	return startHost(t, s, host.Config{}, func(h *host.Host) {
		if err := h.Register("keys", keysActor); err != nil {
			t.Fatal(err)
		}
	})
}

// stateEntry reads an actor's entry in the state bucket with its headers.
func stateEntry(t *testing.T, s *server.Server, id placement.ActorID) *jetstream.RawStreamMsg {
	t.Helper()
	js, _ := jetstream.New(natstest.Connect(t, s))
	ctx := context.Background()
	st, err := js.Stream(ctx, protocol.KVStream(host.DefaultStateBucket))
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, protocol.KVSubject(host.DefaultStateBucket, host.StateKey("keys", id)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Named keys are saved together at the end of a turn, survive the
// activation, and are stored as one pb.ActorState marked with a header; a
// failed turn saves none of them.
func TestStateKeysSavedTogether(t *testing.T) {
	s := natstest.Server(t)
	h := startKeysHost(t, s)
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	if got := call(t, r, "keys", "k", "set", "b=2 a=1 c=3"); got != "|a=1,b=2,c=3" {
		t.Fatalf("set = %q", got)
	}
	call(t, r, "keys", "k", "del", "c")
	if _, err := r.Call(context.Background(), "keys", "k", "setfail", []byte("a=X d=4")); !errors.Is(err, protocol.ErrApplication) {
		t.Fatalf("setfail: %v", err)
	}
	call(t, r, "keys", "k", "unnamed", "u")

	m := stateEntry(t, s, "k")
	if m.Header.Get("Troupe-State") != "keys" {
		t.Fatalf("entry headers %v lack Troupe-State: keys", m.Header)
	}
	var st pb.ActorState
	if err := proto.Unmarshal(m.Data, &st); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range st.Entries {
		names = append(names, e.Name+"="+string(e.Value))
	}
	if got := strings.Join(names, ","); got != "=u,a=1,b=2" {
		t.Fatalf("stored entries %s, want =u,a=1,b=2 (sorted, unnamed first, failed turn absent)", got)
	}

	// A new host (the only one, so the owner) loads every key.
	h.Close()
	r2 := newRouter(t, s)
	startKeysHost(t, s)
	waitMembers(t, r2, 1)
	if got := call(t, r2, "keys", "k", "dump", ""); got != "u|a=1,b=2" {
		t.Fatalf("after restart = %q, want u|a=1,b=2", got)
	}
	if got := call(t, r2, "keys", "v", "visits", ""); got != "|visits=1" {
		t.Fatalf("visits = %q", got)
	}
	if got := call(t, r2, "keys", "v", "visits", ""); got != "|visits=2" {
		t.Fatalf("visits = %q", got)
	}
	if _, err := r2.Call(context.Background(), "keys", "k", "set", []byte("=empty")); !errors.Is(err, protocol.ErrInvalidArgument) {
		t.Fatalf("empty key name: %v", err)
	}
}

// An actor with only unnamed state, changed by calls without a call id (so
// no recorded calls either), is stored exactly as before named keys existed
// (the bytes alone, no header), and such a state is read as the unnamed
// state once the actor starts using keys.
func TestStateKeysKeepUnnamedLayout(t *testing.T) {
	s, r := keysHost(t)
	if _, err := r.Call(context.Background(), "keys", "old", "unnamed", []byte("legacy"), router.WithoutCallID()); err != nil {
		t.Fatal(err)
	}
	m := stateEntry(t, s, "old")
	if string(m.Data) != "legacy" || m.Header.Get("Troupe-State") != "" {
		t.Fatalf("unnamed state stored as %q with headers %v", m.Data, m.Header)
	}
	if got := call(t, r, "keys", "old", "set", "a=1"); got != "legacy|a=1" {
		t.Fatalf("set on an unnamed state = %q", got)
	}
}

// Keys keep the compare-and-set guarantee: a write behind the activation's
// back makes its save fail, and the retry reads the newer state.
func TestStateKeysCompareAndSet(t *testing.T) {
	s, r := keysHost(t)
	call(t, r, "keys", "x", "set", "a=1")
	js, _ := jetstream.New(natstest.Connect(t, s))
	kv, err := js.KeyValue(context.Background(), host.DefaultStateBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), host.StateKey("keys", "x"), []byte("overwritten")); err != nil {
		t.Fatal(err)
	}
	if got := call(t, r, "keys", "x", "set", "b=2"); got != "overwritten|b=2" {
		t.Fatalf("set after a concurrent write = %q, want overwritten|b=2 (the newer state wins)", got)
	}
}

// State that cannot fit in one message is refused with STATE_TOO_LARGE,
// naming the largest keys; the stored state is untouched.
func TestStateKeysTooLarge(t *testing.T) {
	_, r := keysHost(t)
	call(t, r, "keys", "y", "set", "a=1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := r.Call(ctx, "keys", "y", "big", []byte("p q"))
	if !errors.Is(err, protocol.ErrStateTooLarge) || !strings.Contains(err.Error(), `"p" 600000 bytes`) {
		t.Fatalf("got %v, want STATE_TOO_LARGE naming key p", err)
	}
	if got := call(t, r, "keys", "y", "dump", ""); got != "|a=1" {
		t.Fatalf("after refused save = %q, want |a=1", got)
	}
}
