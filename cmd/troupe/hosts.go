package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/router"
)

const hostsUsage = `Usage: troupe hosts [connection flags] [-l] [--json]

Prints the current table generation, then one line per live host: its id, the
subject it takes calls on, the actor types it serves (comma-separated, - for
none) and "draining" if it is leaving. For example:
  generation 42
  h-3f2a9c01  troupe.host.h-3f2a9c01  counter

` + hostsLongUsage + connUsage

// hostsTimeout bounds connecting and reading the member set.
const hostsTimeout = 5 * time.Second

func runHosts(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("hosts", hostsUsage, e.stderr)
	var conn connFlags
	conn.register(fs, e.getenv)
	long, asJSON := fs.Bool("l", false, "long output"), fs.Bool("json", false, "print JSON")
	fs.BoolVar(long, "long", false, "long output")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, hostsTimeout)
	defer cancel()
	if *long || *asJSON {
		return runLongHosts(ctx, e, &conn, *asJSON)
	}
	t, err := currentTable(ctx, &conn)
	if err != nil {
		return err
	}
	return printHosts(e.stdout, t)
}

// currentTable reads the member set once.
func currentTable(ctx context.Context, conn *connFlags) (*placement.Table, error) {
	nc, err := conn.connect("troupe hosts", nats.Timeout(hostsTimeout))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	r, err := router.New(ctx, nc, router.Config{})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Table(), nil
}

// printHosts prints the generation and one line per member of t. A Table is
// one immutable snapshot, so the lines always match the generation.
func printHosts(w io.Writer, t *placement.Table) error {
	if _, err := fmt.Fprintf(w, "generation %d\n", t.Generation()); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, m := range t.Members() {
		fmt.Fprintf(tw, "%s\t%s\t%s", m.ID, m.Subject, typeList(m.Types))
		if m.Draining {
			fmt.Fprint(tw, "\tdraining")
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// typeList joins actor types with commas; "-" stands for none.
func typeList(types []placement.ActorType) string {
	if len(types) == 0 {
		return "-"
	}
	s := make([]string, len(types))
	for i, t := range types {
		s[i] = string(t)
	}
	return strings.Join(s, ",")
}
