package relay_test

import (
	"context"
	"testing"

	"github.com/troupe-dev/troupe/examples/relay"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/host/actortest"
)

// TestRelayCallsTheTarget stands a Go actor in for jsproxy (whose own tests
// run it with a JavaScript worker: test/nodeclients) and checks that relay
// passes its calls on, to the same id, and refuses other methods.
func TestRelayCallsTheTarget(t *testing.T) {
	kit := actortest.New(t)
	kit.Register(relay.Type, relay.New)
	kit.Register(relay.Target, func(self *host.Self) host.Actor {
		return host.ActorFunc(func(_ context.Context, c host.Call) ([]byte, error) {
			return []byte(string(self.ID()) + " " + c.Method + " " + string(c.Payload)), nil
		})
	})
	for method, want := range map[string]string{"echo": "r1 echo x", "add": "r1 add x"} {
		got, err := kit.Call(relay.Type, "r1", method, []byte("x"))
		if err != nil || string(got) != want {
			t.Errorf("relay %s: %q, %v; want %q", method, got, err, want)
		}
	}
	if _, err := kit.Call(relay.Type, "r1", "other", nil); err == nil {
		t.Error("relay other: no error, want UNKNOWN_METHOD")
	}
}
