package host

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/host/internal/sandboxapi"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/router"
)

// The sandbox as package actortest sees it (host/internal/sandboxapi).

func init() {
	sandboxapi.New = func(cfg any, start time.Time) (sandboxapi.Sandbox, error) {
		c, ok := cfg.(Config)
		if !ok {
			return nil, fmt.Errorf("host: sandbox config is %T, want host.Config", cfg)
		}
		if err := c.Validate(); err != nil {
			return nil, err
		}
		return sandboxAPI{newSandbox(c, start)}, nil
	}
}

type sandboxAPI struct{ s *sandbox }

func (x sandboxAPI) Register(typ placement.ActorType, factory any, opts any) error {
	f, ok := factory.(Factory)
	if !ok {
		return fmt.Errorf("host: factory is %T, want host.Factory", factory)
	}
	o, _ := opts.([]TypeOption)
	return x.s.register(typ, f, o)
}

func (x sandboxAPI) SetRouter(r *router.Router) { x.s.rt.r.Store(r) }

func (x sandboxAPI) Call(ctx context.Context, typ placement.ActorType, id placement.ActorID, method string, payload []byte, hdr nats.Header) ([]byte, error) {
	return x.s.call(ctx, typ, id, method, payload, hdr)
}

func (x sandboxAPI) Send(ctx context.Context, typ placement.ActorType, id placement.ActorID, method string, payload []byte, hdr nats.Header) error {
	return x.s.send(ctx, typ, id, method, payload, hdr)
}

func (x sandboxAPI) Stored(typ placement.ActorType, id placement.ActorID) ([]byte, map[string][]byte, uint64) {
	e := x.s.rt.entry(StateKey(typ, id))
	state, keys, _ := e.decode()
	return state, keys, e.rev
}

func (x sandboxAPI) Active(typ placement.ActorType) []placement.ActorID {
	t, ok := x.s.types[typ]
	if !ok {
		return nil
	}
	var ids []placement.ActorID
	t.dir.each(func(a *activation) { ids = append(ids, a.id) })
	slices.Sort(ids)
	return ids
}

func (x sandboxAPI) Deactivate(typ placement.ActorType, id placement.ActorID) {
	x.s.deactivate(typ, id)
}
func (x sandboxAPI) Now() time.Time { return x.s.clock.Now() }

func (x sandboxAPI) AfterFunc(d time.Duration, f func()) func() {
	t := x.s.clock.AfterFunc(d, f)
	return func() { t.Stop() }
}

func (x sandboxAPI) Advance(d time.Duration) { x.s.advance(d) }
func (x sandboxAPI) Close()                  { x.s.close() }
