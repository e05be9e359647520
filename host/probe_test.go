package host

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// A host whose probe went unanswered is probed again every probeRetry, with
// no call forwarded to it meanwhile, until it answers; a prober with no
// suspect host runs no rounds.
func TestASuspectHostIsProbedAgainUntilItAnswers(t *testing.T) {
	s := natstest.Server(t)
	a := startOn(t, s, Config{ID: "a"}, registerRec(make(chan turnSeen, 1), nil))
	// A member nobody answers for yet: a record without a protocol version,
	// which no monitor removes.
	nc := natstest.Connect(t, s)
	rec, err := proto.Marshal(&pb.HostRecord{HostId: "ghost", Subject: "test.ghost", ActorTypes: []string{"other"},
		State: pb.HostState_HOST_STATE_ACTIVE, Incarnation: "i1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := natstest.Members(t, nc).Put(context.Background(), placement.HostKey("ghost"), rec); err != nil {
		t.Fatal(err)
	}
	waitTable(t, a, 2)
	ghost := &placement.Member{ID: "ghost", Subject: "test.ghost"}
	msg := &nats.Msg{Subject: ghost.Subject, Reply: a.nc.NewInbox()}
	if err := a.probe.send(ghost, msg, gatewayCall{typ: "rec", id: "x", method: "m"}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ghost to be suspect", func() bool { return a.probe.suspect("ghost") })

	// Something answers on the ghost's subject now, as a host that was
	// only slow would: the next retry finds it.
	probed := make(chan struct{}, 16)
	if _, err := nc.Subscribe(ghost.Subject, func(m *nats.Msg) {
		if _, probe := m.Header[protocol.HeaderProbe]; probe {
			_ = m.Respond(nil)
			probed <- struct{}{}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-probed:
	case <-time.After(10 * probeRetry):
		t.Fatalf("the suspect host was not probed again within %v", 10*probeRetry)
	}
	waitFor(t, "the ghost to be no longer suspect", func() bool { return !a.probe.suspect("ghost") })
	select {
	case <-probed:
		t.Fatal("a host no longer suspect was probed again")
	case <-time.After(3 * probeRetry):
	}
}

// waitFor polls cond until it holds, for up to 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
