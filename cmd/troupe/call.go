package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

const callUsage = `Usage: troupe call [connection flags] [--timeout D] TYPE ID METHOD [PAYLOAD]

Calls METHOD on the actor (TYPE, ID) and prints the reply on standard output.
PAYLOAD is the request body: none means empty, - reads standard input. A failed
call prints its error code and message on standard error and exits 1, e.g.
  troupe: NO_HOST: no live host serves actor type "nosuch"

Flags:
  --timeout D       deadline of the whole call, connecting included (default 5s)
  --call-id ID      the call's idempotency id (default: a new random one). A
                    stateful actor runs one id's change at most once, so a
                    script that runs the same call again with the same ID,
                    after a failure, cannot apply it twice. Within the call,
                    troupe retries with it until the deadline.

` + connUsage + `
With the OpenTelemetry environment set (as for troupe host), the call is
traced and the host's turn joins its trace.

Example, with troupe dev running:
  troupe call counter c1 add 5
`

func runCall(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("call", callUsage, e.stderr)
	var conn connFlags
	conn.register(fs, e.getenv)
	timeout := fs.Duration("timeout", router.DefaultTimeout, "deadline of the call")
	callID := fs.String("call-id", "", "the call's idempotency id")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if n := fs.NArg(); n < 3 || n > 4 {
		return usagef(fs, "want TYPE ID METHOD [PAYLOAD], got %d arguments", n)
	}
	if *timeout <= 0 {
		return usagef(fs, "--timeout must be positive")
	}
	if *callID != "" && !protocol.ValidCallID(*callID) {
		return usagef(fs, "--call-id must be 1–%d printable ASCII characters without spaces", protocol.MaxCallID)
	}
	payload, err := readPayload(fs.Args()[3:], e.stdin)
	if err != nil {
		return err
	}
	tracing, err := startCLITracing(ctx, e.getenv) // OTEL_* environment, as for hosts
	if err != nil {
		return err
	}
	defer tracing.flush()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	reply, err := call(ctx, &conn, tracing.routerConfig(router.Config{}), fs.Arg(0), fs.Arg(1), fs.Arg(2), payload, *callID)
	if err != nil {
		return err
	}
	return writeReply(e.stdout, reply)
}

// readPayload returns the PAYLOAD argument, or standard input for "-".
func readPayload(args []string, stdin io.Reader) ([]byte, error) {
	switch {
	case len(args) == 0:
		return nil, nil
	case args[0] == "-":
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read payload from standard input: %w", err)
		}
		return b, nil
	}
	return []byte(args[0]), nil
}

// call connects, follows the membership and makes one call, all before
// ctx's deadline. Every error it returns is a *router.Error.
func call(ctx context.Context, conn *connFlags, rcfg router.Config, typ, id, method string, payload []byte, callID string) ([]byte, error) {
	var reply []byte
	var opts []router.CallOption
	if callID != "" {
		opts = append(opts, router.WithCallID(callID))
	}
	err := withRouterConfig(ctx, conn, "troupe call", rcfg, func(r *router.Router) (err error) {
		reply, err = r.Call(ctx, placement.ActorType(typ), placement.ActorID(id), method, payload, opts...)
		return err
	})
	return reply, err
}

// setupError gives a failure to connect or to read the membership a code.
func setupError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return router.Errorf(router.CodeDeadlineExceeded, "%w", err)
	}
	return router.Errorf(router.CodeUnavailable, "%w", err)
}

// writeReply prints a reply body, ending it with a newline if it has none.
func writeReply(w io.Writer, body []byte) error {
	if !bytes.HasSuffix(body, []byte("\n")) {
		body = append(body, '\n')
	}
	_, err := w.Write(body)
	return err
}
