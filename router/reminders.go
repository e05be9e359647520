package router

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// Reminders are durable schedules kept by the NATS server, not by any host:
// each one is a JetStream message schedule in the reminder stream (see
// PROTOCOL.md, "Reminders"). When it fires, the server stores a message in the
// same stream; a host reads it from a shared durable consumer and delivers it
// to the actor as a call, on whichever host owns the actor then.

// Defaults for reminders, each the protocol name of the same name;
// DefaultSubjectPrefix is protocol.DefaultSubjectPrefix.
const (
	DefaultReminderStream = protocol.DefaultReminderStream
	DefaultSubjectPrefix  = protocol.DefaultSubjectPrefix
	DefaultReminderMethod = protocol.DefaultReminderMethod
)

// Headers of reminders, each the protocol header of the same name.
const (
	HeaderReminder       = protocol.HeaderReminder
	HeaderReminderSeq    = protocol.HeaderReminderSeq
	HeaderReminderMethod = protocol.HeaderReminderMethod
)

// Reminder is protocol.Reminder: a durable schedule on which an actor is
// called.
type Reminder = protocol.Reminder

// At is protocol.At: the schedule of a reminder that fires once, at t.
func At(t time.Time) string { return protocol.At(t) }

// Every is protocol.Every: the schedule of a reminder that fires every d
// (at least 1s).
func Every(d time.Duration) string { return protocol.Every(d) }

// ScheduleSubject is protocol.ScheduleSubject: the reminder stream subject
// of a reminder's schedule message.
func ScheduleSubject(prefix string, typ placement.ActorType, id placement.ActorID, name string) string {
	return protocol.ScheduleSubject(prefix, typ, id, name)
}

// FireSubject is protocol.FireSubject: the reminder stream subject where a
// reminder's firings are stored.
func FireSubject(prefix string, typ placement.ActorType, id placement.ActorID, name string) string {
	return protocol.FireSubject(prefix, typ, id, name)
}

// reminderStream finds the reminder stream once and keeps it.
type reminderStream struct {
	mu     sync.Mutex
	js     jetstream.JetStream
	stream jetstream.Stream
}

func (r *Router) prefix() string {
	if r.cfg.SubjectPrefix == "" {
		return protocol.DefaultSubjectPrefix
	}
	return r.cfg.SubjectPrefix
}

func (r *Router) reminderStream(ctx context.Context) (jetstream.Stream, error) {
	r.rem.mu.Lock()
	defer r.rem.mu.Unlock()
	if r.rem.stream != nil {
		return r.rem.stream, nil
	}
	name := r.cfg.ReminderStream
	if name == "" {
		name = protocol.DefaultReminderStream
	}
	js, err := jetstream.New(r.nc)
	if err != nil {
		return nil, err
	}
	s, err := js.Stream(ctx, name)
	r.rem.js = js
	if err != nil {
		return nil, Errorf(CodeUnavailable, "reminder stream %q: %w (is a troupe host running?)", name, err)
	}
	r.rem.stream = s
	return s, nil
}

// SetReminder registers rem for the actor (typ, id), replacing a reminder of
// the same name. It returns once the server has stored the schedule: from
// then on the reminder survives host and server restarts until it is
// deleted or, for @at, has fired. Firings are delivered at least once, as a
// call of rem.Method with rem.Payload and the headers HeaderReminder and
// HeaderReminderSeq. A schedule the server refuses is CodeInvalidSchedule.
func (r *Router) SetReminder(ctx context.Context, typ placement.ActorType, id placement.ActorID, rem Reminder) error {
	if err := r.checkReminder(typ, id, rem.Name); err != nil {
		return err
	}
	method := rem.Method
	if method == "" {
		method = DefaultReminderMethod
	}
	if err := placement.ValidateName("method", method); err != nil {
		return Errorf(CodeInvalidMethod, "%v", err)
	}
	if rem.Schedule == "" {
		return Errorf(CodeInvalidSchedule, "reminder %q has no schedule", rem.Name)
	}
	if r.local != nil {
		rem.Method = method
		return r.local.SetReminder(ctx, typ, id, rem)
	}
	s, err := r.reminderStream(ctx)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(protocol.ScheduleSubject(r.prefix(), typ, id, rem.Name))
	msg.Data = rem.Payload
	msg.Header.Set(protocol.HeaderNatsSchedule, rem.Schedule)
	msg.Header.Set(protocol.HeaderNatsScheduleTarget, protocol.FireSubject(r.prefix(), typ, id, rem.Name))
	// Firings that wait for a consumer (no host running) coalesce into the
	// latest one per reminder instead of piling up: by the stream's limit of
	// one message per subject, or, on a stream made before troupe set that
	// limit, by a rollup on each firing (a subject purge per firing, which
	// costs the server more than storing the firing).
	if s.CachedInfo().Config.MaxMsgsPerSubject != 1 {
		msg.Header.Set(protocol.HeaderNatsScheduleRollup, protocol.ScheduleRollupSubject)
	}
	if rem.TimeZone != "" {
		msg.Header.Set(protocol.HeaderNatsScheduleTimeZone, rem.TimeZone)
	}
	msg.Header.Set(HeaderReminderMethod, method)
	ctx, cancel := r.withTimeout(ctx)
	defer cancel()
	if _, err := r.rem.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(s.CachedInfo().Config.Name)); err != nil {
		return reminderError(rem, err)
	}
	return nil
}

// DeleteReminder removes the actor's reminder name and any firing of it not
// yet delivered. Deleting a reminder that does not exist is not an error. A
// firing already being delivered still runs.
func (r *Router) DeleteReminder(ctx context.Context, typ placement.ActorType, id placement.ActorID, name string) error {
	if err := r.checkReminder(typ, id, name); err != nil {
		return err
	}
	if r.local != nil {
		return r.local.DeleteReminder(ctx, typ, id, name)
	}
	s, err := r.reminderStream(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := r.withTimeout(ctx)
	defer cancel()
	// One purge covers the schedule and its pending firings.
	subject := protocol.ReminderSubjects(r.prefix(), typ, id, name)
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		return Errorf(CodeUnavailable, "delete reminder %q: %w", name, err)
	}
	return nil
}

// Reminders lists the actor's reminders, sorted by name.
func (r *Router) Reminders(ctx context.Context, typ placement.ActorType, id placement.ActorID) ([]Reminder, error) {
	if err := validateCall(typ, id, DefaultReminderMethod); err != nil {
		return nil, err
	}
	if r.local != nil {
		return r.local.Reminders(ctx, typ, id)
	}
	s, err := r.reminderStream(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := r.withTimeout(ctx)
	defer cancel()
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(protocol.ActorScheduleSubjects(r.prefix(), typ, id)))
	if err != nil {
		return nil, Errorf(CodeUnavailable, "list reminders: %w", err)
	}
	var out []Reminder
	for subject := range info.State.Subjects {
		_, _, name, ok := protocol.SplitScheduleSubject(r.prefix(), subject)
		if !ok {
			continue
		}
		m, err := s.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // fired or deleted since
		}
		if err != nil {
			return nil, Errorf(CodeUnavailable, "list reminders: %w", err)
		}
		out = append(out, Reminder{
			Name:     name,
			Schedule: m.Header.Get(protocol.HeaderNatsSchedule),
			TimeZone: m.Header.Get(protocol.HeaderNatsScheduleTimeZone),
			Method:   m.Header.Get(HeaderReminderMethod),
			Payload:  m.Data,
		})
	}
	slices.SortFunc(out, func(a, b Reminder) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (r *Router) checkReminder(typ placement.ActorType, id placement.ActorID, name string) error {
	if err := validateCall(typ, id, DefaultReminderMethod); err != nil {
		return err
	}
	if err := placement.ValidateName("reminder name", name); err != nil {
		return Errorf(CodeInvalidSchedule, "%v", err)
	}
	if _, ok := r.Table().Owner(typ, id); !ok && r.local == nil {
		return Errorf(CodeNoHost, "no live host serves actor type %q", typ)
	}
	return nil
}

func (r *Router) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, r.timeout)
}

// reminderError turns the server's refusal of a schedule into an *Error.
func reminderError(rem Reminder, err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeSchedulePatternInvalid, jetstream.JSErrCodeScheduleTargetInvalid,
			jetstream.JSErrCodeScheduleTTLInvalid, jetstream.JSErrCodeScheduleRollupInvalid,
			jetstream.JSErrCodeScheduleSourceInvalid, errCodeScheduleTimeZoneInvalid:
			return Errorf(CodeInvalidSchedule, "reminder %q: schedule %q (time zone %q): %s", rem.Name, rem.Schedule, rem.TimeZone, apiErr.Description)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Errorf(CodeDeadlineExceeded, "set reminder %q: %w", rem.Name, err)
	}
	return Errorf(CodeUnavailable, "set reminder %q: %w", rem.Name, err)
}

// errCodeScheduleTimeZoneInvalid is the server's error code for an unknown
// Nats-Schedule-Time-Zone (nats.go has no constant for it).
const errCodeScheduleTimeZoneInvalid jetstream.ErrorCode = 10223
