// Command troupe runs troupe hosts and calls their actors.
//
//	troupe dev   [--listen HOST:PORT] [--store DIR] [--sync always|DURATION] [--ui ADDR] [observability flags]
//	troupe host  [-s URL] [connection flags] [--name NAME] [--lease-ttl D] [--ledger FILE] [--ui ADDR] [observability flags]
//	troupe call  [-s URL] [connection flags] [--timeout D] TYPE ID METHOD [PAYLOAD]
//	troupe remind    [-s URL] [connection flags] [--method M] [--tz ZONE] TYPE ID NAME SCHEDULE [PAYLOAD]
//	troupe reminders [-s URL] [connection flags] [--delete NAME] TYPE ID
//	troupe hosts [-s URL] [connection flags] [-l] [--json]
//	troupe where  [-s URL] [connection flags] [--json] TYPE ID
//	troupe table  [-s URL] [connection flags] [--json] [TYPE]
//	troupe actors [-s URL] [connection flags] [--json] [--host NAME]
//	troupe subs   [-s URL] [connection flags] [--json]
//
// The connection flags follow the nats CLI: -s/--server (default $NATS_URL,
// else nats://127.0.0.1:4222) and --creds. Flags come before arguments, so a
// PAYLOAD may start with a dash (troupe call counter c1 add -5). Exit status
// is 0 on success, 1 when the command fails and 2 for a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/troupe-dev/troupe/router"
)

const usage = `troupe is a virtual-actor router on NATS.

Usage:
  troupe dev   [--listen HOST:PORT] [--store DIR] [--sync always|DURATION] [--ui ADDR]
  troupe host  [-s URL] [connection flags] [--name NAME] [--lease-ttl D] [--ledger FILE] [--ui ADDR]
  troupe call  [-s URL] [connection flags] [--timeout D] TYPE ID METHOD [PAYLOAD]
  troupe remind    [-s URL] [connection flags] [--method M] [--tz ZONE] TYPE ID NAME SCHEDULE [PAYLOAD]
  troupe reminders [-s URL] [connection flags] [--delete NAME] TYPE ID
  troupe hosts [-s URL] [connection flags] [-l] [--json]
  troupe where  [-s URL] [connection flags] [--json] TYPE ID
  troupe table  [-s URL] [connection flags] [--json] [TYPE]
  troupe actors [-s URL] [connection flags] [--json] [--host NAME]
  troupe subs   [-s URL] [connection flags] [--json]
  troupe help  [COMMAND]

Commands:
  dev    run an embedded NATS server with JetStream and a host with the example actors
  host   join a host with the example actors to an existing NATS
  call   call an actor and print its reply (PAYLOAD - reads standard input)
  hosts  list the live hosts and the table generation
  remind     set a durable reminder on an actor
  reminders  list an actor's reminders, or delete one
  where  print the host that owns an actor
  table  show how each actor type's placement divides among the hosts
  actors list the active actors, as the hosts report them
  subs   list the stream subscriptions: puller, lag, applied, terminated
  help   print this help, or a command's

-s/--server defaults to $NATS_URL, else nats://127.0.0.1:4222.
Flags come before arguments. Exit status: 0 ok, 1 failure, 2 usage error.
`

// env is what a command may touch of its process.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

func main() {
	e := env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(run(context.Background(), e, os.Args[1:]))
}

// run runs the command named by args[0] and returns the exit status.
func run(ctx context.Context, e env, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return 2
	}
	var err error
	switch name, rest := args[0], args[1:]; name {
	case "dev":
		err = runDev(ctx, e, rest)
	case "host":
		err = runHost(ctx, e, rest)
	case "call":
		err = runCall(ctx, e, rest)
	case "hosts":
		err = runHosts(ctx, e, rest)
	case "remind":
		err = runRemind(ctx, e, rest)
	case "reminders":
		err = runReminders(ctx, e, rest)
	case "where", "table", "actors":
		err = inspectCommands[name](ctx, e, rest)
	case "subs":
		err = runSubs(ctx, e, rest)
	case "help", "-h", "-help", "--help":
		return help(e, rest)
	default:
		fmt.Fprintf(e.stderr, "troupe: unknown command %q\n\n%s", name, usage)
		return 2
	}
	return exitStatus(e.stderr, err)
}

// help prints the usage of troupe or of one command.
func help(e env, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stdout, usage)
		return 0
	}
	text := commandUsage(args[0])
	if text == "" {
		fmt.Fprintf(e.stderr, "troupe: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	fmt.Fprint(e.stdout, text)
	return 0
}

// commandUsage returns a command's usage text, "" for no such command.
func commandUsage(name string) string {
	switch name {
	case "dev":
		return devUsage
	case "host":
		return hostUsage
	case "call":
		return callUsage
	case "hosts":
		return hostsUsage
	case "remind":
		return remindUsage
	case "reminders":
		return remindersUsage
	case "where":
		return whereUsage
	case "table":
		return tableUsage
	case "actors":
		return actorsUsage
	case "subs":
		return subsUsage
	}
	return ""
}

// errUsage is returned for a usage error that has already been reported.
var errUsage = errors.New("usage error")

// exitStatus reports err and returns the exit status it means.
func exitStatus(stderr io.Writer, err error) int {
	var re *router.Error
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.As(err, &re):
		fmt.Fprintln(stderr, re.Error()) // "troupe: CODE: message"
	default:
		fmt.Fprintf(stderr, "troupe: %v\n", err)
	}
	return 1
}

// newFlagSet returns a command's flag set; -h prints text.
func newFlagSet(name, text string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("troupe "+name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() { fmt.Fprint(fs.Output(), text) }
	return fs
}

// parseFlags parses args; flag reports its own errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return errUsage
	}
	return err
}

// usagef reports a usage error of the command fs parses.
func usagef(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(fs.Output(), "%s: %s\n\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return errUsage
}

// noArgs reports a usage error if fs was given positional arguments.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usagef(fs, "unexpected argument %q", fs.Arg(0))
	}
	return nil
}
