package host

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// intake reads the host's subject on goroutines of its own instead of
// nats.go's subscription goroutine, so that a call to an idle actor can run
// its turn on the goroutine that read it: handing every turn to a goroutine
// of its own cost a call about a tenth of its throughput under load, and
// more of its latency one call at a time. An actor may block, so a turn run
// that way must not hold up the requests behind it:
//
//   - One goroutine at a time reads (the reader), so calls enter their
//     mailboxes in the order they arrived.
//   - The reader runs a turn itself ("inline") only for an active actor of a
//     type without state whose mailbox was idle (stateful turns wait for
//     their saves), and only when no other request is waiting to be read
//     or the last turn it ran took under inlineShort: a slower actor's
//     turns would hold up the requests behind them. Every other mailbox
//     starts on its own goroutine, as before.
//   - A turn that asks for its context's Done (to wait on something, as a
//     call to another actor does) hands the role of reader to a new
//     goroutine at once, and so does a watchdog timer once the turn has run
//     for inlineLimit. The old goroutine finishes the actor's mailbox as
//     its mailbox goroutine and ends.
//
// The role of reader passes from goroutine to goroutine, and exactly one
// holds it until the host stops: it counts as one of the host's loops.
type intake struct {
	h    *Host
	msgs chan *nats.Msg
	// base is the origin of since's clock.
	base time.Time
	// since is when the reader's inline turn started (nanoseconds after
	// base, never 0), or 0 when it runs none. Whoever swaps it to 0 decides
	// the turn's fate: the reader, which keeps reading, or the watchdog,
	// which starts a new reader.
	since atomic.Int64
	armed atomic.Bool // the watchdog's timer is set
	timer *time.Timer
	// mark, sent after the subscription is drained, tells the reader to
	// close drained once it reaches it.
	mark    *nats.Msg
	drained chan struct{}
}

// inlineLimit is how long an inline turn may hold up the requests behind
// it before another goroutine takes over reading.
const inlineLimit = 200 * time.Microsecond

// inlineShort is how short a reader's last inline turn must have been for
// it to run the next one inline while other requests wait to be read.
const inlineShort = 100 * time.Microsecond

// intakeQueue is how many requests may wait to be read. nats.go drops
// requests beyond it (the callers time out); the reader is never held up
// for longer than inlineLimit, so only a host that cannot parse requests
// as fast as they come fills it.
const intakeQueue = 1 << 16

func newIntake(h *Host) *intake {
	in := &intake{h: h, msgs: make(chan *nats.Msg, intakeQueue), base: time.Now(), mark: &nats.Msg{}, drained: make(chan struct{})}
	in.timer = time.AfterFunc(time.Hour, in.watch)
	in.timer.Stop()
	return in
}

// start makes the first reader.
func (in *intake) start() {
	in.h.loops.Add(1)
	go in.read()
}

// read is the reader's loop. It returns when the host stops (ending the
// role) or when the watchdog gave the role to another goroutine.
func (in *intake) read() {
	var slot inlineSlot
	short := true // the last turn this goroutine ran took under inlineShort
	for {
		var msg *nats.Msg
		select {
		case msg = <-in.msgs:
		case <-in.h.stop:
			in.h.loops.Done()
			return
		}
		if msg == in.mark {
			close(in.drained)
			continue
		}
		slot.ok = short || len(in.msgs) == 0
		in.h.serveFrom(msg, &slot)
		if a := slot.next; a != nil {
			slot.next = nil
			var still bool
			if short, still = in.runInline(a); !still {
				return // another goroutine reads now
			}
		}
	}
}

// runInline runs a's mailbox on the reader, and reports whether that took
// under inlineShort and whether the reader still holds its role afterwards.
func (in *intake) runInline(a *activation) (short, still bool) {
	start := in.now()
	in.since.Store(start)
	if in.armed.CompareAndSwap(false, true) {
		in.timer.Reset(inlineLimit)
	}
	a.runOn(in, start)
	return in.now()-start < int64(inlineShort), in.since.CompareAndSwap(start, 0)
}

// handOff gives the role of reader to a new goroutine if the inline run
// that started at start still holds it. Any goroutine may call it.
func (in *intake) handOff(start int64) {
	if in.since.CompareAndSwap(start, 0) {
		go in.read() // the role passes: the count of loops stays
	}
}

func (in *intake) now() int64 { return int64(time.Since(in.base)) + 1 }

// watch is the watchdog: it hands the role of reader on when the inline
// turn has run for inlineLimit, and otherwise sets its timer for the
// turn running now, if any.
func (in *intake) watch() {
	if s := in.since.Load(); s != 0 {
		if left := time.Duration(s + int64(inlineLimit) - in.now()); left > 0 {
			in.timer.Reset(left)
			return
		}
		in.handOff(s)
	}
	in.armed.Store(false)
	// A turn that started since the check above found the timer still set.
	if in.since.Load() != 0 && in.armed.CompareAndSwap(false, true) {
		in.timer.Reset(inlineLimit)
	}
}

// waitDrained waits until the reader has taken every request the drained
// subscription had delivered.
func (in *intake) waitDrained(ctx context.Context) {
	select {
	case in.msgs <- in.mark:
	case <-ctx.Done():
		return
	}
	select {
	case <-in.drained:
	case <-ctx.Done():
	}
}

// inlineSlot is where a call's admission leaves the activation the reader
// is to run inline.
type inlineSlot struct {
	ok   bool        // the reader may run a turn: no other request waits
	next *activation // the mailbox to run
}
