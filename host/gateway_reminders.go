package host

import (
	"context"
	"encoding/json"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// Headers of a reminder gateway request (see PROTOCOL.md, "Reminders"):
// protocol.HeaderSchedule and protocol.HeaderScheduleTimeZone.
const (
	HeaderSchedule         = protocol.HeaderSchedule         // the schedule, for set
	HeaderScheduleTimeZone = protocol.HeaderScheduleTimeZone // a cron schedule's time zone, for set
)

// serveReminderGateway answers <prefix>.reminder.set|delete.<type>.<id>.<name>
// and <prefix>.reminder.list.<type>.<id>, for clients that do not speak the
// reminder stream's layout. Each request is a JetStream round trip, so it
// runs on a goroutine of its own.
func (h *Host) serveReminderGateway(msg *nats.Msg) {
	if msg.Reply == "" {
		return
	}
	deadline, e := h.deadline(msg.Header)
	if e != nil {
		h.fail(msg, e)
		return
	}
	h.eng.turns.add()
	go func() {
		defer h.eng.turns.done()
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		body, err := h.reminderRequest(ctx, msg)
		if err != nil {
			h.fail(msg, protocol.AsError(err))
			return
		}
		h.respond(msg, &nats.Msg{Data: body})
	}()
}

func (h *Host) reminderRequest(ctx context.Context, msg *nats.Msg) ([]byte, error) {
	verb, rawType, rawID, name, ok := protocol.SplitReminderGatewaySubject(h.cfg.SubjectPrefix, msg.Subject)
	if !ok {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "reminder subject %q: want %[2]s.reminder.set.<type>.<id>.<name>, %[2]s.reminder.delete.<type>.<id>.<name> or %[2]s.reminder.list.<type>.<id>", msg.Subject, h.cfg.SubjectPrefix)
	}
	typ := placement.ActorType(rawType)
	id, err := protocol.DecodeID(rawID)
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "malformed actor id %q: %v", rawID, err)
	}
	switch verb {
	case protocol.ReminderList:
		list, err := h.router.Reminders(ctx, typ, placement.ActorID(id))
		if err != nil {
			return nil, err
		}
		if list == nil {
			list = []router.Reminder{}
		}
		return json.Marshal(list)
	case protocol.ReminderDelete:
		return nil, h.router.DeleteReminder(ctx, typ, placement.ActorID(id), name)
	default: // protocol.ReminderSet
		return nil, h.router.SetReminder(ctx, typ, placement.ActorID(id), router.Reminder{
			Name:     name,
			Schedule: msg.Header.Get(protocol.HeaderSchedule),
			TimeZone: msg.Header.Get(protocol.HeaderScheduleTimeZone),
			Method:   msg.Header.Get(protocol.HeaderReminderMethod),
			Payload:  msg.Data,
		})
	}
}
