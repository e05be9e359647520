package protocol

// The state bucket is a JetStream KV bucket with one entry per actor,
// written with compare-and-set on the revision the activation read.

// DefaultStateBucket is the state bucket unless a deployment configures
// another.
const DefaultStateBucket = "troupe_state"

// StateKey is the state-bucket key of an actor: <type>.<escaped id>, where
// the id keeps [A-Za-z0-9_-] and every other byte becomes = and two
// upper-case hex digits. (This is not EncodeID: a KV key may not contain %,
// and it keeps fewer bytes as they are.)
func StateKey(typ ActorType, id ActorID) string {
	b := make([]byte, 0, len(typ)+1+len(id)*3)
	b = append(b, typ...)
	b = append(b, '.')
	return string(appendEscaped(b, string(id), isNameByte, '='))
}

// An entry that holds named keys or recorded calls is a protobuf
// troupe.v1.ActorState marked with this header; an entry without it is the
// actor's unnamed state bytes.
const (
	HeaderStateFormat = "Troupe-State"
	StateFormatKeys   = "keys" // the value of HeaderStateFormat
)

// MaxStateKeyName is the longest name of a named state key, in bytes; names
// are 1 to MaxStateKeyName bytes of UTF-8.
const MaxStateKeyName = 256

// StreamMsgGetSubject is JetStream's API subject for reading one message of
// a stream (such as a bucket's KVStream) by sequence or last-by-subject:
// $JS.API.STREAM.MSG.GET.<stream>.
func StreamMsgGetSubject(stream string) string { return "$JS.API.STREAM.MSG.GET." + stream }
