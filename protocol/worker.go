package protocol

import "time"

// Actors in other languages (PROTOCOL.md, "Actors in other languages
// (workers)"). A type served by workers is registered on a Go host, which
// keeps placement, the mailbox, fencing, call chains, timers, reminders and
// the state save; each turn is a NATS request to a worker service, a
// pb.WorkerTurn answered by a pb.WorkerAnswer.

// WorkerSubject is where a host sends the turns of an actor of type typ:
// <prefix>.worker.<type>.
func WorkerSubject(prefix string, typ ActorType) string { return prefix + ".worker." + string(typ) }

// WorkerQueue is the queue group in which workers take turns:
// <prefix>.workers.
func WorkerQueue(prefix string) string { return prefix + ".workers" }

// DefaultWorkerTimeout bounds one worker turn on the host: a worker that
// has not answered by then (it died, or hangs) fails the turn with
// CodeUnavailable and nothing of it is saved.
const DefaultWorkerTimeout = 2 * time.Second

// WorkerCode reports whether a worker may end a turn with code: the codes of
// an actor's own failures. Any other code in an answer is a fault of the
// worker and reaches the caller as CodeInternal.
func WorkerCode(code Code) bool {
	switch code {
	case CodeApplication, CodeInvalidArgument, CodeUnknownMethod, CodeInternal:
		return true
	}
	return false
}
