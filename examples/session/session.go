// Package session is the reminder example that `troupe dev` and `troupe
// host` serve: a login session that expires after a time to live unless it
// is touched, with the expiry kept as a durable reminder by the NATS server.
// Hosts can crash, restart or rebalance in between: the session still
// expires, on whichever host owns it then.
//
//	open TTL   opens (or reopens) the session for TTL, a Go duration of at
//	           least 1s such as 30s; replies the session
//	touch      pushes the expiry TTL into the future again; an expired or
//	           unopened session is an APPLICATION error "expired"
//	close      ends the session now and deletes its reminder
//	get        replies the session
//
// A session replies JSON: {"state":"open","expires":"2026-…Z"}, or
// {"state":"expired",…} with expiry_fires (how many times the expiry
// reminder fired for the last deadline: more than 1 is a duplicate delivery,
// see docs/GUARANTEES.md) and expired_on (the host that ran the expiry).
package session

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// Type is the actor type the session is registered as.
const Type placement.ActorType = "session"

// The reminder that expires a session, and the method it calls.
const (
	reminder     = "expiry"
	expireMethod = "expire"
)

// State is a session's durable state, and its reply.
type State struct {
	State       string           `json:"state"` // "open", "expired" or "closed"; "" before the first open
	TTL         string           `json:"ttl,omitempty"`
	Expires     time.Time        `json:"expires,omitzero"`
	ExpiryFires int              `json:"expiry_fires,omitempty"`
	ExpiredOn   placement.HostID `json:"expired_on,omitempty"`
}

// Session is one session activation.
type Session struct {
	self *host.Self
	st   State
}

// New is the session's host.Factory.
func New(self *host.Self) host.Actor { return &Session{self: self} }

// Register adds the session type to h.
func Register(h *host.Host) error { return h.Register(Type, New) }

// Activate reads the durable session.
func (s *Session) Activate(context.Context) error {
	if b := s.self.State(); len(b) > 0 {
		if err := json.Unmarshal(b, &s.st); err != nil {
			return protocol.Errorf(protocol.CodeInternal, "stored session: %v", err)
		}
	}
	return nil
}

// Receive runs the session's methods.
func (s *Session) Receive(ctx context.Context, call host.Call) ([]byte, error) {
	var err error
	switch call.Method {
	case "open":
		err = s.open(ctx, strings.TrimSpace(string(call.Payload)))
	case "touch":
		if s.st.State != "open" {
			return nil, protocol.AppError("expired", "the session is not open")
		}
		err = s.arm(ctx, s.st.TTL)
	case "close":
		if err = s.self.DeleteReminder(ctx, reminder); err == nil && s.st.State == "open" {
			s.st.State = "closed"
		}
	case expireMethod:
		s.expire(call)
	case "get":
	default:
		return nil, host.UnknownMethod(call)
	}
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(s.st)
	s.self.SetState(b)
	return b, nil
}

func (s *Session) open(ctx context.Context, ttl string) error {
	d, err := time.ParseDuration(ttl)
	if err != nil || d < time.Second {
		return protocol.Errorf(protocol.CodeInvalidArgument, "open wants a time to live of at least 1s, such as 30s; got %q", ttl)
	}
	s.st = State{State: "open", TTL: d.String()}
	return s.arm(ctx, s.st.TTL)
}

// arm sets the expiry reminder TTL from now. The reminder's payload is the
// deadline it was set for, so that a firing overtaken by a touch is ignored.
func (s *Session) arm(ctx context.Context, ttl string) error {
	d, _ := time.ParseDuration(ttl)
	expires := s.self.Now().Add(d).UTC()
	err := s.self.SetReminder(ctx, router.Reminder{
		Name:     reminder,
		Schedule: protocol.At(expires),
		Method:   expireMethod,
		Payload:  strconv.AppendInt(nil, expires.UnixNano(), 10),
	})
	if err != nil {
		return err
	}
	s.st.Expires, s.st.ExpiryFires, s.st.ExpiredOn = expires, 0, ""
	return nil
}

// expire ends the session unless the firing is for a deadline a touch has
// since moved. (A later deadline than the stored one is the live reminder
// too: a touch whose turn failed after moving the reminder.) Every such
// firing is counted, duplicates included.
func (s *Session) expire(call host.Call) {
	deadline, err := strconv.ParseInt(string(call.Payload), 10, 64)
	if err != nil || s.st.Expires.IsZero() || deadline < s.st.Expires.UnixNano() {
		return // an old deadline's firing
	}
	s.st.ExpiryFires++
	if s.st.State == "open" {
		s.st.State = "expired"
		s.st.ExpiredOn = s.self.Host()
	}
}
