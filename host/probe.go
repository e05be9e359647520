package host

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// A call forwarded directly carries the caller's reply subject, so the
// forwarding host hears nothing back, not even the server's no-responders
// status when the owner's subscription is gone (a host that crashed keeps
// its record until its lease expires). The prober finds out: after
// forwarding calls to a host it publishes one probe to the same subject,
// with a reply subject of its own, and waits for the answer. The owner
// answers a probe from the goroutine that reads its subject (serveFrom),
// which reads in order, so its answer means its process read every call
// forwarded before the probe; it answers them. Anything else means it
// did not:
//
//   - the server's no-responders status: the owner's subscription is gone;
//   - no answer within probeTimeout: the server still routes the subject to
//     a connection whose process is gone (the server notices a crashed
//     host's connection a moment after its process dies, and only when its
//     pings time out after its machine dies or is cut off), or the owner
//     has not read the calls in that time (it is stuck, or its subscription
//     overflowed and dropped them). The server's subscription taking a call
//     does not mean the owner will answer it. An owner that is only slow
//     may answer too: the caller takes the first answer, and a call with an
//     id runs once.
//
// Then:
//
//   - the calls forwarded since the previous probe may or may not have
//     reached the owner, and may or may not have run, and nobody may answer
//     them: the prober answers each OUTCOME_UNKNOWN, instead of leaving the
//     caller to its timeout, except a call with a call id, which it relays
//     through its router with that id (the actor runs it at most once,
//     calls.go; the router treats an attempt that got no answer in time the
//     same way);
//   - the host is suspect: calls for its actors are relayed through the
//     router (which waits for the table to drop it and retries on the new
//     owner) until a later probe is answered again.
//
// One round probes every host forwarded to since the last round, so under
// load a probe and its answer cover many calls.

// probeRetry is how often a suspect host is probed again.
const probeRetry = 100 * time.Millisecond

// probeGap is the least time between two rounds, so that a round covers the
// calls of a millisecond even when they come one at a time: a lost call is
// answered at most about this much later.
const probeGap = time.Millisecond

// probeTimeout is how long a round waits for the answers to its probes: as
// long as a router's first attempt (router.DefaultAttemptTimeout) waits
// for an answer before it sends a call with an id again.
const probeTimeout = router.DefaultAttemptTimeout

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
	suspect bool       // the last probe got no answer from the host
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

// suspect reports whether the last probe of host id got no answer from it.
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

// loop runs rounds until stop closes: one when a call was forwarded, and
// one probeRetry after the last while a host is suspect. A host that forwards
// nothing wakes for nothing.
func (p *prober) loop(stop <-chan struct{}) {
	defer func() { _ = p.sub.Unsubscribe() }()
	retry := time.NewTimer(probeRetry)
	defer retry.Stop()
	retry.Stop()
	gap := time.NewTimer(0)
	defer gap.Stop()
	for {
		select {
		case <-stop:
			return
		case <-p.kick:
		case <-retry.C:
		}
		p.runRound(stop)
		retry.Stop()
		if p.anySuspect() {
			retry.Reset(probeRetry)
		}
		gap.Reset(probeGap)
		select {
		case <-stop:
			return
		case <-gap.C:
		}
	}
}

// anySuspect reports whether the last probe of some host got no answer.
func (p *prober) anySuspect() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.hosts {
		if pr.suspect {
			return true
		}
	}
	return false
}

// runRound probes every host forwarded to since the last round, and every
// suspect host not probed for probeRetry. It returns early when stop
// closes.
func (p *prober) runRound(stop <-chan struct{}) {
	batch, round := p.sendProbes()
	if len(batch) == 0 {
		return
	}
	took, ok := p.await(round, batch, stop)
	if !ok {
		return // the host stops
	}
	p.mu.Lock()
	var lost []sentCall
	for id, calls := range batch {
		pr := p.hosts[id]
		pr.suspect = !took[id]
		if pr.suspect {
			lost = append(lost, calls...)
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

// await collects the answers to round's probes of the hosts in batch, until
// each host answered or got the no-responders status, or probeTimeout
// passed. It returns the hosts that answered: they took every call the
// round covers. Answers to older rounds, late, are dropped. It reports
// false when stop closed first.
func (p *prober) await(round uint64, batch map[placement.HostID][]sentCall, stop <-chan struct{}) (map[placement.HostID]bool, bool) {
	prefix := p.inbox + "." + strconv.FormatUint(round, 10) + "."
	took := make(map[placement.HostID]bool, len(batch))
	timeout := time.NewTimer(probeTimeout)
	defer timeout.Stop()
	for heard := 0; heard < len(batch); {
		select {
		case m := <-p.status:
			raw, ok := strings.CutPrefix(m.Subject, prefix)
			id := placement.HostID(raw)
			if _, in := batch[id]; !ok || !in || len(m.Data) != 0 {
				continue
			}
			if _, seen := took[id]; seen {
				continue
			}
			heard++
			took[id] = m.Header.Get("Status") != "503" // 503: no responders
		case <-timeout.C:
			return took, true
		case <-stop:
			return nil, false
		}
	}
	return took, true
}
