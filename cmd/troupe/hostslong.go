package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/inspect"
	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// hostsLongUsage documents troupe hosts -l and --json.
const hostsLongUsage = `Flags:
  -l, --long        one line per host with a header: also its state (active
                    or draining), LEASE: the time since its lease was last
                    renewed, by the server's clock, over the lease's time to
                    live, UP: how long it has run, ACTORS: its active
                    actors, CALLS: the calls it has run, and its version.
                    The hosts answer for the last three (- if one does not
                    answer within 2s)
  --json            the same as one JSON document

`

// hostInfo is one host in troupe hosts -l and --json.
type hostInfo struct {
	ID            string   `json:"id"`
	Subject       string   `json:"subject"`
	Types         []string `json:"types"`
	Draining      bool     `json:"draining"`
	LeaseAgeMs    *int64   `json:"lease_age_ms"`
	LeaseTTLMs    int64    `json:"lease_ttl_ms,omitempty"`
	StartedUnixMs int64    `json:"started_unix_ms,omitempty"`
	Incarnation   string   `json:"incarnation,omitempty"`
	Version       string   `json:"version,omitempty"`
	// Answered: the host answered the admin request; Actors and Calls
	// come from its answer.
	Answered bool           `json:"answered"`
	Actors   map[string]int `json:"actors"`
	Calls    uint64         `json:"calls"`
}

// hostsReport is troupe hosts --json.
type hostsReport struct {
	Generation uint64     `json:"generation"`
	Hosts      []hostInfo `json:"hosts"`
}

// runLongHosts prints troupe hosts -l, or --json.
func runLongHosts(ctx context.Context, e env, conn *connFlags, asJSON bool) error {
	rep, err := longHosts(ctx, conn)
	switch {
	case err != nil:
		return err
	case asJSON:
		return writeJSON(e.stdout, rep)
	}
	return printLongHosts(e.stdout, rep, time.Now())
}

// longHosts gathers what troupe hosts -l prints: the table, the records,
// lease ages from the bucket, and the hosts' own reports.
func longHosts(ctx context.Context, conn *connFlags) (hostsReport, error) {
	s, err := openSession(ctx, conn, "troupe hosts")
	if err != nil {
		return hostsReport{}, err
	}
	defer s.close()
	t := s.r.Table()
	ages, err := inspect.LeaseAges(ctx, s.nc, placement.DefaultBucket, time.Now())
	if err != nil {
		return hostsReport{}, setupError(err)
	}
	gctx, cancel := context.WithTimeout(ctx, defaultGather)
	defer cancel()
	reports, err := inspect.Gather(gctx, s.nc, protocol.AdminActorsSubject(protocol.DefaultSubjectPrefix), host.ActorsRequest{}, len(t.Members()))
	if err != nil {
		return hostsReport{}, err
	}
	byID := map[string]host.Report{}
	for _, r := range reports {
		byID[r.Host] = r
	}
	records := map[string]*pb.HostRecord{}
	for _, rec := range s.r.Watcher().Records() {
		records[rec.GetHostId()] = rec
	}
	out := hostsReport{Generation: t.Generation(), Hosts: []hostInfo{}}
	for _, m := range t.Members() {
		hi := hostInfo{ID: string(m.ID), Subject: m.Subject, Draining: m.Draining, Types: []string{}, Actors: map[string]int{}}
		for _, typ := range m.Types {
			hi.Types = append(hi.Types, string(typ))
		}
		if age, ok := ages[m.ID]; ok {
			ms := age.Milliseconds()
			hi.LeaseAgeMs = &ms
		}
		if rec := records[string(m.ID)]; rec != nil {
			hi.StartedUnixMs, hi.Incarnation, hi.Version = rec.GetStartedUnixMs(), rec.GetIncarnation(), rec.GetVersion()
		}
		if r, ok := byID[string(m.ID)]; ok {
			hi.Answered, hi.LeaseTTLMs = true, r.LeaseTTLMs
			hi.Draining = hi.Draining || r.Draining
			for _, tr := range r.Types {
				hi.Actors[tr.Type] = tr.Active
				hi.Calls += tr.Calls
			}
		}
		out.Hosts = append(out.Hosts, hi)
	}
	return out, nil
}

// printLongHosts prints troupe hosts -l.
func printLongHosts(w io.Writer, rep hostsReport, now time.Time) error {
	fmt.Fprintf(w, "generation %d\n", rep.Generation)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSUBJECT\tTYPES\tSTATE\tLEASE\tUP\tACTORS\tCALLS\tVERSION")
	for _, h := range rep.Hosts {
		state := "active"
		if h.Draining {
			state = "draining"
		}
		lease := "-"
		if h.LeaseAgeMs != nil {
			lease = seconds(time.Duration(*h.LeaseAgeMs) * time.Millisecond)
			if h.LeaseTTLMs > 0 {
				lease += "/" + seconds(time.Duration(h.LeaseTTLMs)*time.Millisecond)
			}
		}
		up := "-"
		if h.StartedUnixMs > 0 {
			up = now.Sub(time.UnixMilli(h.StartedUnixMs)).Round(time.Second).String()
		}
		actors, calls := "-", "-"
		if h.Answered {
			n := 0
			for _, c := range h.Actors {
				n += c
			}
			actors, calls = fmt.Sprint(n), fmt.Sprint(h.Calls)
		}
		types := make([]placement.ActorType, len(h.Types))
		for i, t := range h.Types {
			types[i] = placement.ActorType(t)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.ID, h.Subject, typeList(types), state, lease, up, actors, calls, orDash(h.Version))
	}
	return tw.Flush()
}

// seconds formats d as seconds with one decimal.
func seconds(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
