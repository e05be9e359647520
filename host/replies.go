package host

import (
	"runtime"
	"sync"

	"github.com/nats-io/nats.go"
)

// replies batches the host's replies. Turns run on many short-lived
// goroutines; if each published its own reply, nats.go's flusher would run
// between them and write every reply with its own system call. Instead turns
// queue their replies, and one goroutine publishes whatever has queued up
// after letting the other runnable turns finish, so one write carries many
// replies. Under light load a reply waits for one scheduler pass.
type replies struct {
	nc      *nats.Conn
	onErr   func(error)
	mu      sync.Mutex
	pending []*nats.Msg
	stopped bool // the loop ended: publish directly
	kick    chan struct{}
}

func newReplies(nc *nats.Conn, onErr func(error)) *replies {
	return &replies{nc: nc, onErr: onErr, kick: make(chan struct{}, 1)}
}

// add queues msg for publishing.
func (r *replies) add(msg *nats.Msg) {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		r.publish([]*nats.Msg{msg})
		return
	}
	r.pending = append(r.pending, msg)
	first := len(r.pending) == 1
	r.mu.Unlock()
	if first {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// take swaps the queue for spare (emptied) and returns what was queued.
func (r *replies) take(spare []*nats.Msg) []*nats.Msg {
	r.mu.Lock()
	defer r.mu.Unlock()
	batch := r.pending
	r.pending = spare[:0]
	return batch
}

// loop publishes queued replies until stop closes; after that, add
// publishes directly.
func (r *replies) loop(stop <-chan struct{}) {
	var batch []*nats.Msg
	for {
		select {
		case <-stop:
			r.mu.Lock()
			r.stopped = true
			r.mu.Unlock()
			r.publish(r.take(batch))
			return
		case <-r.kick:
		}
		runtime.Gosched() // let runnable turns queue their replies first
		batch = r.publish(r.take(batch))
	}
}

func (r *replies) publish(batch []*nats.Msg) []*nats.Msg {
	for i, m := range batch {
		if err := r.nc.PublishMsg(m); err != nil {
			r.onErr(err)
		}
		batch[i] = nil
	}
	return batch
}
