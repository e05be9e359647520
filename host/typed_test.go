package host_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

type greeting struct {
	Name  string `json:"name"`
	Times int    `json:"times"`
}

type greeted struct {
	Text  string `json:"text"`
	Count int    `json:"count"`
}

// greeter has one JSON method and one protobuf method.
type greeter struct {
	count int
}

var (
	greet = router.NewMethod[greeting, greeted]("greeter", "greet", router.JSON)
	// echo takes a HostRecord and replies it with its version set.
	echo = router.NewMethod[*pb.HostRecord, *pb.HostRecord]("greeter", "echo", router.Proto)
	// helloM is served by a function of the activation's *Self.
	helloM = router.NewMethod[string, string]("hello", "hello", router.Text)
	// greetWrong is greet as a confused caller declares it.
	greetWrong = router.NewMethod[greeting, int]("greeter", "greet", router.JSON)
)

func (g *greeter) Greet(_ context.Context, in greeting) (greeted, error) {
	if in.Name == "" {
		return greeted{}, protocol.AppError("no_name", "greet whom?")
	}
	g.count++
	text := ""
	for range in.Times {
		text += "hello " + in.Name + "! "
	}
	return greeted{Text: text, Count: g.count}, nil
}

func (g *greeter) Echo(_ context.Context, in *pb.HostRecord) (*pb.HostRecord, error) {
	out := proto.Clone(in).(*pb.HostRecord)
	out.Version = "echoed"
	return out, nil
}

func typedHost(t *testing.T) (*router.Router, *nats.Conn) {
	t.Helper()
	s := natstest.Server(t)
	startHost(t, s, host.Config{}, func(h *host.Host) {
		f := host.Typed(func(*host.Self) *greeter { return &greeter{} },
			host.Handle(greet, (*greeter).Greet),
			host.Handle(echo, (*greeter).Echo))
		if err := h.Register("greeter", f, host.NoState()); err != nil {
			t.Fatal(err)
		}
		hello := host.Typed(host.SelfActor, host.Handle(helloM,
			func(self *host.Self, _ context.Context, name string) (string, error) {
				return "hello " + name + " from " + string(self.ID()), nil
			}))
		if err := h.Register("hello", hello); err != nil {
			t.Fatal(err)
		}
		if err := counter.Register(h); err != nil {
			t.Fatal(err)
		}
	})
	return newRouter(t, s), natstest.Connect(t, s)
}

// gw calls through the gateway subject with raw payload bytes, as any NATS
// client would.
func gw(t *testing.T, nc *nats.Conn, typ, id, method string, payload []byte) ([]byte, *protocol.Error) {
	t.Helper()
	subject := protocol.GatewaySubject(protocol.DefaultSubjectPrefix, protocol.ActorType(typ), protocol.ActorID(id), method)
	raw, e := gatewayCall(t, nc, subject, string(payload), nil)
	return []byte(raw), e
}

// Typed methods round-trip through the typed client and through the
// gateway's plain-bytes wire format, with JSON, protobuf and text codecs.
func TestTypedMethodsRoundTrip(t *testing.T) {
	r, nc := typedHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	got, err := greet.Call(ctx, r, "g1", greeting{Name: "ann", Times: 2})
	if err != nil || got != (greeted{Text: "hello ann! hello ann! ", Count: 1}) {
		t.Fatalf("typed greet = %+v, %v", got, err)
	}
	raw, e := gw(t, nc, "greeter", "g1", "greet", []byte(`{"name":"bob","times":1}`))
	if e != nil || string(raw) != `{"text":"hello bob! ","count":2}` {
		t.Fatalf("gateway greet = %s, %v", raw, e)
	}
	// Errors keep their codes; a payload that does not decode is refused
	// before the method runs.
	if _, err := greet.Call(ctx, r, "g1", greeting{}); !errors.Is(err, &protocol.Error{Code: protocol.CodeApplication, AppCode: "no_name"}) {
		t.Fatalf("empty name: %v", err)
	}
	if _, e := gw(t, nc, "greeter", "g1", "greet", []byte(`{"name":`)); !errors.Is(e, protocol.ErrInvalidArgument) {
		t.Fatalf("broken JSON: %v", e)
	}
	if _, err := greetWrong.Call(ctx, r, "g1", greeting{Name: "x", Times: 1}); !errors.Is(err, protocol.ErrInternal) {
		t.Fatalf("reply decoded as the wrong type: %v", err)
	}
	if _, err := router.Invoke[greeting, greeted](ctx, r, router.JSON, "greeter", "g1", "nosuch", greeting{}); !errors.Is(err, protocol.ErrUnknownMethod) {
		t.Fatalf("unknown method: %v", err)
	}

	if s, err := helloM.Call(ctx, r, "h1", "ann"); err != nil || s != "hello ann from h1" {
		t.Fatalf("function method = %q, %v", s, err)
	}

	rec := &pb.HostRecord{HostId: "h9", ActorTypes: []string{"a", "b"}}
	out, err := echo.Call(ctx, r, "g1", rec)
	if err != nil || out.GetHostId() != "h9" || out.GetVersion() != "echoed" || len(out.GetActorTypes()) != 2 {
		t.Fatalf("typed echo = %v, %v", out, err)
	}
	b, _ := proto.Marshal(rec)
	raw, e = gw(t, nc, "greeter", "g1", "echo", b)
	var back pb.HostRecord
	if e != nil || proto.Unmarshal(raw, &back) != nil || back.GetVersion() != "echoed" {
		t.Fatalf("gateway echo = %x, %v", raw, e)
	}
}

// The counter is written with typed methods over the text codec; its wire
// format is still plain decimal text.
func TestCounterTypedKeepsTextWire(t *testing.T) {
	r, nc := typedHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if raw, e := gw(t, nc, "counter", "c1", "add", []byte("3\n")); e != nil || string(raw) != "3" {
		t.Fatalf("gateway add = %q, %v", raw, e)
	}
	if n, err := counter.Add.Call(ctx, r, "c1", 4); err != nil || n != 7 {
		t.Fatalf("typed add = %d, %v", n, err)
	}
	if n, err := counter.Get.Call(ctx, r, "c1", struct{}{}); err != nil || n != 7 {
		t.Fatalf("typed get = %d, %v", n, err)
	}
	if raw, e := gw(t, nc, "counter", "c1", "get", nil); e != nil || string(raw) != "7" {
		t.Fatalf("gateway get = %q, %v", raw, e)
	}
	for _, bad := range []string{"notanumber", "", "1.5"} {
		if _, e := gw(t, nc, "counter", "c1", "add", []byte(bad)); !errors.Is(e, protocol.ErrInvalidArgument) {
			t.Fatalf("add %q: %v, want INVALID_ARGUMENT", bad, e)
		}
	}
}
