package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/router"
)

const remindUsage = `Usage: troupe remind [connection flags] [--timeout D] [--method M] [--tz ZONE] TYPE ID NAME SCHEDULE [PAYLOAD]

Sets the durable reminder NAME of the actor (TYPE, ID), replacing one of the
same name: on SCHEDULE the actor's method M is called with PAYLOAD (- reads
standard input), on whichever host owns the actor then, at least once per
firing. SCHEDULE is one of
  @at 2026-12-31T23:59:00Z    once (RFC 3339)
  @every 30s                  an interval of at least 1s
  "0 30 9 * * 1-5"            cron: seconds minutes hours day-of-month month day-of-week
  @hourly @daily @weekly @monthly @yearly

Flags:
  --method M        the method to call (default remind)
  --tz ZONE         a cron schedule's IANA time zone (default UTC)
  --timeout D       deadline, connecting included (default 5s)

` + connUsage + `
Example, with troupe dev running (the counter grows by 1 every 5 seconds):
  troupe remind --method add counter c1 tick '@every 5s' 1
`

const remindersUsage = `Usage: troupe reminders [connection flags] [--timeout D] [--delete NAME] TYPE ID

Lists the reminders of the actor (TYPE, ID), one a line: name, schedule,
time zone (- for none), method. With --delete, deletes the reminder NAME
instead (no error if there is none).

Flags:
  --delete NAME     delete this reminder
  --timeout D       deadline, connecting included (default 5s)

` + connUsage

func runRemind(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("remind", remindUsage, e.stderr)
	var conn connFlags
	conn.register(fs, e.getenv)
	timeout := fs.Duration("timeout", router.DefaultTimeout, "deadline")
	method := fs.String("method", "", "the method to call")
	tz := fs.String("tz", "", "time zone of a cron schedule")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if n := fs.NArg(); n < 4 || n > 5 {
		return usagef(fs, "want TYPE ID NAME SCHEDULE [PAYLOAD], got %d arguments", n)
	}
	if *timeout <= 0 {
		return usagef(fs, "--timeout must be positive")
	}
	payload, err := readPayload(fs.Args()[4:], e.stdin)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	rem := router.Reminder{Name: fs.Arg(2), Schedule: fs.Arg(3), TimeZone: *tz, Method: *method, Payload: payload}
	return withRouter(ctx, &conn, "troupe remind", func(r *router.Router) error {
		return r.SetReminder(ctx, placement.ActorType(fs.Arg(0)), placement.ActorID(fs.Arg(1)), rem)
	})
}

func runReminders(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("reminders", remindersUsage, e.stderr)
	var conn connFlags
	conn.register(fs, e.getenv)
	timeout := fs.Duration("timeout", router.DefaultTimeout, "deadline")
	del := fs.String("delete", "", "delete this reminder")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if n := fs.NArg(); n != 2 {
		return usagef(fs, "want TYPE ID, got %d arguments", n)
	}
	if *timeout <= 0 {
		return usagef(fs, "--timeout must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	typ, id := placement.ActorType(fs.Arg(0)), placement.ActorID(fs.Arg(1))
	return withRouter(ctx, &conn, "troupe reminders", func(r *router.Router) error {
		if *del != "" {
			return r.DeleteReminder(ctx, typ, id, *del)
		}
		list, err := r.Reminders(ctx, typ, id)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		for _, rem := range list {
			zone := rem.TimeZone
			if zone == "" {
				zone = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", rem.Name, rem.Schedule, zone, rem.Method)
		}
		return tw.Flush()
	})
}

// withRouter connects, follows the membership and runs f, all before ctx's
// deadline. Setup errors are *router.Error values, as f's are.
func withRouter(ctx context.Context, conn *connFlags, name string, f func(*router.Router) error) error {
	return withRouterConfig(ctx, conn, name, router.Config{}, f)
}

// withRouterConfig is withRouter with a router configuration (tracing).
func withRouterConfig(ctx context.Context, conn *connFlags, name string, rcfg router.Config, f func(*router.Router) error) error {
	deadline, _ := ctx.Deadline()
	nc, err := conn.connect(name, nats.Timeout(time.Until(deadline)))
	if err != nil {
		return setupError(err)
	}
	defer nc.Close()
	r, err := router.New(ctx, nc, rcfg)
	if err != nil {
		return setupError(err)
	}
	defer r.Close()
	return f(r)
}
