package host

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// hostRuntime is the turn engine's runtime over NATS: the host's fence,
// state store, table and subjects.
type hostRuntime struct{ h *Host }

func (r hostRuntime) epoch() epoch               { return r.h.fence.current() }
func (r hostRuntime) mayAct(e epoch) bool        { return r.h.fence.mayAct(e) }
func (r hostRuntime) errFenced() *protocol.Error { return r.h.fence.errFenced() }
func (r hostRuntime) actedUntil(e epoch, now time.Time) time.Time {
	return r.h.fence.actedUntil(e, now)
}

func (r hostRuntime) awaitActivation(ctx context.Context, typ placement.ActorType, id placement.ActorID) error {
	return r.h.awaitActivation(ctx, typ, id)
}

func (r hostRuntime) placed() (string, uint64) {
	return r.h.rec.incarnation(), r.h.w.Table().Generation()
}

func (r hostRuntime) load(ctx context.Context, key string) (stateEntry, error) {
	return r.h.store.load(ctx, key)
}

func (r hostRuntime) save(e epoch, key string, value []byte, hdr nats.Header, rev uint64) (uint64, error) {
	return r.h.store.save(e, key, value, hdr, rev)
}

func (r hostRuntime) maxPayload() int64 { return r.h.nc.MaxPayload() }
func (r hostRuntime) respond(env *envelope, reply *nats.Msg) {
	if reply.Header != nil && follows(env, protocol.Code(replyCode(reply))) {
		r.h.followEnv(env) // a gateway call whose actor moved under it
		return
	}
	r.h.respond(env.msg, reply)
}

func (r hostRuntime) reject(env *envelope, e *protocol.Error) { r.h.failCall(env, e) }
func (r hostRuntime) readmit(env *envelope)                   { r.h.admit(env) }
func (r hostRuntime) router() *router.Router                  { return r.h.router }
