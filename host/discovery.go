package host

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/protocol"
)

// Hosts answer the NATS service discovery protocol (the $SRV subjects of
// ADR-32 that nats.go/micro services answer), so `nats micro ls`, `info` and
// `stats` list them as instances of the service "troupe" whose instance id
// is the host id. The host answers them itself rather than through a micro
// service: micro would assign a random instance id, fix the metadata when
// the service is added (the generation changes), and, were calls routed
// through a micro endpoint, count only the time to enqueue a call, since
// replies are sent after the turn (docs/decisions.md, "Service discovery
// without routing calls through micro", has the measurement). The answers
// use micro's own types, so they follow its schema.

// ServiceName is protocol.ServiceName: the service name hosts answer
// discovery requests under.
const ServiceName = protocol.ServiceName

// serveDiscovery answers PING, INFO and STATS; other verbs get no answer.
func (h *Host) serveDiscovery(msg *nats.Msg) {
	if msg.Reply == "" {
		return
	}
	// The verb is the token after $SRV in every subject the host answers.
	_, rest, _ := strings.Cut(msg.Subject, ".")
	verb, _, _ := strings.Cut(rest, ".")
	var resp any
	switch verb {
	case micro.PingVerb.String():
		resp = micro.Ping{ServiceIdentity: h.serviceIdentity(), Type: micro.PingResponseType}
	case micro.InfoVerb.String():
		resp = h.serviceInfo()
	case micro.StatsVerb.String():
		resp = h.serviceStats()
	default:
		return
	}
	body, err := json.Marshal(resp)
	if err != nil {
		return
	}
	_ = msg.Respond(body)
}

func (h *Host) serviceIdentity() micro.ServiceIdentity {
	md := map[string]string{
		protocol.MetadataHostID:        string(h.cfg.ID),
		protocol.MetadataActorTypes:    strings.Join(h.types.names(), ","),
		protocol.MetadataGeneration:    strconv.FormatUint(h.w.Table().Generation(), 10),
		protocol.MetadataSubject:       h.Subject(),
		protocol.MetadataSubjectPrefix: h.cfg.SubjectPrefix,
		protocol.MetadataState:         protocol.HostStateActive,
	}
	if rec := h.ownRecord(); rec != nil {
		md[protocol.MetadataIncarnation] = rec.GetIncarnation()
		if rec.GetState() == pb.HostState_HOST_STATE_DRAINING {
			md[protocol.MetadataState] = protocol.HostStateDraining
		}
	}
	if h.eng.closing.Load() {
		md[protocol.MetadataState] = protocol.HostStateDraining
	}
	return micro.ServiceIdentity{Name: ServiceName, ID: string(h.cfg.ID), Version: Version, Metadata: md}
}

// serviceEndpoints lists what the host answers: calls on its own subject,
// the gateway, and the admin subjects.
func (h *Host) serviceEndpoints() []micro.EndpointInfo {
	prefix := h.cfg.SubjectPrefix
	eps := []micro.EndpointInfo{{Name: protocol.EndpointCall, Subject: h.Subject()}}
	if !h.cfg.DisableGateway {
		eps = append(eps, micro.EndpointInfo{Name: protocol.EndpointGateway, Subject: protocol.GatewaySubjects(prefix), QueueGroup: protocol.GatewayQueue(prefix)})
	}
	return append(eps,
		micro.EndpointInfo{Name: protocol.EndpointActors, Subject: protocol.AdminActorsSubject(prefix)},
		micro.EndpointInfo{Name: protocol.EndpointActorsHost, Subject: protocol.AdminActorsHostSubject(prefix, h.cfg.ID)},
	)
}

func (h *Host) serviceInfo() micro.Info {
	return micro.Info{
		ServiceIdentity: h.serviceIdentity(),
		Type:            micro.InfoResponseType,
		Description:     "troupe host " + string(h.cfg.ID) + ": virtual actors of types " + strings.Join(h.types.names(), ", "),
		Endpoints:       h.serviceEndpoints(),
	}
}

// serviceStats counts, for the call endpoint, the turns run and those that
// failed (data: the same per actor type, with the active actors); for the
// gateway the requests taken; for the admin endpoints the reports answered
// (both together). Processing times are not measured: the hot path pays
// only a counter.
func (h *Host) serviceStats() micro.Stats {
	var calls, errs uint64
	perType := make(map[string]TypeStats)
	for _, s := range h.Stats() {
		calls, errs = calls+s.Calls, errs+s.Errors
		perType[string(s.Type)] = s
	}
	data, _ := json.Marshal(typeStatsJSON(perType))
	stats := micro.Stats{
		ServiceIdentity: h.serviceIdentity(),
		Type:            micro.StatsResponseType,
		Started:         h.startedAt(),
	}
	for _, ep := range h.serviceEndpoints() {
		es := &micro.EndpointStats{Name: ep.Name, Subject: ep.Subject, QueueGroup: ep.QueueGroup}
		switch ep.Name {
		case protocol.EndpointCall:
			es.NumRequests, es.NumErrors, es.Data = int(calls), int(errs), data
		case protocol.EndpointGateway:
			es.NumRequests = int(h.ops.gateway.Load())
		case protocol.EndpointActors:
			es.NumRequests = int(h.ops.requests.Load())
		}
		stats.Endpoints = append(stats.Endpoints, es)
	}
	return stats
}

// typeStatsJSON is the per-type data of the call endpoint's stats.
func typeStatsJSON(m map[string]TypeStats) map[string]map[string]uint64 {
	out := make(map[string]map[string]uint64, len(m))
	for name, s := range m {
		out[name] = map[string]uint64{"active": uint64(s.Active), "calls": s.Calls, "errors": s.Errors}
	}
	return out
}

// startedAt is when this incarnation started, from its record.
func (h *Host) startedAt() time.Time {
	if rec := h.ownRecord(); rec != nil && rec.GetStartedUnixMs() > 0 {
		return time.UnixMilli(rec.GetStartedUnixMs()).UTC()
	}
	return time.Time{}
}
