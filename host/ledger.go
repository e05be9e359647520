package host

import (
	"time"

	"github.com/troupe-dev/troupe/placement"
)

// ActivationRecord describes one activation's life on a host, for audits
// such as a ledger that proves no two activations of an actor overlapped.
//
// Start is when the host was allowed to activate the actor (before loading
// its state). End is zero while the activation lives; when it ends, End is
// the time after which it started no turn and sent no state save: the time
// it closed, or, when the host dropped it because its lease could no longer
// be trusted, the earlier of that and the moment the lease stopped being
// valid (placement.Lease.Valid).
type ActivationRecord struct {
	Type        placement.ActorType
	ID          placement.ActorID
	Host        placement.HostID
	Incarnation string
	Generation  uint64 // the table generation the activation started in
	Start, End  time.Time
}

// LeaseRecord says that the host's incarnation may run turns and send saves
// until ValidUntil, and no later unless a later record extends it: the
// host's lease fence (placement.Lease.Valid). An audit can close the
// activations of a host that died or paused at the last ValidUntil it
// reported.
type LeaseRecord struct {
	Host        placement.HostID
	Incarnation string
	ValidUntil  time.Time
}
