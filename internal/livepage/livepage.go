// Package livepage serves troupe's live page: the hosts, the table
// generation and its recent history, a picture of each actor type's
// placement and the active actors and call rates of each host. The page is
// plain HTML, JavaScript and SVG embedded in the binary; it polls the JSON
// snapshot at /api/state every second, so it follows joins, leaves and load
// without a reload.
//
// The server keeps one snapshot, rebuilt every second and at once when the
// table changes, from the host's own membership watcher and the hosts'
// answers to the admin actors request (scatter/gather over NATS), so any
// number of open pages cost the hosts one request a second.
package livepage

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/inspect"
	"github.com/troupe-dev/troupe/placement"
)

//go:embed static
var static embed.FS

// Tuning of the snapshot.
const (
	refresh      = time.Second            // how often the snapshot is rebuilt
	gatherWait   = 700 * time.Millisecond // how long hosts have to answer
	ringPoints   = 256                    // key-space slices drawn per type
	sharePoints  = 4096                   // key-space points each share is measured at
	historyDepth = 20                     // table changes kept
)

// Snapshot is the JSON the page draws.
type Snapshot struct {
	Time       time.Time           `json:"time"`
	Served     string              `json:"served_by"`
	Generation uint64              `json:"generation"`
	Hosts      []HostView          `json:"hosts"`
	History    []Change            `json:"history"`
	Placement  []inspect.Placement `json:"placement"`
}

// HostView is one member and what it reported.
type HostView struct {
	ID       string         `json:"id"`
	Types    []string       `json:"types"`
	Draining bool           `json:"draining"`
	Answered bool           `json:"answered"`
	Actors   map[string]int `json:"actors"`
	Calls    uint64         `json:"calls"`
	Rate     float64        `json:"calls_per_second"`
	LeaseAge int64          `json:"lease_age_ms"`
	LeaseTTL int64          `json:"lease_ttl_ms"`
}

// Change is one table change the server saw.
type Change struct {
	Generation uint64    `json:"generation"`
	Time       time.Time `json:"time"`
	Hosts      []string  `json:"hosts"`
	Joined     []string  `json:"joined"`
	Left       []string  `json:"left"`
}

// Server builds snapshots and serves the page. Run owns its goroutines.
type Server struct {
	nc     *nats.Conn
	w      *placement.Watcher
	prefix string
	self   string
	log    *slog.Logger

	mu       sync.Mutex
	snap     []byte // the latest Snapshot as JSON
	history  []Change
	lastHost map[string]counterSample
}

// counterSample is a host's call counter when last read, for its rate.
type counterSample struct {
	calls uint64
	at    time.Time
}

// New returns a server for the page of host self, following w and asking
// the hosts under prefix over nc.
func New(nc *nats.Conn, w *placement.Watcher, prefix string, self placement.HostID, log *slog.Logger) *Server {
	return &Server{nc: nc, w: w, prefix: prefix, self: string(self), log: log, lastHost: map[string]counterSample{}}
}

// Handler serves the page, its files and /api/state.
func (s *Server) Handler() http.Handler {
	files, _ := fs.Sub(static, "static")
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(files))
	mux.HandleFunc("GET /api/state", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		body := s.snap
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(body)
	})
	return mux
}

// Run serves on ln until ctx ends, rebuilding the snapshot every second and
// whenever the table changes.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	s.rebuild(ctx)
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() { s.follow(ctx) })
	wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	err := srv.Serve(ln)
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// follow rebuilds the snapshot every refresh and when the generation
// changes (the watcher also wakes it for lease renewals, which change
// nothing).
func (s *Server) follow(ctx context.Context) {
	tick := time.NewTicker(refresh)
	defer tick.Stop()
	gen := s.w.Table().Generation()
	for {
		changed := s.w.Changed()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-changed:
			if s.w.Table().Generation() == gen {
				continue
			}
		}
		gen = s.w.Table().Generation()
		s.rebuild(ctx)
	}
}

// rebuild makes a new snapshot.
func (s *Server) rebuild(ctx context.Context) {
	t := s.w.Table()
	now := time.Now()
	s.noteChange(t, now)
	gctx, cancel := context.WithTimeout(ctx, gatherWait)
	reports, err := inspect.Gather(gctx, s.nc, host.AdminActorsSubject(s.prefix), host.ActorsRequest{}, len(t.Members()))
	cancel()
	if err != nil {
		s.log.Debug("live page: gathering reports", "err", err)
	}
	snap := Snapshot{Time: now, Served: s.self, Generation: t.Generation(), Hosts: []HostView{}, Placement: []inspect.Placement{}}
	s.mu.Lock()
	snap.History = slices.Clone(s.history)
	snap.Hosts = s.hostViews(t, reports, now)
	s.mu.Unlock()
	for _, typ := range t.Types() {
		if p, ok := inspect.Divide(t, typ, sharePoints, 0); ok {
			p.DrawRing(t, ringPoints)
			snap.Placement = append(snap.Placement, p)
		}
	}
	body, err := json.Marshal(snap)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.snap = body
	s.mu.Unlock()
}

// hostViews joins the members of t with their reports and computes call
// rates from the previous reading. s.mu is held.
func (s *Server) hostViews(t *placement.Table, reports []host.Report, now time.Time) []HostView {
	byID := map[string]host.Report{}
	for _, r := range reports {
		byID[r.Host] = r
	}
	views := []HostView{}
	seen := map[string]counterSample{}
	for _, m := range t.Members() {
		v := HostView{ID: string(m.ID), Draining: m.Draining, Types: []string{}, Actors: map[string]int{}}
		for _, typ := range m.Types {
			v.Types = append(v.Types, string(typ))
		}
		if r, ok := byID[v.ID]; ok {
			v.Answered, v.Draining = true, v.Draining || r.Draining
			v.LeaseAge, v.LeaseTTL = r.LeaseAgeMs, r.LeaseTTLMs
			for _, tr := range r.Types {
				v.Actors[tr.Type] = tr.Active
				v.Calls += tr.Calls
			}
			if last, ok := s.lastHost[v.ID]; ok && v.Calls >= last.calls {
				if dt := now.Sub(last.at).Seconds(); dt > 0 {
					v.Rate = float64(v.Calls-last.calls) / dt
				}
			}
			seen[v.ID] = counterSample{calls: v.Calls, at: now}
		}
		views = append(views, v)
	}
	s.lastHost = seen
	return views
}

// noteChange records t in the history if its generation is new.
func (s *Server) noteChange(t *placement.Table, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var prev []string
	if n := len(s.history); n > 0 {
		if s.history[n-1].Generation == t.Generation() {
			return
		}
		prev = s.history[n-1].Hosts
	}
	c := Change{Generation: t.Generation(), Time: now, Hosts: []string{}, Joined: []string{}, Left: []string{}}
	for _, m := range t.Members() {
		c.Hosts = append(c.Hosts, string(m.ID))
	}
	if prev != nil {
		for _, h := range c.Hosts {
			if !slices.Contains(prev, h) {
				c.Joined = append(c.Joined, h)
			}
		}
		for _, h := range prev {
			if !slices.Contains(c.Hosts, h) {
				c.Left = append(c.Left, h)
			}
		}
	}
	s.history = append(s.history, c)
	if len(s.history) > historyDepth {
		s.history = slices.Delete(s.history, 0, len(s.history)-historyDepth)
	}
}
