package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

const subsUsage = `Usage: troupe subs [connection flags] [--json] [--timeout D]

Lists the stream subscriptions of the hosts' actor types (docs/streams.md),
one line each: the stream and subject filter, the host that pulls it, the
messages its consumer has not delivered yet (PENDING, the lag) and has
delivered but not had acknowledged (ACK PENDING), as JetStream reports them,
and the messages applied and terminated, summed over the hosts that answered
(each counts since it started). For example:
  TYPE      SUBSCRIPTION  STREAM  FILTER      PULLER  PENDING  ACK PENDING  APPLIED  TERMINATED
  customer  orders        ORDERS  orders.*.*  h1      0        0            12       0

Flags:
  --timeout D       how long to wait for the hosts' answers (default 2s)
  --json            print {"generation","subscriptions":[{"type","name","stream","subject","puller","pending","ack_pending","applied","terminated"}],"missing":[...]}

` + connUsage

// subLine is one subscription as troupe subs prints it.
type subLine struct {
	Type       string `json:"type"`
	Name       string `json:"name"`
	Stream     string `json:"stream"`
	Subject    string `json:"subject"`
	Puller     string `json:"puller"` // "" when no host pulls it
	Pending    uint64 `json:"pending"`
	AckPending uint64 `json:"ack_pending"`
	Applied    uint64 `json:"applied"`
	Terminated uint64 `json:"terminated"`
	// Consumer is false when the subscription's consumer does not exist
	// (yet): no host has pulled it.
	Consumer bool `json:"consumer"`
}

type subsResult struct {
	Generation    uint64    `json:"generation"`
	Subscriptions []subLine `json:"subscriptions"`
	Missing       []string  `json:"missing"`
}

func runSubs(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("subs", subsUsage, e.stderr)
	var conn connFlags
	conn.register(fs, e.getenv)
	asJSON := fs.Bool("json", false, "print JSON")
	wait := fs.Duration("timeout", defaultGather, "how long to wait for answers")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *wait <= 0 {
		return usagef(fs, "--timeout must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, inspectTimeout+*wait)
	defer cancel()
	s, err := openSession(ctx, &conn, "troupe subs")
	if err != nil {
		return err
	}
	defer s.close()
	res, err := gatherActors(ctx, s, "", host.ActorsRequest{}, *wait)
	if err != nil {
		return err
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return setupError(err)
	}
	out := subsResult{Generation: res.Generation, Subscriptions: []subLine{}, Missing: res.Missing}
	byKey := map[string]*subLine{}
	for _, r := range res.Hosts {
		for _, sr := range r.Subscriptions {
			k := sr.Type + "/" + sr.Name
			l := byKey[k]
			if l == nil {
				out.Subscriptions = append(out.Subscriptions, subLine{Type: sr.Type, Name: sr.Name, Stream: sr.Stream, Subject: sr.Subject})
				l = &out.Subscriptions[len(out.Subscriptions)-1]
				byKey[k] = l
			}
			if sr.Pulling {
				l.Puller = r.Host
			}
			l.Applied += sr.Applied
			l.Terminated += sr.Terminated
		}
	}
	t := s.r.Table()
	for i := range out.Subscriptions {
		l := &out.Subscriptions[i]
		if l.Puller == "" {
			if m, ok := t.Owner(placement.ActorType(l.Type), placement.ActorID(protocol.SubscriptionPrefix+l.Name)); ok {
				l.Puller = string(m.ID)
			}
		}
		st, err := js.Stream(ctx, l.Stream)
		if err != nil {
			continue
		}
		c, err := st.Consumer(ctx, protocol.SubscriptionConsumer(protocol.ActorType(l.Type), l.Name))
		if err != nil {
			continue
		}
		info := c.CachedInfo()
		l.Consumer, l.Pending, l.AckPending = true, info.NumPending, uint64(info.NumAckPending)
	}
	slices.SortFunc(out.Subscriptions, func(a, b subLine) int {
		if a.Type != b.Type {
			return cmpString(a.Type, b.Type)
		}
		return cmpString(a.Name, b.Name)
	})
	if *asJSON {
		return writeJSON(e.stdout, out)
	}
	return printSubs(e.stdout, out)
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func printSubs(w io.Writer, res subsResult) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tSUBSCRIPTION\tSTREAM\tFILTER\tPULLER\tPENDING\tACK PENDING\tAPPLIED\tTERMINATED")
	for _, l := range res.Subscriptions {
		filter, puller, pending, ackPending := l.Subject, l.Puller, fmt.Sprint(l.Pending), fmt.Sprint(l.AckPending)
		if filter == "" {
			filter = "(all)"
		}
		if puller == "" {
			puller = "-"
		}
		if !l.Consumer {
			pending, ackPending = "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", l.Type, l.Name, l.Stream, filter, puller, pending, ackPending, l.Applied, l.Terminated)
	}
	for _, h := range res.Missing {
		fmt.Fprintf(tw, "(host %s did not answer)\n", h)
	}
	return tw.Flush()
}
