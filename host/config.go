package host

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// Defaults for Config.
const (
	DefaultSubjectPrefix = protocol.DefaultSubjectPrefix
	DefaultStateBucket   = protocol.DefaultStateBucket
	DefaultMailboxSize   = 256
	DefaultIdleTimeout   = 15 * time.Minute
	DefaultCallTimeout   = 5 * time.Second
	DefaultSaveTimeout   = 5 * time.Second
	// DefaultMaxCallChainDepth bounds the actors a call chain passes through.
	DefaultMaxCallChainDepth = 32
)

// Clock tells the time for idle deactivation and Self.Now. Timers and the
// idle sweeps run on the runtime's timers; package actortest runs actors on
// a clock it moves by hand, timers included.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Config configures a Host. The zero value of every field means its default;
// DefaultConfig shows them.
type Config struct {
	// ID names the host; "" means a random id ("h-" and 8 hex digits).
	ID placement.HostID
	// SubjectPrefix starts every troupe subject; the host takes calls on
	// <prefix>.host.<id>.
	SubjectPrefix string
	// Membership configures the membership bucket.
	Membership placement.BucketConfig
	// Lease configures the host's lease on its membership record.
	Lease placement.LeaseConfig
	// StateBucket is the KV bucket holding actor state.
	StateBucket string
	// StateReplicas is the state bucket's replica count; 0 means automatic:
	// an existing bucket keeps its count and a new one gets the membership
	// bucket's (3 on a JetStream cluster of 3 or more servers, else 1; see
	// placement.EnsureBucket).
	StateReplicas int
	// MailboxSize bounds the calls waiting for one activation.
	MailboxSize int
	// IdleTimeout deactivates an activation that received no call for this
	// long.
	IdleTimeout time.Duration
	// CallTimeout bounds a call whose request carries no timeout.
	CallTimeout time.Duration
	// SaveTimeout bounds one state save.
	SaveTimeout time.Duration
	// MaxCallChainDepth refuses, with protocol.ErrChainTooDeep, a call whose
	// call chain already passes through this many actors.
	MaxCallChainDepth int
	// ReminderStream is the stream that holds reminders ("" means
	// protocol.DefaultReminderStream); DisableReminders leaves this host out
	// of delivering them (it neither creates the stream nor reads firings).
	ReminderStream   string
	DisableReminders bool
	// DisableGateway keeps the host out of the gateway's queue group
	// (<prefix>.call.>): it then takes calls only on its own subject.
	DisableGateway bool
	// Clock tells the time for idle deactivation and Self.Now; nil means
	// the system clock.
	Clock Clock
	// Logger receives the host's logs; nil means slog.Default(). Every line
	// carries the host id.
	Logger *slog.Logger
	// Metrics, if set, receives the host's Prometheus metrics and its
	// router's; nil means none. A registry reports one host: for several
	// hosts in one process give each its own, or wrap one with
	// prometheus.WrapRegistererWith and a host label.
	Metrics prometheus.Registerer
	// TracerProvider, if set, traces turns (continuing the W3C trace
	// context a request carries) and the host's calls to other actors; nil
	// means no tracing.
	TracerProvider trace.TracerProvider
	// OnActivation, if set, is called when an activation starts and when it
	// ends (see ActivationRecord), from the activation's own goroutine or
	// the host's: it must return quickly.
	OnActivation func(ActivationRecord)
	// OnLeaseValid, if set, is called each time the host's lease is
	// extended, before the host acts on the extension (see LeaseRecord). It
	// must return quickly.
	OnLeaseValid func(LeaseRecord)

	// fireAckWait, if set, replaces the reminder consumer's ack wait
	// (reminders.go), for tests that wait it out.
	fireAckWait time.Duration
	// recordAfter, if set, replaces recordAfter (handoff.go), for tests
	// that need a bound a loaded machine keeps.
	recordAfter time.Duration
}

// DefaultConfig returns a Config with every default filled in (and a random
// ID).
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	if c.ID == "" {
		c.ID = randomHostID()
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = DefaultSubjectPrefix
	}
	if c.StateBucket == "" {
		c.StateBucket = DefaultStateBucket
	}
	if c.ReminderStream == "" {
		c.ReminderStream = protocol.DefaultReminderStream
	}
	if c.MailboxSize == 0 {
		c.MailboxSize = DefaultMailboxSize
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.SaveTimeout == 0 {
		c.SaveTimeout = DefaultSaveTimeout
	}
	if c.MaxCallChainDepth == 0 {
		c.MaxCallChainDepth = DefaultMaxCallChainDepth
	}
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// ErrInvalidConfig is wrapped by configuration errors.
var ErrInvalidConfig = errors.New("host: invalid config")

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := c.ID.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if err := validSubjectPrefix(c.SubjectPrefix); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if c.MailboxSize < 1 || c.IdleTimeout < 0 || c.CallTimeout < 0 || c.SaveTimeout < 0 || c.MaxCallChainDepth < 1 {
		return fmt.Errorf("%w: mailbox size, idle, call and save timeouts and call chain depth must be positive", ErrInvalidConfig)
	}
	return nil
}

func validSubjectPrefix(p string) error {
	if p == "" || p[0] == '.' || p[len(p)-1] == '.' {
		return fmt.Errorf("subject prefix %q must not be empty or start or end with a dot", p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c == '*' || c == '>' || c >= 0x7f || c == '.' && p[i-1] == '.' {
			return fmt.Errorf("subject prefix %q must be literal subject tokens", p)
		}
	}
	return nil
}

func randomHostID() placement.HostID {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return placement.HostID("h-" + hex.EncodeToString(b[:]))
}

func randomIncarnation() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
