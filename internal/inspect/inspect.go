// Package inspect answers operators' questions about a running troupe: it
// gathers the hosts' own reports over the admin subjects (scatter/gather),
// reads lease ages from the membership bucket, and computes from a placement
// table how each actor type's key space divides among hosts. The troupe
// command's inspection commands and its live page are built on it.
package inspect

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// Gather sends req to subject (host.AdminActorsSubject, which every host
// answers, or host.AdminActorsHostSubject for one) and collects the reports
// until expect distinct hosts have answered (expect <= 0: until ctx ends) or
// ctx ends. The reports are sorted by host id. A host that answers with an
// error (a malformed request) fails the gather with that *router.Error.
func Gather(ctx context.Context, nc *nats.Conn, subject string, req host.ActorsRequest, expect int) ([]host.Report, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	inbox := nc.NewRespInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(subject, inbox, body); err != nil {
		return nil, err
	}
	byHost := map[string]host.Report{}
	for expect <= 0 || len(byHost) < expect {
		select {
		case <-ctx.Done():
			return sortedReports(byHost), nil
		case m := <-ch:
			if e := router.DecodeError(m.Header, m.Data); e != nil {
				return nil, e
			}
			var r host.Report
			if err := json.Unmarshal(m.Data, &r); err != nil || r.Host == "" {
				continue // not a host's report
			}
			byHost[r.Host] = r
		}
	}
	return sortedReports(byHost), nil
}

func sortedReports(m map[string]host.Report) []host.Report {
	out := make([]host.Report, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out
}

// LeaseAges returns, for each live host in the membership bucket, how long
// ago its lease was last renewed, by the server's clock as stored in the
// entry, measured against now: the last write of its liveness key
// alive.<id> in the bucket its record names (the liveness bucket, or the
// membership bucket for hosts before it), or of its record for a host that
// renews the record itself (protocol version 1).
func LeaseAges(ctx context.Context, nc *nats.Conn, bucket string, now time.Time) (map[placement.HostID]time.Duration, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	kv, err := placement.OpenBucket(ctx, js, bucket)
	if err != nil {
		return nil, err
	}
	keys, err := kv.ListKeysFiltered(ctx, protocol.HostKeys)
	if err != nil {
		return nil, err
	}
	buckets := map[string]jetstream.KeyValue{"": kv}
	ages := map[placement.HostID]time.Duration{}
	for key := range keys.Keys() {
		id, ok := protocol.ParseHostKey(key)
		if !ok {
			continue
		}
		e, err := kv.Get(ctx, key)
		if err != nil {
			continue // expired or removed since listed
		}
		ages[id] = max(now.Sub(e.Created()), 0)
		rec := new(pb.HostRecord)
		if proto.Unmarshal(e.Value(), rec) != nil || rec.GetProtocol() < protocol.AliveRenewalVersion {
			continue
		}
		live, ok := buckets[rec.GetLivenessBucket()]
		if !ok {
			if live, err = js.KeyValue(ctx, rec.GetLivenessBucket()); err != nil {
				live = nil
			}
			buckets[rec.GetLivenessBucket()] = live
		}
		if live == nil {
			continue
		}
		if a, err := live.Get(ctx, placement.AliveKey(id)); err == nil {
			ages[id] = max(now.Sub(a.Created()), 0)
		}
	}
	return ages, nil
}

// Share is one host's part of an actor type's placement.
type Share struct {
	Host string `json:"host"`
	// Space is the fraction of the key space the host owns, measured at
	// Placement.Points evenly spaced key hashes.
	Space float64 `json:"space"`
	// Sample is how many of the sampled ids the host owns.
	Sample int `json:"sample"`
}

// Placement is how one actor type divides among the hosts serving it.
type Placement struct {
	Type       string  `json:"type"`
	Generation uint64  `json:"generation"`
	Points     int     `json:"points"`
	SampleIDs  int     `json:"sample_ids"`
	Hosts      []Share `json:"hosts"`
	// Ring holds, for each of a number of equal key-space slices in
	// order, the index in Hosts of its owner: the picture the live page
	// draws (see DrawRing).
	Ring []int `json:"ring,omitempty"`
}

// SampleID is the i-th id of the sample Divide places: the decimal i.
func SampleID(i int) placement.ActorID { return placement.ActorID(strconv.Itoa(i)) }

// Divide computes typ's placement in t at points key-space points and over
// the sample ids SampleID(0..sample-1). Every host that can own typ is
// listed, even with a zero share. It reports false when no host serves typ.
func Divide(t *placement.Table, typ placement.ActorType, points, sample int) (Placement, bool) {
	hosts := t.Hosts(typ)
	if len(hosts) == 0 || points < 1 {
		return Placement{}, false
	}
	p := Placement{Type: string(typ), Generation: t.Generation(), Points: points, SampleIDs: sample}
	index := make(map[placement.HostID]int, len(hosts))
	for i, h := range hosts {
		index[h] = i
		p.Hosts = append(p.Hosts, Share{Host: string(h)})
	}
	counts := make([]int, len(hosts))
	for _, h := range t.KeySpace(typ, points) {
		counts[index[h]]++
	}
	for i, c := range counts {
		p.Hosts[i].Space = float64(c) / float64(points)
	}
	for i := range sample {
		m, _ := t.Owner(typ, SampleID(i))
		p.Hosts[index[m.ID]].Sample++
	}
	return p, true
}

// DrawRing sets p.Ring to the owners of n equal slices of the key space of p's
// type in t, which must be the table p was computed from.
func (p *Placement) DrawRing(t *placement.Table, n int) {
	index := make(map[string]int, len(p.Hosts))
	for i, h := range p.Hosts {
		index[h.Host] = i
	}
	p.Ring = p.Ring[:0]
	for _, h := range t.KeySpace(placement.ActorType(p.Type), n) {
		p.Ring = append(p.Ring, index[string(h)])
	}
}
