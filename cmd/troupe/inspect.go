package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/inspect"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// The inspection commands: where, table and actors (and hosts -l). Each
// prints text for people and, with --json, one JSON document for scripts.

const whereUsage = `Usage: troupe where [connection flags] [--json] TYPE ID

Prints the host that owns the actor (TYPE, ID) at the current table
generation, computed from the membership bucket as a smart client computes
it: the host id, its subject and the generation. For example:
  h-3f2a9c01  troupe.host.h-3f2a9c01  generation 42

Flags:
  --json            print {"type","id","id_encoded","key_hash","host","subject","generation"}

` + connUsage

const tableUsage = `Usage: troupe table [connection flags] [--json] [--points N] [--sample N] [TYPE]

Prints, for each actor type (or TYPE), how its placement divides among the
hosts that serve it at the current generation: each host's share of the
64-bit key space (measured at N evenly spaced key hashes) and how many of a
sample of ids (the decimal numbers 0 to N-1) it owns. For example:
  generation 42
  TYPE     HOST  KEY SPACE  SAMPLE IDS
  counter  h1    33.4%      3342

Flags:
  --points N        key-space points per type (default 4096)
  --sample N        sample ids per type (default 10000)
  --json            print {"generation","types":[{"type","hosts":[{"host","space","sample"}],...}]}

` + connUsage

const actorsUsage = `Usage: troupe actors [connection flags] [--json] [--host NAME] [--type TYPE] [--ids N] [--timeout D]

Asks the hosts themselves (the admin subject <prefix>.admin.actors, which
every host answers) for their active actors, and prints one line per host and
type: the number active, the calls it has run, and up to N actor ids
(id-encoded, sorted). A host in the member set that does not answer within
the timeout is listed as "no answer". For example:
  HOST  TYPE     ACTIVE  CALLS  IDS
  h1    counter  2       7      c1 c7

Flags:
  --host NAME       ask only this host
  --type TYPE       only this actor type
  --ids N           actor ids to list per host and type (default 100)
  --timeout D       how long to wait for answers (default 2s)
  --json            print {"generation","hosts":[report...],"missing":[...]}

` + connUsage

// inspectCommands run where, table and actors.
var inspectCommands = map[string]func(context.Context, env, []string) error{
	"where": runWhere, "table": runTable, "actors": runActors,
}

// Defaults of the inspection commands.
const (
	defaultPoints  = 4096
	defaultSample  = 10000
	defaultIDs     = 100
	defaultGather  = 2 * time.Second
	inspectTimeout = 10 * time.Second
)

// inspectSession is a connection and a router following the membership, for one
// inspection command.
type inspectSession struct {
	nc *nats.Conn
	r  *router.Router
}

// openSession connects and reads the member set.
func openSession(ctx context.Context, conn *connFlags, name string) (*inspectSession, error) {
	nc, err := conn.connect(name, nats.Timeout(hostsTimeout))
	if err != nil {
		return nil, setupError(err)
	}
	r, err := router.New(ctx, nc, router.Config{})
	if err != nil {
		nc.Close()
		return nil, setupError(err)
	}
	return &inspectSession{nc: nc, r: r}, nil
}

func (s *inspectSession) close() {
	s.r.Close()
	s.nc.Close()
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runWhere(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("where", whereUsage, e.stderr)
	var conn connFlags
	conn.register(fs, e.getenv)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef(fs, "want TYPE ID, got %d arguments", fs.NArg())
	}
	typ, id := placement.ActorType(fs.Arg(0)), placement.ActorID(fs.Arg(1))
	if err := typ.Validate(); err != nil {
		return router.Errorf(router.CodeUnknownType, "%v", err)
	}
	if err := id.Validate(); err != nil {
		return router.Errorf(router.CodeInvalidID, "%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, inspectTimeout)
	defer cancel()
	s, err := openSession(ctx, &conn, "troupe where")
	if err != nil {
		return err
	}
	defer s.close()
	t := s.r.Table()
	m, ok := t.Owner(typ, id)
	if !ok {
		return router.Errorf(router.CodeNoHost, "no live host serves actor type %q", typ)
	}
	if *asJSON {
		return writeJSON(e.stdout, map[string]any{
			"type": typ, "id": id, "id_encoded": router.EncodeID(string(id)),
			"key_hash": strconv.FormatUint(placement.KeyHash(typ, id), 10),
			"host":     m.ID, "subject": m.Subject, "generation": t.Generation(),
		})
	}
	_, err = fmt.Fprintf(e.stdout, "%s  %s  generation %d\n", m.ID, m.Subject, t.Generation())
	return err
}

func runTable(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("table", tableUsage, e.stderr)
	var conn connFlags
	conn.register(fs, e.getenv)
	asJSON := fs.Bool("json", false, "print JSON")
	points := fs.Int("points", defaultPoints, "key-space points per type")
	sample := fs.Int("sample", defaultSample, "sample ids per type")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usagef(fs, "want at most one TYPE, got %d arguments", fs.NArg())
	}
	if *points < 1 || *points > 1<<20 || *sample < 0 || *sample > 10_000_000 {
		return usagef(fs, "--points must be 1..1048576 and --sample 0..10000000")
	}
	ctx, cancel := context.WithTimeout(ctx, inspectTimeout)
	defer cancel()
	s, err := openSession(ctx, &conn, "troupe table")
	if err != nil {
		return err
	}
	defer s.close()
	t := s.r.Table()
	types := t.Types()
	if fs.NArg() == 1 {
		typ := placement.ActorType(fs.Arg(0))
		if !t.Serves(typ) {
			return router.Errorf(router.CodeNoHost, "no live host serves actor type %q", typ)
		}
		types = []placement.ActorType{typ}
	}
	out := struct {
		Generation uint64              `json:"generation"`
		Types      []inspect.Placement `json:"types"`
	}{Generation: t.Generation(), Types: []inspect.Placement{}}
	for _, typ := range types {
		p, _ := inspect.Divide(t, typ, *points, *sample)
		out.Types = append(out.Types, p)
	}
	if *asJSON {
		return writeJSON(e.stdout, out)
	}
	fmt.Fprintf(e.stdout, "generation %d\n", out.Generation)
	tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tHOST\tKEY SPACE\tSAMPLE IDS")
	for _, p := range out.Types {
		for _, h := range p.Hosts {
			fmt.Fprintf(tw, "%s\t%s\t%.1f%%\t%d\n", p.Type, h.Host, 100*h.Space, h.Sample)
		}
	}
	return tw.Flush()
}

func runActors(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("actors", actorsUsage, e.stderr)
	var conn connFlags
	conn.register(fs, e.getenv)
	asJSON := fs.Bool("json", false, "print JSON")
	hostName := fs.String("host", "", "ask only this host")
	typ := fs.String("type", "", "only this actor type")
	ids := fs.Int("ids", defaultIDs, "actor ids to list per host and type")
	wait := fs.Duration("timeout", defaultGather, "how long to wait for answers")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *ids < 0 || *wait <= 0 {
		return usagef(fs, "--ids must not be negative and --timeout must be positive")
	}
	if *hostName != "" {
		if err := placement.HostID(*hostName).Validate(); err != nil {
			return usagef(fs, "--host: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, inspectTimeout+*wait)
	defer cancel()
	s, err := openSession(ctx, &conn, "troupe actors")
	if err != nil {
		return err
	}
	defer s.close()
	res, err := gatherActors(ctx, s, placement.HostID(*hostName), host.ActorsRequest{IDs: *ids, Type: *typ}, *wait)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, res)
	}
	return printActors(e.stdout, res)
}

// actorsResult is what troupe actors found.
type actorsResult struct {
	Generation uint64        `json:"generation"`
	Hosts      []host.Report `json:"hosts"`
	// Missing lists members of the table that did not answer in time.
	Missing []string `json:"missing"`
}

// gatherActors asks every member (or only id) for its report, waiting at
// most wait, and notes the members that did not answer.
func gatherActors(ctx context.Context, s *inspectSession, id placement.HostID, req host.ActorsRequest, wait time.Duration) (actorsResult, error) {
	t := s.r.Table()
	want := map[string]bool{}
	subject := protocol.AdminActorsSubject(protocol.DefaultSubjectPrefix)
	if id != "" {
		subject = protocol.AdminActorsHostSubject(protocol.DefaultSubjectPrefix, id)
		want[string(id)] = true
	} else {
		for _, m := range t.Members() {
			want[string(m.ID)] = true
		}
	}
	gctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	reports, err := inspect.Gather(gctx, s.nc, subject, req, len(want))
	if err != nil {
		return actorsResult{}, err
	}
	res := actorsResult{Generation: t.Generation(), Hosts: reports, Missing: []string{}}
	for _, r := range reports {
		delete(want, r.Host)
	}
	for h := range want {
		res.Missing = append(res.Missing, h)
	}
	slices.Sort(res.Missing)
	if id != "" && len(reports) == 0 {
		return res, router.Errorf(router.CodeUnavailable, "host %s did not answer within %v", id, wait)
	}
	return res, nil
}

// printActors prints one line per host and type, then the hosts that did
// not answer.
func printActors(w io.Writer, res actorsResult) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tTYPE\tACTIVE\tCALLS\tIDS")
	for _, r := range res.Hosts {
		for _, tr := range r.Types {
			ids := strings.Join(tr.IDs, " ")
			if more := tr.Active - len(tr.IDs); more > 0 && len(tr.IDs) > 0 {
				ids += fmt.Sprintf(" … (%d more)", more)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", r.Host, tr.Type, tr.Active, tr.Calls, ids)
		}
	}
	for _, h := range res.Missing {
		fmt.Fprintf(tw, "%s\t-\t-\t-\tno answer\n", h)
	}
	return tw.Flush()
}
