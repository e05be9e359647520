package placement

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/protocol"
)

// benchIDs are the ids lookups cycle through, so that a benchmark does not
// measure one key's hot path.
var benchIDs = actorIDs(1024)

var hostCounts = []int{3, 10, 100}

func BenchmarkKeyHash(b *testing.B) {
	b.ReportAllocs()
	var sink uint64
	for i := 0; b.Loop(); i++ {
		sink += KeyHash("counter", benchIDs[i%len(benchIDs)])
	}
	_ = sink
}

// BenchmarkOwner measures the rendezvous lookup.
func BenchmarkOwner(b *testing.B) {
	for _, n := range hostCounts {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			benchOwner(b, NewTable(1, membersOf(hostIDs(n), "counter")).Owner)
		})
	}
}

// BenchmarkRingOwner measures the vnode ring lookup, for comparison.
func BenchmarkRingOwner(b *testing.B) {
	for _, v := range []int{100, 1000} {
		for _, n := range hostCounts {
			b.Run(fmt.Sprintf("vnodes=%d/hosts=%d", v, n), func(b *testing.B) {
				tb := NewTable(1, membersOf(hostIDs(n), "counter"))
				benchOwner(b, newRing(v, tb).owner)
			})
		}
	}
}

func benchOwner(b *testing.B, owner ownerFunc) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, ok := owner("counter", benchIDs[i%len(benchIDs)]); !ok {
			b.Fatal("no owner")
		}
	}
}

// BenchmarkNewTable measures building a table whose members serve two types.
func BenchmarkNewTable(b *testing.B) {
	for _, n := range hostCounts {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			ms := membersOf(hostIDs(n), "counter", "room")
			b.ReportAllocs()
			for b.Loop() {
				NewTable(1, ms)
			}
		})
	}
}

// BenchmarkRingBuild measures building the comparison ring on top of a table.
func BenchmarkRingBuild(b *testing.B) {
	for _, v := range []int{100, 1000} {
		for _, n := range hostCounts {
			b.Run(fmt.Sprintf("vnodes=%d/hosts=%d", v, n), func(b *testing.B) {
				ms := membersOf(hostIDs(n), "counter", "room")
				b.ReportAllocs()
				for b.Loop() {
					newRing(v, NewTable(1, ms))
				}
			})
		}
	}
}

// entry is a membership bucket entry, for driving a view without a server.
type entry struct {
	key string
	val []byte
	rev uint64
	op  jetstream.KeyValueOp
}

func (e entry) Bucket() string                  { return "troupe_members" }
func (e entry) Key() string                     { return e.key }
func (e entry) Value() []byte                   { return e.val }
func (e entry) Revision() uint64                { return e.rev }
func (e entry) Created() time.Time              { return time.Time{} }
func (e entry) Delta() uint64                   { return 0 }
func (e entry) Operation() jetstream.KeyValueOp { return e.op }

// renewalsOf returns a view with n members and, per member, the entry of
// its next lease renewal, which repeats its record's bytes.
func renewalsOf(b *testing.B, n int) (*Watcher, []entry) {
	w := &Watcher{view: view{members: make(map[HostID]*member), releases: make(map[HostID]*release)}}
	var renewals []entry
	for i, id := range hostIDs(n) {
		rec := &pb.HostRecord{HostId: string(id), Subject: "troupe.host." + string(id), ActorTypes: []string{"counter"},
			Incarnation: fmt.Sprint("inc", i), StartedUnixMs: 1, Version: "dev"}
		join, err := proto.Marshal(rec)
		if err != nil {
			b.Fatal(err)
		}
		rev := uint64(i + 1)
		w.view.apply(entry{key: protocol.HostKey(id), val: join, rev: rev, op: jetstream.KeyValuePut})
		rec.ChangedRevision = rev
		renew, err := proto.Marshal(rec)
		if err != nil {
			b.Fatal(err)
		}
		renewals = append(renewals, entry{key: protocol.HostKey(id), val: renew, rev: rev, op: jetstream.KeyValuePut})
	}
	w.publish()
	for i := range renewals { // the first renewal after the join sets changed_revision
		w.view.apply(renewals[i])
	}
	return w, renewals
}

// BenchmarkWatcherRenewal measures what a watcher does with one lease
// renewal at n hosts: every host's watcher sees every host's renewals, so
// across a deployment this runs n² times per renewal interval.
//
//	go test -run '^$' -bench WatcherRenewal ./placement/
func BenchmarkWatcherRenewal(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			w, renewals := renewalsOf(b, n)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				e := renewals[i%n]
				e.rev = uint64(n + i + 1)
				w.applyEntry(e)
			}
		})
	}
}

// BenchmarkWatcherRelease measures what a watcher does with one release
// record at n hosts: every host writes one per table change, and every
// watcher applies all of them.
//
//	go test -run '^$' -bench WatcherRelease ./placement/
func BenchmarkWatcherRelease(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			w, _ := renewalsOf(b, n)
			gen := w.Table().Generation()
			var releases []entry
			for i, id := range hostIDs(n) {
				val, err := proto.Marshal(&pb.ReleaseRecord{HostId: string(id), Incarnation: fmt.Sprint("inc", i), Generation: gen})
				if err != nil {
					b.Fatal(err)
				}
				releases = append(releases, entry{key: protocol.ReleaseKey(id), val: val, op: jetstream.KeyValuePut})
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				e := releases[i%n]
				e.rev = uint64(n + i + 1)
				w.applyEntry(e)
			}
		})
	}
}

// BenchmarkWatcherTableChange measures what a host's watcher does with one
// table change at n hosts, with the roles a host looks up in the new table,
// and the settled record that follows it: every host applies both for every join, drain and departure, so across a
// deployment this runs n times per change. One iteration is two changes,
// a host joining and leaving.
//
//	go test -run '^$' -bench WatcherTableChange ./placement/
func BenchmarkWatcherTableChange(b *testing.B) {
	for _, n := range []int{150, 1000} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			w, _ := renewalsOf(b, n)
			w.handoff.onPublish = func(s *snap) { w.snap.Store(s) }
			rev := uint64(2 * n)
			next := func() uint64 { rev++; return rev }
			settled := func(gen uint64) entry {
				val, err := proto.Marshal(&pb.SettledRecord{Generation: gen})
				if err != nil {
					b.Fatal(err)
				}
				return entry{key: protocol.SettledKey, val: val, rev: next(), op: jetstream.KeyValuePut}
			}
			key := protocol.HostKey("joiner")
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				val, err := proto.Marshal(&pb.HostRecord{HostId: "joiner", Subject: "troupe.host.joiner",
					ActorTypes: []string{"counter"}, Incarnation: fmt.Sprint("j", i), Protocol: protocol.Version})
				if err != nil {
					b.Fatal(err)
				}
				join := next()
				w.applyEntry(entry{key: key, val: val, rev: join, op: jetstream.KeyValuePut})
				rolesOf(w.Table())
				w.applyEntry(settled(join))
				left := next()
				w.applyEntry(entry{key: key, rev: left, op: jetstream.KeyValuePurge})
				rolesOf(w.Table())
				w.applyEntry(settled(left))
			}
		})
	}
}

// rolesOf asks table t what a host asks each table it applies: whom it
// monitors, and who collects and who pulls reminders.
func rolesOf(t *Table) {
	Watched(t, "h0001", MonitorPeers)
	Collectors(t)
	ReminderPullers(t)
}

// BenchmarkMayActivate measures the handoff check a host makes for a call
// that waits to activate an actor it gained, right after a host joined n
// others and none has released yet: perActor is the check hosts run,
// scan the rule's literal scan over every member (the check before).
//
//	go test -run '^$' -bench MayActivate ./placement/
func BenchmarkMayActivate(b *testing.B) {
	for _, n := range []int{100, 1000} {
		ids := hostIDs(n + 1)
		var h handoff
		h.push(NewTable(10, membersOf(ids[:n], "counter")), nil)
		h.push(NewTable(20, membersOf(ids, "counter")), nil)
		for _, id := range ids[:n] {
			h.setReleased(id, 10, true)
		}
		joiner := ids[n]
		var gained []ActorID
		for _, id := range benchIDs {
			if o, _ := h.current().Owner("counter", id); o.ID == joiner {
				gained = append(gained, id)
			}
		}
		for _, c := range []struct {
			name  string
			check func(HostID, ActorType, ActorID) bool
		}{{"perActor", h.mayActivate}, {"scan", h.mayActivateByScan}} {
			b.Run(fmt.Sprintf("hosts=%d/%s", n, c.name), func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					if c.check(joiner, "counter", gained[i%len(gained)]) {
						b.Fatal("activated before the previous owner released")
					}
				}
			})
		}
	}
}
