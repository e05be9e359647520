// Package router is the caller's side of troupe: it finds the host that owns
// an actor at the current table generation and sends it the call as a NATS
// request, retrying while the table moves under it, until the call's
// deadline.
//
// A Router follows the membership bucket with a placement.Watcher, so a
// lookup is a hash over the local table, not a network round trip. Calls
// carry the caller's generation; a host that no longer owns the actor answers
// MOVED with its own generation, and the router waits for its watcher to
// catch up and calls again. A host that vanished (no responders) makes the
// router wait for the next table change, with backoff. Every call ends with a
// reply or an *Error before its context's deadline.
package router

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/troupe-dev/troupe/internal/jsutil"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// DefaultTimeout bounds a call whose context has no deadline.
const DefaultTimeout = 5 * time.Second

// Config configures a Router. The zero value means the defaults.
type Config struct {
	// Bucket is the membership bucket; "" means placement.DefaultBucket.
	Bucket string
	// DefaultTimeout bounds calls whose context has no deadline; 0 means
	// DefaultTimeout.
	DefaultTimeout time.Duration
	// Watcher, if set, is a membership watcher the router shares (a host
	// passes its own); the router then does not stop it on Close.
	Watcher *placement.Watcher
	// Metrics, if set, receives the router's Prometheus metrics; nil means
	// none. A registry may be shared with a host (the series are shared).
	Metrics prometheus.Registerer
	// TracerProvider, if set, traces calls and sends W3C trace context to
	// the hosts; nil means no tracing.
	TracerProvider trace.TracerProvider
	// SubjectPrefix starts the subjects of reminders; "" means "troupe".
	SubjectPrefix string
	// ReminderStream is the stream that holds reminders; "" means
	// DefaultReminderStream.
	ReminderStream string
	// AttemptTimeout bounds the first attempt of a call that has a call id
	// (every call, unless WithoutCallID). An attempt that gets no answer in
	// time (its host died holding it, or the link was cut) is sent again
	// with the same id, until the call's deadline, and the next attempt
	// waits twice as long; an attempt that was answered (UNAVAILABLE, no
	// responders) leaves the timeout as it was. 0 means
	// DefaultAttemptTimeout.
	AttemptTimeout time.Duration
}

// DefaultAttemptTimeout is Config.AttemptTimeout's default.
const DefaultAttemptTimeout = time.Second

// Router sends calls to actors. It is safe for concurrent use.
type Router struct {
	nc      *nats.Conn
	w       *placement.Watcher
	ownW    bool
	timeout time.Duration
	obs     *observer // nil: no metrics or tracing
	cfg     Config
	rem     reminderStream
	local   Local // set by NewLocal: calls go to it, not to NATS
}

// New returns a Router over nc. Unless cfg.Watcher is set it starts its own
// watcher, which needs the membership bucket to exist (a host creates it).
func New(ctx context.Context, nc *nats.Conn, cfg Config) (*Router, error) {
	r := &Router{nc: nc, w: cfg.Watcher, timeout: cfg.DefaultTimeout, cfg: cfg}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	if r.cfg.AttemptTimeout <= 0 {
		r.cfg.AttemptTimeout = DefaultAttemptTimeout
	}
	obs, err := newObserver(cfg)
	if err != nil {
		return nil, fmt.Errorf("router: metrics: %w", err)
	}
	r.obs = obs
	if r.w != nil {
		return r, nil
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	kv, err := placement.OpenBucket(ctx, js, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("router: %w (is a troupe host running?)", err)
	}
	if r.w, err = placement.WatchMembers(ctx, kv); err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	r.w.FollowReconnects(nc)
	r.ownW = true
	return r, nil
}

// Close stops the router's own watcher. Calls in flight fail.
func (r *Router) Close() {
	if r.ownW {
		r.w.Stop()
	}
}

// Table is the placement table the router routes by.
func (r *Router) Table() *placement.Table {
	if r.w == nil {
		return emptyTable
	}
	return r.w.Table()
}

var emptyTable = placement.NewTable(0, nil)

// Watcher is the membership watcher the router routes by.
func (r *Router) Watcher() *placement.Watcher { return r.w }

// CallOption tweaks one call.
type CallOption interface{ apply(*callOptions) }

type callOptions struct {
	header nats.Header
	callID string // WithCallID
	noID   bool   // WithoutCallID
}

type callOptionFunc func(*callOptions)

func (f callOptionFunc) apply(o *callOptions) { f(o) }

// WithHeader adds a header to the request the actor's host receives.
// Headers named Troupe-* are reserved and overwritten.
func WithHeader(key, value string) CallOption {
	return callOptionFunc(func(o *callOptions) {
		if o.header == nil {
			o.header = nats.Header{}
		}
		o.header.Add(key, value)
	})
}

// WithCallID gives the call the id id (1–64 printable ASCII characters, no
// space) instead of a new one: a caller that retries a call itself, across
// Calls or processes, passes the same id each time, so that a stateful
// actor runs it at most once (PROTOCOL.md, "Idempotent calls").
func WithCallID(id string) CallOption {
	return callOptionFunc(func(o *callOptions) { o.callID, o.noID = id, false })
}

// WithoutCallID sends the call without an id: the host does not deduplicate
// it, and the router does not retry it after OUTCOME_UNKNOWN or an attempt
// that got no answer (it waits for one answer until the deadline), as
// before call ids existed.
func WithoutCallID() CallOption {
	return callOptionFunc(func(o *callOptions) { o.callID, o.noID = "", true })
}

// NewCallID returns a new call id: 128 random bits, base64url without
// padding (22 characters).
func NewCallID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Call runs method on the actor (typ, id) with payload and returns its reply.
// Errors are *Error values (use errors.Is with the Err* sentinels). If ctx
// has no deadline the router's default timeout applies. The payload is not
// retained after Call returns.
//
// Every call carries a call id, new for each Call unless WithCallID or
// WithoutCallID says otherwise, and every attempt of the call sends the same
// one. A stateful actor runs a call id's turn at most once, so the router
// retries what it could not retry otherwise: a reply of OUTCOME_UNKNOWN, and
// an attempt that got no answer within Config.AttemptTimeout (doubling after
// each such attempt), until the deadline.
func (r *Router) Call(ctx context.Context, typ placement.ActorType, id placement.ActorID, method string, payload []byte, opts ...CallOption) ([]byte, error) {
	if err := validateCall(typ, id, method); err != nil {
		return nil, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(r.timeout)
		// A context that can never end (Background) needs no derived context:
		// the requests are timed instead, which is measurably cheaper.
		if ctx.Done() != nil {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
	}
	c := call{r: r, typ: typ, id: id, method: method, payload: payload, deadline: deadline}
	var noID bool
	c.header, c.callID, noID = optionsOf(opts)
	if c.callID == "" && !noID {
		if src, ok := ctx.Value(CallChainKey).(CallIDSource); ok {
			c.callID = src.NextCallID()
		}
		if c.callID == "" {
			c.callID = NewCallID()
		}
	} else if c.callID != "" && !protocol.ValidCallID(c.callID) {
		return nil, Errorf(CodeBadRequest, "call id %q: want 1–%d printable ASCII characters without spaces", c.callID, protocol.MaxCallID)
	}
	if ch, ok := ChainFrom(ctx); ok {
		c.chain, c.path = ch.ID, FormatPath(ch.Path)
	}
	if r.local != nil {
		return c.localCall(ctx)
	}
	if r.obs != nil {
		return r.obs.call(ctx, &c)
	}
	return c.run(ctx)
}

// headerOf is the header the options add, or nil. (Options applied to a
// local value would move it to the heap on every call, options or not.)
func headerOf(opts []CallOption) nats.Header {
	h, _, _ := optionsOf(opts)
	return h
}

// optionsOf is what the options set: the header they add (or nil), the call
// id and whether the call is to have none.
func optionsOf(opts []CallOption) (nats.Header, string, bool) {
	if len(opts) == 0 {
		return nil, "", false
	}
	o := &callOptions{}
	for _, opt := range opts {
		opt.apply(o)
	}
	return o.header, o.callID, o.noID
}

func validateCall(typ placement.ActorType, id placement.ActorID, method string) error {
	if err := typ.Validate(); err != nil {
		return Errorf(CodeUnknownType, "%v", err)
	}
	if err := id.Validate(); err != nil {
		return Errorf(CodeInvalidID, "%v", err)
	}
	if err := placement.ValidateName("method", method); err != nil {
		return Errorf(CodeInvalidMethod, "%v", err)
	}
	return nil
}

// call is one Call in progress.
type call struct {
	r       *Router
	typ     placement.ActorType
	id      placement.ActorID
	method  string
	payload []byte
	header  nats.Header
	backoff time.Duration
	// callID is the call's id, "" for none (WithoutCallID); attempt bounds
	// the next attempt when it has one.
	callID  string
	attempt time.Duration
	// chain and path are the call chain's HeaderChain and HeaderChainPath
	// values, when the call is made from inside a turn.
	chain, path string
	// deadline bounds the call; ctx carries it too, unless ctx can never end.
	deadline time.Time
	trace    context.Context // the call's span, when traced
	// last is the last retried error reply, told in the deadline's error so
	// that a call that kept meeting the same fault (no worker running, say)
	// says which.
	last *Error
}

// lastAttempt adds the last retried error, if any, to a deadline error.
func (c *call) lastAttempt(e *Error) *Error {
	if c.last != nil && e.Code == CodeDeadlineExceeded {
		e.Message += "; the last attempt: " + c.last.Error()
	}
	return e
}

// Retry pacing when a host vanished or is busy handing over.
const (
	minBackoff = 2 * time.Millisecond
	maxBackoff = 250 * time.Millisecond
)

func (c *call) run(ctx context.Context) ([]byte, error) {
	for {
		table := c.r.w.Table()
		owner, ok := table.Owner(c.typ, c.id)
		if !ok {
			return nil, Errorf(CodeNoHost, "no live host serves actor type %q", c.typ)
		}
		req, err := c.request(owner, table.Generation())
		if err != nil {
			return nil, err
		}
		resp, err := c.send(ctx, &req.msg)
		req.release()
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			c.retried("no_responders")
			err = c.wait(ctx, table) // the owner is gone: wait for the table to drop it
		case jsutil.NotSent(err):
			// This client's link is down: the request never left, so it
			// is sent again once the link is back, until the deadline.
			c.retried("not_sent")
			err = c.wait(ctx, table)
		case err != nil && c.unanswered(ctx, err):
			// The host may have died holding it, or the link was cut: the
			// same id again, to whoever owns the actor now, waiting twice
			// as long for it in case the host was only slow.
			c.retried("no_answer")
			c.attempt *= 2
			err = nil
		case err != nil:
			return nil, c.failure(ctx, err)
		default:
			e := DecodeError(resp.Header, resp.Data)
			if e == nil {
				return resp.Data, nil
			}
			err = c.retryable(ctx, e, table)
		}
		if err != nil {
			return nil, err
		}
	}
}

// send makes one request, bounded by ctx and the call's deadline, and, for
// a call with an id, by the attempt's timeout: AttemptTimeout, doubled after
// each attempt that got no answer (run). Attempts that were answered (MOVED,
// UNAVAILABLE) or found nobody listening leave it as it is, so a call that
// waited out a host's restart does not then give its one lost attempt the
// rest of its deadline.
func (c *call) send(ctx context.Context, msg *nats.Msg) (*nats.Msg, error) {
	left := time.Until(c.deadline)
	if c.callID != "" {
		if c.attempt == 0 {
			c.attempt = c.r.cfg.AttemptTimeout
		}
		if c.attempt < left {
			if ctx.Done() == nil {
				return c.r.nc.RequestMsg(msg, c.attempt)
			}
			actx, cancel := context.WithTimeout(ctx, c.attempt)
			defer cancel()
			return c.r.nc.RequestMsgWithContext(actx, msg)
		}
	}
	if ctx.Done() == nil {
		return c.r.nc.RequestMsg(msg, left)
	}
	return c.r.nc.RequestMsgWithContext(ctx, msg)
}

// unanswered reports whether err ended an attempt of a call with an id
// that got no answer, while the call still has time: it is to be sent
// again.
func (c *call) unanswered(ctx context.Context, err error) bool {
	return c.callID != "" && ctx.Err() == nil && time.Now().Before(c.deadline) &&
		(errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded))
}

// request builds the NATS request for one attempt to owner. The caller
// releases it once sent.
func (c *call) request(owner *placement.Member, gen uint64) (*request, error) {
	left := time.Until(c.deadline)
	if left <= 0 {
		return nil, c.lastAttempt(Errorf(CodeDeadlineExceeded, "deadline passed before the call was sent: %w", context.DeadlineExceeded))
	}
	req := requests.Get().(*request)
	h := req.msg.Header
	for k, v := range c.header {
		h[k] = v
	}
	id, timeout := EncodeID(string(c.id)), left.Milliseconds()+1
	if owner.Protocol >= protocol.CallHeaderVersion {
		// The call in one header, not five: the host's client parses every
		// header into its map.
		var buf [160]byte
		b := protocol.AppendCall(buf[:0], string(c.typ), id, c.method, gen, timeout)
		if c.callID != "" {
			b = protocol.AppendCallID(b, c.callID)
		}
		req.call[0] = string(b)
		h[HeaderCall] = req.call[:1:1]
	} else { // an older host: the five headers
		v := &req.call
		v[0], v[1], v[2] = string(c.typ), id, c.method
		v[3], v[4] = strconv.FormatUint(gen, 10), strconv.FormatInt(timeout, 10)
		h[HeaderType], h[HeaderID], h[HeaderMethod] = v[0:1:1], v[1:2:2], v[2:3:3]
		h[HeaderGeneration], h[HeaderTimeout] = v[3:4:4], v[4:5:5]
		if c.callID != "" {
			v[5] = c.callID
			h[protocol.HeaderCallID] = v[5:6:6]
		}
	}
	if c.chain != "" {
		h[HeaderChain], h[HeaderChainPath] = []string{c.chain}, []string{c.path}
	}
	c.inject(h)
	req.msg.Subject, req.msg.Data = owner.Subject, c.payload
	if max := c.r.nc.MaxPayload(); max > 0 && int64(len(c.payload)+headerSize(h, req.call[0])) > max {
		req.release()
		return nil, Errorf(CodePayloadTooLarge, "payload of %d bytes exceeds the server's max payload of %d bytes (with headers)", len(c.payload), max)
	}
	return req, nil
}

// request is one attempt's request message. Requests are recycled: nats.go
// encodes a message while sending it and keeps no reference to it, and a
// fresh message, header map and header value per call were a measurable
// share of a call's allocations.
type request struct {
	msg  nats.Msg
	call [6]string // the HeaderCall value, or the five headers' values and the call id
}

var requests = sync.Pool{New: func() any { return &request{msg: nats.Msg{Header: make(nats.Header, 8)}} }}

// release empties req and returns it to the pool.
func (req *request) release() {
	clear(req.msg.Header)
	req.msg.Subject, req.msg.Data, req.call = "", nil, [6]string{}
	requests.Put(req)
}

// headerSize is the encoded size of h, whose HeaderCall, if it has one,
// is call.
func headerSize(h nats.Header, call string) int {
	n := len("NATS/1.0\r\n\r\n")
	if _, one := h[HeaderCall]; one && len(h) == 1 {
		return n + len(HeaderCall) + len(call) + 4
	}
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// retryable decides what an error reply means for the call: nil to try
// again, or the error to return.
func (c *call) retryable(ctx context.Context, e *Error, table *placement.Table) error {
	switch e.Code {
	case CodeMoved:
		c.retried("moved")
		if e.Generation > c.r.w.Applied() {
			wctx, cancel := context.WithDeadline(ctx, c.deadline)
			err := c.r.w.WaitApplied(wctx, e.Generation)
			cancel()
			if err != nil {
				return c.failure(ctx, err)
			}
			c.backoff = 0
			return nil
		}
		return c.wait(ctx, table)
	case CodeUnavailable, CodeStateConflict:
		c.retried(outcomeOf(e.Code))
		c.last = e
		return c.wait(ctx, table)
	case CodeOutcomeUnknown:
		if c.callID != "" {
			// The store holds the change exactly when it holds the
			// call's record: asked again, the host either answers from
			// the record or runs the call for the first time.
			c.retried(outcomeOf(e.Code))
			return c.wait(ctx, table)
		}
	}
	return e
}

// wait pauses before another attempt: until the table changes or the backoff
// runs out, whichever is first, bounded by ctx.
func (c *call) wait(ctx context.Context, table *placement.Table) error {
	c.backoff = min(max(2*c.backoff, minBackoff), maxBackoff)
	d := c.backoff/2 + rand.N(c.backoff/2+1)
	if left := time.Until(c.deadline); left <= 0 {
		return c.failure(ctx, context.DeadlineExceeded)
	} else if d > left {
		d = left
	}
	t := time.NewTimer(d)
	defer t.Stop()
	changed := c.r.w.Changed()
	if c.r.w.Table() != table {
		return nil
	}
	select {
	case <-ctx.Done():
		return c.failure(ctx, ctx.Err())
	case <-changed:
	case <-t.C:
	}
	return nil
}

// failure turns a transport or context error into an *Error.
func (c *call) failure(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil || !time.Now().Before(c.deadline) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		cause := ctx.Err()
		if cause == nil {
			cause = context.DeadlineExceeded
		}
		return c.lastAttempt(Errorf(CodeDeadlineExceeded, "%s %s.%s: %w", c.typ, EncodeID(string(c.id)), c.method, cause))
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, placement.ErrWatcherStopped):
		return Errorf(CodeUnavailable, "%w", err)
	}
	return Errorf(CodeInternal, "%w", err)
}
