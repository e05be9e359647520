package protocol

import "time"

// Reminders are JetStream message schedules in one stream, kept by the NATS
// server. Each reminder has a schedule subject, which holds its schedule
// message, and a fire subject, where the server stores its firings until a
// host has delivered them. Subjects carry the actor's id id-encoded and the
// reminder's name, one token from [A-Za-z0-9_-].

// Defaults for reminders.
const (
	// DefaultReminderStream is the stream that holds reminders unless a
	// deployment configures another.
	DefaultReminderStream = "troupe_reminders"
	// DefaultReminderMethod is the method a reminder calls when it names none.
	DefaultReminderMethod = "remind"
	// ReminderConsumer is the durable consumer of the reminder stream the
	// reminder pullers take firings from.
	ReminderConsumer = "troupe_fire"
)

// ReminderStreamSubjects is the reminder stream's subjects: <prefix>.rmd.>.
func ReminderStreamSubjects(prefix string) string { return prefix + ".rmd.>" }

// ScheduleSubjects matches every reminder's schedule subject:
// <prefix>.rmd.sched.>.
func ScheduleSubjects(prefix string) string { return prefix + ".rmd.sched.>" }

// FireSubjects matches every reminder's fire subject, the filter of
// ReminderConsumer: <prefix>.rmd.fire.>.
func FireSubjects(prefix string) string { return prefix + ".rmd.fire.>" }

// ScheduleSubject is the subject of a reminder's schedule message:
// <prefix>.rmd.sched.<type>.<id-encoded id>.<name>.
func ScheduleSubject(prefix string, typ ActorType, id ActorID, name string) string {
	return prefix + ".rmd.sched." + string(typ) + "." + EncodeID(string(id)) + "." + name
}

// FireSubject is the subject where a reminder's firings are stored:
// <prefix>.rmd.fire.<type>.<id-encoded id>.<name>.
func FireSubject(prefix string, typ ActorType, id ActorID, name string) string {
	return prefix + ".rmd.fire." + string(typ) + "." + EncodeID(string(id)) + "." + name
}

// ReminderSubjects matches a reminder's schedule and fire subjects both, so
// that one purge deletes the reminder and its firings not yet delivered:
// <prefix>.rmd.*.<type>.<id-encoded id>.<name>.
func ReminderSubjects(prefix string, typ ActorType, id ActorID, name string) string {
	return prefix + ".rmd.*." + string(typ) + "." + EncodeID(string(id)) + "." + name
}

// ActorScheduleSubjects matches the schedule subjects of an actor's
// reminders, to list them: <prefix>.rmd.sched.<type>.<id-encoded id>.*.
func ActorScheduleSubjects(prefix string, typ ActorType, id ActorID) string {
	return prefix + ".rmd.sched." + string(typ) + "." + EncodeID(string(id)) + ".*"
}

// SplitScheduleSubject returns the three tokens that follow
// <prefix>.rmd.sched. in subject: the type, the id (still encoded) and the
// reminder's name. ok is false when subject is not so made. The tokens are
// not validated.
func SplitScheduleSubject(prefix, subject string) (typ, encodedID, name string, ok bool) {
	t, ok := splitAfter(subject, prefix+".rmd.sched.", 3)
	if !ok {
		return "", "", "", false
	}
	return t[0], t[1], t[2], true
}

// SplitFireSubject is SplitScheduleSubject for a fire subject.
func SplitFireSubject(prefix, subject string) (typ, encodedID, name string, ok bool) {
	t, ok := splitAfter(subject, prefix+".rmd.fire.", 3)
	if !ok {
		return "", "", "", false
	}
	return t[0], t[1], t[2], true
}

// Headers of a schedule message that the NATS server reads (message
// schedules, nats-server 2.12 and later).
const (
	// HeaderNatsSchedule is the schedule: see At, Every, or a cron pattern of
	// six fields, or @yearly, @monthly, @weekly, @daily, @hourly.
	HeaderNatsSchedule = "Nats-Schedule"
	// HeaderNatsScheduleTarget is the reminder's FireSubject.
	HeaderNatsScheduleTarget = "Nats-Schedule-Target"
	// HeaderNatsScheduleRollup is ScheduleRollupSubject: firings that wait
	// for a host coalesce into the latest one per reminder. Only on a
	// reminder stream without a limit of one message per subject (made by
	// an older troupe); the limit coalesces them more cheaply.
	HeaderNatsScheduleRollup = "Nats-Schedule-Rollup"
	// HeaderNatsScheduleTimeZone is an IANA time zone for a cron schedule;
	// optional (UTC).
	HeaderNatsScheduleTimeZone = "Nats-Schedule-Time-Zone"
)

// ScheduleRollupSubject is the value of HeaderNatsScheduleRollup.
const ScheduleRollupSubject = "sub"

// Headers the NATS server puts on a firing, in place of the schedule
// headers.
const (
	HeaderNatsScheduler    = "Nats-Scheduler"     // the schedule's subject
	HeaderNatsScheduleNext = "Nats-Schedule-Next" // the next time, or "purge"
)

// Headers troupe adds to reminders.
const (
	// HeaderReminderMethod is the method a reminder calls, on its schedule
	// message and in a reminder gateway set request; default
	// DefaultReminderMethod.
	HeaderReminderMethod = "Troupe-Reminder-Method"
	// HeaderReminder names the reminder on the call a firing makes.
	HeaderReminder = "Troupe-Reminder"
	// HeaderReminderSeq is the reminder stream's sequence number of the
	// firing, on the call it makes: unique per firing, and the same when a
	// firing is delivered again, so an actor can drop duplicates.
	HeaderReminderSeq = "Troupe-Reminder-Seq"
)

// At is the schedule of a reminder that fires once, at t:
// "@at <RFC 3339 time>", in UTC.
func At(t time.Time) string { return "@at " + t.UTC().Format(time.RFC3339Nano) }

// Every is the schedule of a reminder that fires every d (at least 1s):
// "@every <Go duration>".
func Every(d time.Duration) string { return "@every " + d.String() }

// Reminder is a durable schedule on which an actor is called. Its JSON form
// is an element of the reminder gateway's list reply.
type Reminder struct {
	// Name identifies the reminder among its actor's: 1–64 characters from
	// A-Z a-z 0-9 _ -. Setting a reminder replaces any of the same name.
	Name string `json:"name"`
	// Schedule is "@at <RFC 3339 time>" (once; see At), "@every <duration>"
	// (at least 1s; see Every), a cron pattern of six fields (seconds
	// minutes hours day-of-month month day-of-week, such as "0 30 9 * * 1-5")
	// or one of @yearly, @monthly, @weekly, @daily, @hourly.
	Schedule string `json:"schedule"`
	// TimeZone is an IANA time zone for a cron schedule, such as
	// "Europe/Amsterdam"; "" means UTC. Not allowed with @at and @every.
	TimeZone string `json:"time_zone,omitempty"`
	// Method is the method the reminder calls; "" means "remind".
	Method string `json:"method,omitempty"`
	// Payload is the call's payload.
	Payload []byte `json:"payload,omitempty"`
}

// The reminder gateway lets a client set, delete and list reminders without
// speaking the stream's layout. Hosts answer it in GatewayQueue.

// Verbs of the reminder gateway, the token after <prefix>.reminder.
const (
	ReminderSet    = "set"
	ReminderDelete = "delete"
	ReminderList   = "list"
)

// ReminderGatewaySubjects matches every reminder gateway request:
// <prefix>.reminder.>.
func ReminderGatewaySubjects(prefix string) string { return prefix + ".reminder.>" }

// ReminderSetSubject sets a reminder: <prefix>.reminder.set.<type>.<id>.<name>.
func ReminderSetSubject(prefix string, typ ActorType, id ActorID, name string) string {
	return reminderGateway(prefix, ReminderSet, typ, id) + "." + name
}

// ReminderDeleteSubject deletes a reminder:
// <prefix>.reminder.delete.<type>.<id>.<name>.
func ReminderDeleteSubject(prefix string, typ ActorType, id ActorID, name string) string {
	return reminderGateway(prefix, ReminderDelete, typ, id) + "." + name
}

// ReminderListSubject lists an actor's reminders:
// <prefix>.reminder.list.<type>.<id>.
func ReminderListSubject(prefix string, typ ActorType, id ActorID) string {
	return reminderGateway(prefix, ReminderList, typ, id)
}

func reminderGateway(prefix, verb string, typ ActorType, id ActorID) string {
	return prefix + ".reminder." + verb + "." + string(typ) + "." + EncodeID(string(id))
}

// SplitReminderGatewaySubject returns the tokens that follow
// <prefix>.reminder. in subject: the verb, the type, the id (still encoded)
// and, for set and delete, the reminder's name. ok is false when subject
// does not start so, or when the verb is unknown or has the wrong number
// of tokens after it. The tokens are not validated.
func SplitReminderGatewaySubject(prefix, subject string) (verb, typ, encodedID, name string, ok bool) {
	t, ok := splitAfter(subject, prefix+".reminder.", 4)
	if ok && (t[0] == ReminderSet || t[0] == ReminderDelete) {
		return t[0], t[1], t[2], t[3], true
	}
	if t, ok := splitAfter(subject, prefix+".reminder.", 3); ok && t[0] == ReminderList {
		return t[0], t[1], t[2], "", true
	}
	return "", "", "", "", false
}

// Headers of a reminder gateway set request, besides HeaderReminderMethod.
const (
	HeaderSchedule         = "Troupe-Schedule"           // the schedule (required)
	HeaderScheduleTimeZone = "Troupe-Schedule-Time-Zone" // a cron schedule's time zone
)
