package protocol

import (
	"strconv"
	"strings"
)

// The membership bucket is a JetStream KV bucket that holds one leased host
// record per live host (protobuf troupe.v1.HostRecord) and the hosts' release
// records (troupe.v1.ReleaseRecord, see "Handoff" in PROTOCOL.md).

// DefaultMembershipBucket is the membership bucket unless a deployment
// configures another.
const DefaultMembershipBucket = "troupe_placement"

// HashVersionKey is the membership bucket's stream metadata key that names
// the placement function its hosts place actors by ("troupe.hash:
// troupe-hrw-1"). A client that routes directly refuses a bucket that names
// a function it does not implement.
const HashVersionKey = "troupe.hash"

// HashVersion names the placement function ("Placement hash" in
// PROTOCOL.md) that package placement implements and its golden vectors
// pin. Any change to the function, however small, gets a new version.
const HashVersion = "troupe-hrw-1"

// Version is the newest protocol version this package speaks (PROTOCOL.md,
// "Protocol versions"). A host announces its own in HostRecord.protocol;
// callers use a version's additions only with hosts that announce it.
const Version = 2

// Key prefixes of the membership bucket.
const (
	hostKeyPrefix    = "hosts."
	releaseKeyPrefix = "released."
	aliveKeyPrefix   = "alive."
)

// HostKey is the membership key of a host's record: hosts.<hostID>.
func HostKey(id HostID) string { return hostKeyPrefix + string(id) }

// ReleaseKey is the membership key of a host's release record:
// released.<hostID>.
func ReleaseKey(id HostID) string { return releaseKeyPrefix + string(id) }

// AliveKey is the key a host of protocol version 2 renews its lease on:
// alive.<hostID>. Its value is the host's incarnation; only the few hosts
// that monitor it watch it (PROTOCOL.md, "Membership bucket").
func AliveKey(id HostID) string { return aliveKeyPrefix + string(id) }

// ParseAliveKey returns the host id of a liveness key, like ParseHostKey.
func ParseAliveKey(key string) (id HostID, ok bool) { return parseKey(key, aliveKeyPrefix) }

// LivenessBucket is the name of the liveness bucket that goes with the
// membership bucket membership: "<membership>_alive". It holds the liveness
// keys alive.<hostID> of the hosts whose records name it
// (HostRecord.liveness_bucket), in memory, since a lease outlives no server.
func LivenessBucket(membership string) string { return membership + "_alive" }

// AliveRenewalVersion is the first protocol version whose hosts renew
// alive.<hostID> instead of their host record, and monitor each other.
const AliveRenewalVersion = 2

// SettledKey is the membership key of the settled record
// (troupe.v1.SettledRecord): the latest generation at which every member had
// released, written by a few collector hosts of protocol version 2 and
// watched by every host in place of the release records themselves.
const SettledKey = "settled"

// Key filters of the membership bucket, for a KV watch.
const (
	HostKeys    = hostKeyPrefix + "*"    // every host record
	ReleaseKeys = releaseKeyPrefix + "*" // every release record
)

// ParseHostKey returns the host id of a host record's key. ok is false for
// any other key, and for a key whose last token is not a valid host id:
// watchers ignore such keys altogether.
func ParseHostKey(key string) (id HostID, ok bool) { return parseKey(key, hostKeyPrefix) }

// ParseReleaseKey returns the host id of a release record's key, like
// ParseHostKey.
func ParseReleaseKey(key string) (id HostID, ok bool) { return parseKey(key, releaseKeyPrefix) }

func parseKey(key, prefix string) (HostID, bool) {
	id, ok := strings.CutPrefix(key, prefix)
	if !ok || HostID(id).Validate() != nil {
		return "", false
	}
	return HostID(id), true
}

// JetStream's layout of a KV bucket, which both the membership and the state
// bucket follow: a host writes its lease and its release record to the key's
// subject directly, with a per-message TTL and an expected last sequence.

// KVStream is the stream that holds a KV bucket: KV_<bucket>.
func KVStream(bucket string) string { return "KV_" + bucket }

// KVSubject is the subject of a key in a KV bucket: $KV.<bucket>.<key>.
func KVSubject(bucket, key string) string { return "$KV." + bucket + "." + key }

// Headers JetStream puts on KV entries that are not values.
const (
	// HeaderKVOperation marks a deleted or purged key: DEL or PURGE.
	HeaderKVOperation = "KV-Operation"
	// HeaderMarkerReason marks the server's own markers, such as MaxAge for
	// an expired lease (also Purge, Remove).
	HeaderMarkerReason = "Nats-Marker-Reason"
)

// HeaderReleased marks a release notice: a message a host of protocol
// version 2 publishes, without a reply subject, to the subject of each host
// that gained actors from it, once it has released (PROTOCOL.md,
// "Handoff"). Its value is "<hostID> <incarnation> <generation>", the fields
// of the ReleaseRecord; the body is empty. The receiver counts it as that
// record, so it need not wait for the settled record, which comes once every
// host has released.
const HeaderReleased = "Troupe-Released"

// FormatReleased is the value of HeaderReleased.
func FormatReleased(id HostID, incarnation string, generation uint64) string {
	return string(id) + " " + incarnation + " " + strconv.FormatUint(generation, 10)
}

// ParseReleased parses a HeaderReleased value; ok is false unless it has
// exactly three fields, a valid host id, a non-empty incarnation and a
// positive decimal generation.
func ParseReleased(v string) (id HostID, incarnation string, generation uint64, ok bool) {
	f := strings.Split(v, " ")
	if len(f) != 3 || HostID(f[0]).Validate() != nil || f[1] == "" {
		return "", "", 0, false
	}
	gen, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil || gen == 0 {
		return "", "", 0, false
	}
	return HostID(f[0]), f[1], gen, true
}
