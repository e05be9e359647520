package host

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// A call forwarded directly carries the caller's reply subject, so the
// forwarding host hears nothing back, not even the server's no-responders
// status when the owner's subscription is gone (a host that crashed keeps
// its record until its lease expires). The prober finds out: after
// forwarding calls to a host it publishes one probe to the same subject,
// with a reply subject of its own, and then flushes the connection. The
// server handles a connection's messages in order and writes a
// no-responders status to the publisher before the PONG of a later PING, so
// when the flush returns without one for the probe, the owner's
// subscription took every call forwarded before it; the owner answers them.
// With one, the owner is gone:
//
//   - the calls forwarded since the previous probe may or may not have
//     reached it, and may or may not have run, and nobody will answer them:
//     the prober answers each OUTCOME_UNKNOWN at once, instead of leaving
//     the caller to its timeout, except a call with a call id, which it
//     relays through its router with that id (the actor runs it at most
//     once, calls.go);
//   - the host is suspect: calls for its actors are relayed through the
//     router (which waits for the table to drop it and retries on the new
//     owner) until a later probe reaches it again.
//
// One round probes every host forwarded to since the last round, so under
// load a probe and a flush cover many calls.

// probeRetry is how often a suspect host is probed again.
const probeRetry = 100 * time.Millisecond

// probeGap is the least time between two rounds, so that a round covers the
// calls of a millisecond even when they come one at a time: a lost call is
// answered at most about this much later.
const probeGap = time.Millisecond

// probeTimeout bounds the flush of one round. A flush that fails tells
// nothing: the calls are left to their owners.
const probeTimeout = 2 * time.Second

type prober struct {
	h      *Host
	inbox  string         // replies to probes: <inbox>.<round>.<host id>
	status chan *nats.Msg // what arrives on inbox
	sub    *nats.Subscription
	kick   chan struct{}

	mu    sync.Mutex
	round uint64
	hosts map[placement.HostID]*probed
}

// probed is what the prober knows of one host.
type probed struct {
	subject string
	sent    []sentCall // forwarded since its last probe
	suspect bool       // the last probe found no subscriber
	probed  time.Time  // when it was last probed
}

// sentCall is a call forwarded directly and not yet known to have reached
// its owner.
type sentCall struct {
	reply string
	call  gatewayCall
	// again is the call to relay if it reached nobody: set for a call with
	// a call id, which the owner runs at most once (calls.go), so it may be
	// sent again instead of answered OUTCOME_UNKNOWN.
	again *followed
}

func newProber(h *Host) (*prober, error) {
	p := &prober{h: h, inbox: h.nc.NewInbox(), status: make(chan *nats.Msg, 4096),
		kick: make(chan struct{}, 1), hosts: make(map[placement.HostID]*probed)}
	var err error
	if p.sub, err = h.nc.ChanSubscribe(p.inbox+".>", p.status); err != nil {
		return nil, err
	}
	return p, nil
}

// suspect reports whether the last probe of host id found no subscriber.
func (p *prober) suspect(id placement.HostID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.hosts[id]
	return pr != nil && pr.suspect
}

// send publishes msg, a call forwarded to owner, and has the next round
// probe owner after it. It publishes under the lock, so that a round's probe
// always follows the calls it covers.
func (p *prober) send(owner *placement.Member, msg *nats.Msg, c gatewayCall, again *followed) error {
	p.mu.Lock()
	err := p.h.nc.PublishMsg(msg)
	if err == nil {
		pr := p.hosts[owner.ID]
		if pr == nil {
			pr = &probed{}
			p.hosts[owner.ID] = pr
		}
		pr.subject = owner.Subject
		pr.sent = append(pr.sent, sentCall{reply: msg.Reply, call: c, again: again})
	}
	p.mu.Unlock()
	if err == nil {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
	return err
}

// loop runs rounds until stop closes.
func (p *prober) loop(stop <-chan struct{}) {
	defer func() { _ = p.sub.Unsubscribe() }()
	retry := time.NewTicker(probeRetry)
	defer retry.Stop()
	gap := time.NewTimer(0)
	defer gap.Stop()
	for {
		select {
		case <-stop:
			return
		case <-p.kick:
		case <-retry.C:
		}
		p.runRound()
		gap.Reset(probeGap)
		select {
		case <-stop:
			return
		case <-gap.C:
		}
	}
}

// runRound probes every host forwarded to since the last round, and every
// suspect host not probed for probeRetry.
func (p *prober) runRound() {
	batch, round := p.sendProbes()
	if len(batch) == 0 {
		return
	}
	flushed := p.h.nc.FlushTimeout(probeTimeout) == nil
	gone := p.drain(round)
	if !flushed && len(gone) == 0 {
		return // no answer at all: the calls are left to their owners
	}
	p.mu.Lock()
	var lost []sentCall
	for id, calls := range batch {
		pr := p.hosts[id]
		switch {
		case gone[id]:
			pr.suspect = true
			lost = append(lost, calls...)
		case flushed:
			pr.suspect = false
		}
		if !pr.suspect && len(pr.sent) == 0 {
			delete(p.hosts, id)
		}
	}
	p.mu.Unlock()
	for _, c := range lost {
		if c.again != nil {
			// It carries a call id: the router sends it to the owner again
			// with that id, and the actor runs it at most once.
			p.h.obs.forwarded(forwardRelayed)
			p.h.eng.turns.add()
			go p.h.relay(*c.again)
			continue
		}
		p.h.obs.forwarded(forwardLost)
		p.h.fail(&nats.Msg{Reply: c.reply}, protocol.Errorf(protocol.CodeOutcomeUnknown,
			"%s %s.%s: the host the call was forwarded to went away with it; it may or may not have run",
			c.call.typ, protocol.EncodeID(string(c.call.id)), c.call.method))
	}
}

// sendProbes starts a round: it publishes the probes and returns, by host,
// the calls each probe covers.
func (p *prober) sendProbes() (map[placement.HostID][]sentCall, uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.round++
	prefix := p.inbox + "." + strconv.FormatUint(p.round, 10) + "."
	now := time.Now()
	var batch map[placement.HostID][]sentCall
	for id, pr := range p.hosts {
		if len(pr.sent) == 0 && (!pr.suspect || now.Sub(pr.probed) < probeRetry) {
			continue
		}
		if _, in := p.h.w.Table().Member(id); !in {
			// The host left the table: nobody follows it any more. Calls
			// sent to it stay unconfirmed in this round's probe.
			if len(pr.sent) == 0 {
				delete(p.hosts, id)
				continue
			}
		}
		probe := &nats.Msg{Subject: pr.subject, Reply: prefix + string(id), Header: nats.Header{protocol.HeaderProbe: {"1"}}}
		if err := p.h.nc.PublishMsg(probe); err != nil {
			continue // the next round tries again
		}
		if batch == nil {
			batch = make(map[placement.HostID][]sentCall)
		}
		batch[id] = pr.sent
		pr.sent, pr.probed = nil, now
	}
	return batch, p.round
}

// drain returns the hosts whose probe of round got the no-responders
// status. Every status for the round's probes arrived before the flush
// returned; older ones are dropped.
func (p *prober) drain(round uint64) map[placement.HostID]bool {
	var gone map[placement.HostID]bool
	prefix := p.inbox + "." + strconv.FormatUint(round, 10) + "."
	for {
		select {
		case m := <-p.status:
			id, ok := strings.CutPrefix(m.Subject, prefix)
			if !ok || len(m.Data) != 0 || m.Header.Get("Status") != "503" {
				continue
			}
			if gone == nil {
				gone = make(map[placement.HostID]bool)
			}
			gone[placement.HostID(id)] = true
		default:
			return gone
		}
	}
}
