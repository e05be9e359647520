package host

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// Every host answers an admin request for a report of its actors, so that
// tools can ask all hosts at once and gather the answers (scatter/gather):
// a request to <prefix>.admin.actors is answered by every host, one to
// <prefix>.admin.actors.<hostID> by that host only. Requests and reports are
// JSON (see PROTOCOL.md), so the nats CLI reads them too.

// AdminActorsSubject is protocol.AdminActorsSubject: the subject every host
// under prefix answers with its Report.
func AdminActorsSubject(prefix string) string { return protocol.AdminActorsSubject(prefix) }

// AdminActorsHostSubject is protocol.AdminActorsHostSubject: the subject
// only host id answers with its Report.
func AdminActorsHostSubject(prefix string, id placement.HostID) string {
	return protocol.AdminActorsHostSubject(prefix, id)
}

// ActorsRequest is protocol.ActorsRequest: the JSON body of an admin actors
// request. An empty body asks for the counts only.
type ActorsRequest = protocol.ActorsRequest

// Report is protocol.ActorsReport: a host's JSON answer to an admin actors
// request.
type Report = protocol.ActorsReport

// TypeReport is protocol.TypeReport: one actor type in a Report.
type TypeReport = protocol.TypeReport

// reportIDBudget leaves room under the server's max payload for the rest of
// a report. A request asks for at most protocol.MaxReportIDs ids per type,
// so a report never walks and sorts more than that many.
const reportIDBudget = 4096

// ops holds the host's operator-facing subscriptions (admin and service
// discovery) and the counters only they read.
type ops struct {
	subs     []*nats.Subscription
	gateway  atomic.Uint64 // gateway requests taken
	requests atomic.Uint64 // admin requests answered
}

// startOps subscribes the admin and discovery subjects; they stay until the
// host stops.
func (h *Host) startOps() error {
	subjects := append([]string{protocol.AdminActorsSubject(h.cfg.SubjectPrefix), protocol.AdminActorsHostSubject(h.cfg.SubjectPrefix, h.cfg.ID)},
		protocol.DiscoverySubjects(h.cfg.ID)...)
	for i, subj := range subjects {
		handler := h.serveAdmin
		if i >= 2 {
			handler = h.serveDiscovery
		}
		sub, err := h.nc.Subscribe(subj, handler)
		if err != nil {
			for _, s := range h.ops.subs {
				_ = s.Unsubscribe()
			}
			return fmt.Errorf("host: subscribe %s: %w", subj, err)
		}
		h.ops.subs = append(h.ops.subs, sub)
	}
	h.goLoop(func() {
		<-h.stop
		for _, sub := range h.ops.subs {
			_ = sub.Unsubscribe()
		}
	})
	return nil
}

// serveAdmin answers an admin actors request.
func (h *Host) serveAdmin(msg *nats.Msg) {
	if msg.Reply == "" {
		return
	}
	var req ActorsRequest
	if len(msg.Data) > 0 {
		if err := json.Unmarshal(msg.Data, &req); err != nil {
			h.respondAdminError(msg, protocol.Errorf(protocol.CodeBadRequest, "admin request: want JSON such as {\"ids\":100,\"type\":\"counter\"}: %v", err))
			return
		}
	}
	if req.IDs < 0 {
		h.respondAdminError(msg, protocol.Errorf(protocol.CodeBadRequest, "admin request: ids must not be negative"))
		return
	}
	h.ops.requests.Add(1)
	body, err := json.Marshal(h.Report(req))
	if err != nil {
		h.respondAdminError(msg, protocol.Errorf(protocol.CodeInternal, "admin report: %v", err))
		return
	}
	_ = msg.Respond(body)
}

func (h *Host) respondAdminError(msg *nats.Msg, e *protocol.Error) {
	hdr, body := protocol.EncodeError(e)
	_ = msg.RespondMsg(&nats.Msg{Header: hdr, Data: body})
}

// Report describes the host and its actors as an admin request asks. It is
// safe to call from any goroutine once the host has started.
func (h *Host) Report(req ActorsRequest) Report {
	r := Report{
		Host:       string(h.cfg.ID),
		Version:    Version,
		Generation: h.w.Table().Generation(),
		Draining:   h.eng.closing.Load(),
		LeaseTTLMs: h.lease().TTL().Milliseconds(),
		LeaseAgeMs: time.Since(h.lease().Renewed()).Milliseconds(),
		Types:      []TypeReport{},
	}
	if rec := h.ownRecord(); rec != nil {
		r.Incarnation, r.StartedUnixMs = rec.GetIncarnation(), rec.GetStartedUnixMs()
		r.Draining = r.Draining || rec.GetState() == pb.HostState_HOST_STATE_DRAINING
	}
	budget := max(int(h.nc.MaxPayload())-reportIDBudget, 0)
	for _, s := range h.Stats() {
		if req.Type != "" && string(s.Type) != req.Type {
			continue
		}
		tr := TypeReport{Type: string(s.Type), Active: s.Active, Calls: s.Calls, Errors: s.Errors}
		if req.IDs > 0 {
			ids, active := h.ActiveIDs(s.Type, min(req.IDs, protocol.MaxReportIDs))
			tr.Active = active
			for _, id := range ids {
				enc := protocol.EncodeID(string(id))
				if budget -= len(enc) + 3; budget < 0 {
					break
				}
				tr.IDs = append(tr.IDs, enc)
			}
		}
		r.Types = append(r.Types, tr)
	}
	r.Subscriptions = h.subReports(req.Type)
	return r
}

// ownRecord is the record the host's lease publishes (nil before Start).
func (h *Host) ownRecord() *pb.HostRecord {
	rec := h.rec.get()
	if rec == nil {
		return nil
	}
	return rec
}
