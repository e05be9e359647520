package host

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// Single activation rests on three rules, all enforced here:
//
//   - Handoff: after every table change the host deactivates the actors the
//     new table gives to other hosts (a running turn finishes, calls queued
//     behind it are answered MOVED), then writes its release record for that
//     generation.
//   - Activation: a host activates an actor it gained only once the watcher
//     says no other member can still hold it (placement.Watcher.MayActivate):
//     every previous owner has released, or left. Calls wait in the new
//     activation's mailbox meanwhile, bounded by their deadlines.
//   - Fencing: a turn starts, and a state save is sent, only while the
//     host's lease is valid (placement.Lease.Valid) and the activation
//     belongs to the host's current incarnation. A host that lost its lease
//     drops every activation and joins again as a new incarnation.

// awaitActivation blocks until actor (typ, id) may be activated: the table gives it to this
// host and no other member can still hold it. It fails with MOVED when the
// table gives the actor to another host, and when ctx ends.
func (h *Host) awaitActivation(ctx context.Context, typ placement.ActorType, id placement.ActorID) error {
	for {
		t := h.w.Table()
		if !h.owns(t, typ, id) {
			return h.errMoved(t)
		}
		ok, wake := h.w.ActivationWait(h.cfg.ID, t, typ, id)
		if ok {
			return nil
		}
		select {
		case <-wake:
		case <-h.stop:
			return protocol.Errorf(protocol.CodeUnavailable, "host %s is stopping", h.cfg.ID)
		case <-ctx.Done():
			return protocol.Errorf(protocol.CodeDeadlineExceeded,
				"the actor's previous host did not hand it off before the deadline (generation %d)", t.Generation())
		}
	}
}

// errMoved is the MOVED answer for a call the host does not own in t. A
// draining host names its drain's revision when its table is older, so that
// the caller waits for the table without the host.
func (h *Host) errMoved(t *placement.Table) *protocol.Error {
	gen := max(t.Generation(), h.drainedAt.Load())
	e := protocol.Errorf(protocol.CodeMoved, "actor is not on host %s at generation %d", h.cfg.ID, gen)
	e.Generation = gen
	return e
}

// followTable hands off, after every table change, the actors the new table
// gives to other hosts, and records the release.
func (h *Host) followTable() {
	var last *placement.Table
	for {
		changed := h.w.Changed()
		if t := h.w.Table(); t != last {
			h.checkOwnRecord(t)
			h.obs.tableChanged(last)
			prev := last
			last = t
			h.handOff(prev, t)
		}
		select {
		case <-h.stop:
			return
		case <-changed:
		}
	}
}

// checkOwnRecord gives the lease up when t, newer than the host's last
// write of its record, no longer lists the host: someone else removed the
// record, every other host counts this one as gone, and its liveness key
// alone (which only its monitors read) would keep it acting.
func (h *Host) checkOwnRecord(t *placement.Table) {
	l := h.lease()
	if l == nil {
		return
	}
	rev := l.Revision()
	if _, in := t.Member(h.cfg.ID); in || rev == 0 || t.Generation() <= rev {
		return
	}
	l.Forfeit(rev, fmt.Errorf("the host's record was removed at generation %d", t.Generation()))
}

// handOff deactivates every activation t does not give to this host, waits
// for them to end, tells the hosts that may have gained actors from it since
// prev, and, unless its last recorded release implies this one, tells the
// collectors too or writes its release record.
func (h *Host) handOff(prev, t *placement.Table) {
	if !h.moveAway(t) {
		return
	}
	// The host holds nothing t gives away now: the gainers may know it at
	// once. Every other host learns it from the settled record, which the
	// collectors raise once they know every host's release: from the host's
	// notice, or from its record, which only the collectors (and hosts of
	// protocol version 1) read. Neither is needed when the change took
	// nothing from the host: its last recorded release implies this one to
	// every watcher.
	gen := t.Generation()
	implied := h.w.ReleaseImplied(h.cfg.ID, t, h.recorded.Load())
	d := h.drainedAt.Load()
	if d == 0 || gen < d {
		h.noticeRelease(prev, t, h.rec.incarnation(), !implied)
	} // else drainActors told the gainers, and its release at d implies this one
	switch {
	case implied:
		h.released.set(gen)
	case d == 0 && t.MinProtocol() >= protocol.AliveRenewalVersion:
		// The collectors have the notice: the record waits to see whether
		// the settled record makes it needless (recordReleases).
		h.released.set(gen)
		h.unrecorded.set(gen)
	default: // a drain, which Shutdown waits for, or a table with a host of version 1, which reads only records
		if h.release(gen) {
			h.released.set(gen)
		}
	}
}

// recordAfter is how long a host gives the settled record to cover a
// release it told the collectors of before it writes the release record.
const recordAfter = time.Second

// recordReleases writes the host's release record for a release whose
// notices went to the collectors only when the settled record has not
// covered it within recordAfter: when a notice was lost, or went to a host
// that stopped collecting, or another host's release is late. Otherwise
// the settled record, which every host reads, says all the record would
// (the host released at the record's generation or later), and a change
// that moves actors from every host costs no JetStream write per host.
func (h *Host) recordReleases() {
	var due <-chan time.Time
	for {
		changed, kicked := h.w.Changed(), h.unrecorded.changed()
		gen := h.unrecorded.v.Load()
		switch {
		case gen <= h.recorded.Load():
			due = nil
		case h.w.SettledRecord() >= gen:
			raise(&h.recorded, gen)
			due = nil
		case due == nil:
			due = time.After(cmp.Or(h.cfg.recordAfter, recordAfter))
		}
		select {
		case <-h.stop:
			return
		case <-changed:
		case <-kicked:
		case <-due:
			due = nil
			h.release(gen)
		}
	}
}

// raise sets a to v unless it holds more.
func raise(a *atomic.Uint64, v uint64) {
	for old := a.Load(); old < v && !a.CompareAndSwap(old, v); old = a.Load() {
	}
}

// moveAway deactivates every activation t does not give to this host and
// waits for them to end; false when the host stopped first.
func (h *Host) moveAway(t *placement.Table) bool {
	var lost []*activation
	h.types.each(func(a *activation) {
		if !h.owns(t, a.t.name, a.id) {
			a.moveAway()
			lost = append(lost, a)
		}
	})
	for _, a := range lost {
		select {
		case <-a.closedChan():
		case <-h.stop:
			return false
		}
	}
	return true
}

// noticeRelease sends a release notice (protocol.HeaderReleased) for t's
// generation to each host of protocol version 2 that may have gained actors
// from this one between prev and t: with rendezvous hashing an actor moves
// from this host to another only when the other became a candidate for its
// type or this host stopped being one. A host left out, or a notice lost,
// only waits for the settled record (placement.Collector), which the
// collectors write once every host has released.
func (h *Host) noticeRelease(prev, t *placement.Table, inc string, collectors bool) {
	var to []placement.HostID
	if prev != nil { // else this host held nothing before its first table
		to = gainers(prev, t, h.cfg.ID, h.types.names())
	}
	h.tell(t, to, inc, t.Generation(), collectors)
}

// tell sends the notice of the host's release at gen to hosts to of table
// t and, with collectors, to t's collectors too, each once; the host's own
// collector takes it directly.
func (h *Host) tell(t *placement.Table, to []placement.HostID, inc string, gen uint64, collectors bool) {
	if collectors {
		c := placement.Collectors(t)
		if slices.Contains(c, h.cfg.ID) {
			h.collect.Load().NoteRelease(h.cfg.ID, inc, gen)
		}
		to = append(to, c...)
	}
	value := protocol.FormatReleased(h.cfg.ID, inc, gen)
	for _, id := range others(to, h.cfg.ID) {
		h.sendNotice(t, id, value)
	}
}

// gainers returns the hosts that may have gained actors of the given types
// from host self between tables prev and t: for each type self was a
// candidate of in prev, the hosts that became candidates, or every
// candidate in t when self no longer is one. Each host once, self never.
func gainers(prev, t *placement.Table, self placement.HostID, types []string) []placement.HostID {
	var out []placement.HostID // most changes take nothing from self
	for _, typ := range types {
		typ := placement.ActorType(typ)
		switch {
		case !prev.IsCandidate(typ, self):
			// it owned nothing of typ
		case !t.IsCandidate(typ, self):
			out = append(out, t.Hosts(typ)...)
		default:
			out = append(out, t.NewCandidates(prev, typ)...)
		}
	}
	return others(out, self)
}

// others returns ids sorted, each once (a host may be a candidate of
// several types), without self. It may reorder ids in place.
func others(ids []placement.HostID, self placement.HostID) []placement.HostID {
	slices.Sort(ids)
	return slices.DeleteFunc(slices.Compact(ids), func(id placement.HostID) bool { return id == self })
}

// sendNotice publishes a release notice to member id of t, if it reads
// them (protocol version 2).
func (h *Host) sendNotice(t *placement.Table, id placement.HostID, value string) {
	if m, ok := t.Member(id); ok && m.Protocol >= protocol.AliveRenewalVersion {
		_ = h.nc.PublishMsg(&nats.Msg{Subject: m.Subject, Header: nats.Header{protocol.HeaderReleased: {value}}})
	}
}

// release writes the host's release record, retrying until it lands (true),
// a newer table supersedes it, or the host stops.
func (h *Host) release(gen uint64) bool {
	for {
		inc := h.rec.incarnation()
		ctx, cancel := context.WithTimeout(context.Background(), h.lease().TTL())
		err := placement.Release(ctx, h.js, h.members, h.cfg.ID, inc, gen, h.markerTTL())
		cancel()
		if err == nil {
			raise(&h.recorded, gen)
			return true
		}
		h.log.Warn("release not recorded; retrying", "generation", gen, "err", err)
		select {
		case <-h.stop:
			return false
		case <-time.After(100 * time.Millisecond):
		}
		if h.w.Table().Generation() > gen {
			return false
		}
	}
}

func (h *Host) markerTTL() time.Duration {
	if h.cfg.Membership.MarkerTTL != 0 {
		return h.cfg.Membership.MarkerTTL
	}
	return placement.DefaultMarkerTTL
}

// leaseLost runs on the lease's goroutine when the lease is found lost. The
// host moves to a new epoch at once, so no activation of the old incarnation
// runs another turn; it drops them all without saving (their acknowledged
// turns were saved already) and joins again as a new incarnation.
func (h *Host) leaseLost(err error) {
	h.obs.leaseLost()
	l := h.fence.joinedLease(h.stop)
	if l == nil {
		return // the host stopped before Join returned
	}
	end := time.Now()
	if until := l.ValidUntil(); until.Before(end) {
		end = until
	}
	h.fence.next(end)
	h.types.each(func(a *activation) { a.drop() })
	if m := h.monitor.Load(); m != nil {
		m.Rewatch() // the loss may be the liveness bucket's, with every key
	}
	rec := h.rec.update(func(rec *pb.HostRecord) {
		rec.Incarnation = randomIncarnation()
		rec.StartedUnixMs = time.Now().UnixMilli()
	})
	l.Replace(rec)
	h.log.Warn("lease lost; dropped every activation, joining again as a new incarnation",
		"err", err, "incarnation", rec.GetIncarnation())
}

// setState publishes the host's record with a new state (draining).
func (h *Host) setState(ctx context.Context, state pb.HostState) (uint64, error) {
	rec := h.rec.update(func(rec *pb.HostRecord) { rec.State = state })
	return h.lease().Update(ctx, rec)
}

// drainActors marks the host draining, so the table moves its actors away,
// and waits until it has handed them all off.
func (h *Host) drainActors(ctx context.Context) error {
	rev, err := h.setState(ctx, pb.HostState_HOST_STATE_DRAINING)
	if err != nil {
		return err
	}
	h.handOffAll(rev)
	if err := h.w.WaitApplied(ctx, rev); err != nil {
		return err
	}
	return h.released.wait(ctx, h.w.Table().Generation())
}

// handOffAll hands off every actor once the host's drain is recorded at
// revision rev, without waiting for its watch to bring that table: every
// table from rev on gives the host nothing. From here on it activates
// nothing (owns), so once its activations have ended it holds nothing, and
// it tells every host that may gain its actors (the candidates of its types
// in its current table), and the collectors, that it released at rev. A
// gainer whose table has not reached rev keeps the notice until it does
// (placement.Watcher.NoteRelease); one the host did not know of waits for
// the settled record. The release record follows from followTable, once the
// table comes.
func (h *Host) handOffAll(rev uint64) {
	h.drainedAt.Store(rev)
	t := h.w.Table()
	if !h.moveAway(t) { // every activation: the host owns nothing now
		return
	}
	var candidates []placement.HostID
	for _, typ := range h.types.names() {
		candidates = append(candidates, t.Hosts(placement.ActorType(typ))...)
	}
	h.tell(t, candidates, h.rec.incarnation(), rev, true)
}
