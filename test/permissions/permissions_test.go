// Package permissions_test runs troupe on a NATS server loaded from
// examples/permissions/server.conf: a host with the host user's permissions
// serves counters without a single permissions violation, and the client
// user can call counters through the gateway but cannot reach a host's own
// subject or write the membership bucket.
package permissions_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/hosttest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

const (
	configFile     = "../../examples/permissions/server.conf"
	hostPassword   = "host-secret"
	clientPassword = "client-secret"
)

func TestHostAndClientPermissions(t *testing.T) {
	// The config reads the passwords from the environment.
	t.Setenv("TROUPE_HOST_PASSWORD", hostPassword)
	t.Setenv("TROUPE_CLIENT_PASSWORD", clientPassword)
	s := startServer(t)

	// Two hosts: h1 takes the gateway's calls and forwards those for the
	// counters h2 owns to h2's own subject.
	hostErrs := &asyncErrors{}
	h1 := startHost(t, connect(t, s, "troupe-host", hostPassword, hostErrs), host.Config{ID: "h1"})
	h2 := startHost(t, connect(t, s, "troupe-host", hostPassword, hostErrs), host.Config{ID: "h2", DisableGateway: true})

	clientErrs := &asyncErrors{}
	cnc := connect(t, s, "troupe-client", clientPassword, clientErrs)

	// The client calls counters through the gateway.
	forwarded := 0
	for i := range 10 {
		id := fmt.Sprint("c", i)
		if got := gatewayCall(t, cnc, protocol.GatewaySubject("troupe", counter.Type, placement.ActorID(id), "add"), "5"); got != "5" {
			t.Fatalf("add 5 to %s = %s, want 5", id, got)
		}
		if o, _ := h1.Router().Table().Owner(counter.Type, placement.ActorID(id)); o.ID == h2.ID() {
			forwarded++
		}
	}
	if forwarded == 0 {
		t.Fatal("h2 owns none of the counters: nothing was forwarded")
	}
	if got := gatewayCall(t, cnc, "troupe.call.counter.c1.get", ""); got != "5" {
		t.Fatalf("get = %s, want 5", got)
	}

	// It sets a reminder through the gateway: in a second, it adds 1 to c1.
	rem := &nats.Msg{Subject: "troupe.reminder.set.counter.c1.bump", Header: nats.Header{}, Data: []byte("1")}
	rem.Header.Set(host.HeaderSchedule, router.At(time.Now().Add(time.Second)))
	rem.Header.Set(router.HeaderReminderMethod, "add")
	if resp, err := cnc.RequestMsg(rem, 5*time.Second); err != nil || router.DecodeError(resp.Header, resp.Data) != nil {
		t.Fatalf("set a reminder through the gateway: %v %v", err, resp)
	}
	deadline := time.Now().Add(10 * time.Second)
	for gatewayCall(t, cnc, "troupe.call.counter.c1.get", "") != "6" {
		if time.Now().After(deadline) {
			t.Fatal("the reminder did not add 1 to c1 within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	gatewayCall(t, cnc, "troupe.call.counter.c1.add", "-1")

	// It cannot call a host directly, another actor type, or the JetStream
	// API, and it cannot write the membership bucket: the server refuses
	// each publish with a permissions violation.
	hostSubject := h2.Subject()
	if _, err := cnc.Request(hostSubject, []byte("1"), 500*time.Millisecond); err == nil {
		t.Fatalf("request to %s answered", hostSubject)
	}
	clientErrs.wait(t, "Publish to \""+hostSubject+"\"")

	if _, err := cnc.Request("troupe.call.other.x.get", nil, 500*time.Millisecond); err == nil {
		t.Fatal("gateway call to another actor type answered")
	}
	clientErrs.wait(t, `Publish to "troupe.call.other.x.get"`)

	js, err := jetstream.New(cnc)
	if err != nil {
		t.Fatal(err)
	}
	jctx, jcancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	if _, err := js.KeyValue(jctx, placement.DefaultBucket); err == nil {
		t.Error("the client bound to the membership bucket")
	}
	jcancel()
	clientErrs.wait(t, `Publish to "$JS.API.STREAM.INFO.KV_troupe_placement"`)

	forged := protocol.KVSubject(placement.DefaultBucket, placement.HostKey("x"))
	jctx, jcancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
	if _, err := js.Publish(jctx, forged, []byte("forged host record")); err == nil {
		t.Error("the client wrote a membership record")
	}
	jcancel()
	clientErrs.wait(t, `Publish to "`+forged+`"`)
	if err := cnc.Publish(forged, []byte("forged host record")); err != nil {
		t.Fatal(err)
	}
	_ = cnc.Flush()
	clientErrs.wait(t, `Publish to "`+forged+`"`)

	// Nothing the client tried reached the bucket. (This reader has a
	// connection of its own, so that its requests do not count as the
	// hosts'.)
	js, err = jetstream.New(connect(t, s, "troupe-host", hostPassword, &asyncErrors{}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, protocol.KVStream(placement.DefaultBucket))
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(forged))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[forged]; n != 0 {
		t.Errorf("the membership bucket holds %d messages on %s", n, forged)
	}

	// A graceful leave, and a new host joining under the id that left (over
	// its purge marker), need no more than the host user may do either.
	if err := h1.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	h1 = startHost(t, connect(t, s, "troupe-host", hostPassword, hostErrs), host.Config{ID: "h1"})
	if got := gatewayCall(t, cnc, "troupe.call.counter.c1.add", "1"); got != "6" {
		t.Fatalf("add 1 after the restart = %s, want 6", got)
	}
	for _, h := range []*host.Host{h1, h2} {
		if err := h.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if errs := hostErrs.list(); len(errs) > 0 {
		t.Errorf("the host user lacks permissions: %v", errs)
	}
}

// startHost starts a counter host on nc.
func startHost(t *testing.T, nc *nats.Conn, cfg host.Config) *host.Host {
	t.Helper()
	return hosttest.Start(t, nc, cfg, counter.Register)
}

// startServer starts a server from the example config, on a random loopback
// port and a temporary store.
func startServer(t *testing.T) *server.Server {
	t.Helper()
	opts, err := server.ProcessConfigFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	opts.Host = "127.0.0.1"
	opts.Port = server.RANDOM_PORT
	opts.StoreDir = t.TempDir()
	opts.NoSigs, opts.NoLog = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("server not ready for connections within 10s")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

func connect(t *testing.T, s *server.Server, user, password string, errs *asyncErrors) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(user, password), nats.ErrorHandler(errs.handle))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// gatewayCall makes a plain NATS request to a gateway subject.
func gatewayCall(t *testing.T, nc *nats.Conn, subject, payload string) string {
	t.Helper()
	resp, err := nc.Request(subject, []byte(payload), 5*time.Second)
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	if e := router.DecodeError(resp.Header, resp.Data); e != nil {
		t.Fatalf("request %s: %v", subject, e)
	}
	return string(resp.Data)
}

// asyncErrors collects the permissions violations a connection's error
// handler receives.
type asyncErrors struct {
	mu      sync.Mutex
	errs    []error
	changed chan struct{}
}

func (a *asyncErrors) handle(_ *nats.Conn, _ *nats.Subscription, err error) {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.errs = append(a.errs, err)
	if a.changed != nil {
		close(a.changed)
		a.changed = nil
	}
}

func (a *asyncErrors) list() []error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]error(nil), a.errs...)
}

// wait waits until a violation whose text contains want has arrived.
func (a *asyncErrors) wait(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		a.mu.Lock()
		for _, err := range a.errs {
			if strings.Contains(err.Error(), want) {
				a.mu.Unlock()
				return
			}
		}
		if a.changed == nil {
			a.changed = make(chan struct{})
		}
		ch := a.changed
		a.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no permissions violation containing %q; got %v", want, a.list())
		}
	}
}
