package protocol

import (
	"slices"
	"testing"
	"time"
)

// TestSubjects pins every subject troupe builds, byte for byte, as
// PROTOCOL.md spells them.
func TestSubjects(t *testing.T) {
	const p = "troupe"
	var (
		typ  ActorType = "counter"
		id   ActorID   = "a.b c"
		host HostID    = "h-1"
	)
	cases := []struct{ got, want string }{
		{HostSubject(p, host), "troupe.host.h-1"},
		{HostSubject("acme.prod", host), "acme.prod.host.h-1"},
		{GatewaySubject(p, typ, "c1", "add"), "troupe.call.counter.c1.add"},
		{GatewaySubject(p, typ, id, "add"), "troupe.call.counter.a%2Eb%20c.add"},
		{GatewaySubjects(p), "troupe.call.>"},
		{GatewayQueue(p), "troupe.gateway"},
		{AdminActorsSubject(p), "troupe.admin.actors"},
		{AdminActorsHostSubject(p, host), "troupe.admin.actors.h-1"},
		{ReminderStreamSubjects(p), "troupe.rmd.>"},
		{ScheduleSubjects(p), "troupe.rmd.sched.>"},
		{FireSubjects(p), "troupe.rmd.fire.>"},
		{ScheduleSubject(p, typ, id, "tick"), "troupe.rmd.sched.counter.a%2Eb%20c.tick"},
		{FireSubject(p, typ, id, "tick"), "troupe.rmd.fire.counter.a%2Eb%20c.tick"},
		{ReminderSubjects(p, typ, id, "tick"), "troupe.rmd.*.counter.a%2Eb%20c.tick"},
		{ActorScheduleSubjects(p, typ, id), "troupe.rmd.sched.counter.a%2Eb%20c.*"},
		{ReminderGatewaySubjects(p), "troupe.reminder.>"},
		{ReminderSetSubject(p, "session", "s1", "expiry"), "troupe.reminder.set.session.s1.expiry"},
		{ReminderDeleteSubject(p, "session", id, "expiry"), "troupe.reminder.delete.session.a%2Eb%20c.expiry"},
		{ReminderListSubject(p, "session", "s1"), "troupe.reminder.list.session.s1"},
		{KVSubject(DefaultMembershipBucket, HostKey(host)), "$KV.troupe_placement.hosts.h-1"},
		{KVSubject(DefaultMembershipBucket, ReleaseKey(host)), "$KV.troupe_placement.released.h-1"},
		{KVSubject(DefaultStateBucket, StateKey(typ, id)), "$KV.troupe_state.counter.a=2Eb=20c"},
		{StreamMsgGetSubject(KVStream(DefaultStateBucket)), "$JS.API.STREAM.MSG.GET.KV_troupe_state"},
	}
	for i, c := range cases {
		if c.got != c.want {
			t.Errorf("case %d: %q, want %q", i, c.got, c.want)
		}
	}
	want := []string{"$SRV.*", "$SRV.*.troupe", "$SRV.*.troupe.h-1"}
	if got := DiscoverySubjects(host); !slices.Equal(got, want) {
		t.Errorf("DiscoverySubjects = %q, want %q", got, want)
	}
}

// TestWireNames pins the names of buckets, streams, headers and values.
func TestWireNames(t *testing.T) {
	cases := []struct{ got, want string }{
		{DefaultSubjectPrefix, "troupe"},
		{DefaultMembershipBucket, "troupe_placement"},
		{DefaultStateBucket, "troupe_state"},
		{DefaultReminderStream, "troupe_reminders"},
		{ReminderConsumer, "troupe_fire"},
		{DefaultReminderMethod, "remind"},
		{KVStream(DefaultMembershipBucket), "KV_troupe_placement"},
		{KVStream(DefaultStateBucket), "KV_troupe_state"},
		{HashVersionKey, "troupe.hash"},
		{HashVersion, "troupe-hrw-1"},
		{ServiceName, "troupe"},
		{HeaderType, "Troupe-Type"},
		{HeaderID, "Troupe-Id"},
		{HeaderMethod, "Troupe-Method"},
		{HeaderGeneration, "Troupe-Generation"},
		{HeaderTimeout, "Troupe-Timeout"},
		{HeaderCall, "Troupe-Call"},
		{HeaderTraceparent, "traceparent"},
		{HeaderTracestate, "tracestate"},
		{HeaderChain, "Troupe-Chain"},
		{HeaderChainPath, "Troupe-Chain-Path"},
		{HeaderErrorCode, "Nats-Service-Error-Code"},
		{HeaderError, "Nats-Service-Error"},
		{HeaderAppCode, "Troupe-App-Code"},
		{HeaderKVOperation, "KV-Operation"},
		{HeaderMarkerReason, "Nats-Marker-Reason"},
		{HeaderStateFormat, "Troupe-State"},
		{StateFormatKeys, "keys"},
		{HeaderNatsSchedule, "Nats-Schedule"},
		{HeaderNatsScheduleTarget, "Nats-Schedule-Target"},
		{HeaderNatsScheduleRollup, "Nats-Schedule-Rollup"},
		{HeaderNatsScheduleTimeZone, "Nats-Schedule-Time-Zone"},
		{ScheduleRollupSubject, "sub"},
		{HeaderNatsScheduler, "Nats-Scheduler"},
		{HeaderNatsScheduleNext, "Nats-Schedule-Next"},
		{HeaderReminderMethod, "Troupe-Reminder-Method"},
		{HeaderReminder, "Troupe-Reminder"},
		{HeaderReminderSeq, "Troupe-Reminder-Seq"},
		{HeaderSchedule, "Troupe-Schedule"},
		{HeaderScheduleTimeZone, "Troupe-Schedule-Time-Zone"},
		{EndpointCall + " " + EndpointGateway + " " + EndpointActors + " " + EndpointActorsHost, "call gateway actors actors-host"},
		{MetadataHostID + " " + MetadataActorTypes + " " + MetadataGeneration + " " + MetadataIncarnation + " " +
			MetadataState + " " + MetadataSubject + " " + MetadataSubjectPrefix,
			"host_id actor_types generation incarnation state subject subject_prefix"},
		{HostStateActive + " " + HostStateDraining, "active draining"},
		{At(time.Date(2026, 3, 1, 9, 30, 0, 500, time.FixedZone("CET", 3600))), "@at 2026-03-01T08:30:00.0000005Z"},
		{Every(90 * time.Second), "@every 1m30s"},
	}
	for i, c := range cases {
		if c.got != c.want {
			t.Errorf("case %d: %q, want %q", i, c.got, c.want)
		}
	}
}

func TestSplitSubjects(t *testing.T) {
	type split struct{ a, b, c string }
	three := func(a, b, c string, ok bool) (split, bool) { return split{a, b, c}, ok }
	cases := []struct {
		name   string
		got    split
		gotOK  bool
		want   split
		wantOK bool
	}{}
	add := func(name string, got split, ok bool, want split, wantOK bool) {
		cases = append(cases, struct {
			name   string
			got    split
			gotOK  bool
			want   split
			wantOK bool
		}{name, got, ok, want, wantOK})
	}
	g, ok := three(SplitGatewaySubject("troupe", "troupe.call.counter.a%2Eb.add"))
	add("gateway", g, ok, split{"counter", "a%2Eb", "add"}, true)
	g, ok = three(SplitGatewaySubject("acme.prod", "acme.prod.call.counter.c1.add"))
	add("gateway, dotted prefix", g, ok, split{"counter", "c1", "add"}, true)
	for _, bad := range []string{"troupe.call.counter.a.b.add", "troupe.call.counter.add", "other.call.counter.c1.add", "troupe.host.h1"} {
		g, ok = three(SplitGatewaySubject("troupe", bad))
		add(bad, g, ok, split{}, false)
	}
	g, ok = three(SplitScheduleSubject("troupe", ScheduleSubject("troupe", "counter", "a.b", "tick")))
	add("schedule", g, ok, split{"counter", "a%2Eb", "tick"}, true)
	g, ok = three(SplitFireSubject("troupe", FireSubject("troupe", "counter", "a.b", "tick")))
	add("fire", g, ok, split{"counter", "a%2Eb", "tick"}, true)
	for _, bad := range []string{"troupe.rmd.sched.counter.a.tick", "troupe.rmd.fire.counter.a", "troupe.rmd.fire.counter.a.b.tick"} {
		g, ok = three(SplitFireSubject("troupe", bad))
		add(bad, g, ok, split{}, false)
	}
	for _, c := range cases {
		if c.got != c.want || c.gotOK != c.wantOK {
			t.Errorf("%s: %q, %v; want %q, %v", c.name, c.got, c.gotOK, c.want, c.wantOK)
		}
	}

	rem := []struct {
		subject             string
		verb, typ, id, name string
		ok                  bool
	}{
		{"troupe.reminder.set.session.s%2E1.expiry", "set", "session", "s%2E1", "expiry", true},
		{"troupe.reminder.delete.session.s1.expiry", "delete", "session", "s1", "expiry", true},
		{"troupe.reminder.list.session.s1", "list", "session", "s1", "", true},
		{"troupe.reminder.list.session.s1.expiry", "", "", "", "", false},
		{"troupe.reminder.set.session.s1", "", "", "", "", false},
		{"troupe.reminder.get.session.s1.expiry", "", "", "", "", false},
		{"troupe.reminder.set.session.s.1.expiry", "", "", "", "", false},
		{"troupe.call.session.s1.expiry", "", "", "", "", false},
	}
	for _, c := range rem {
		verb, typ, id, name, ok := SplitReminderGatewaySubject("troupe", c.subject)
		if verb != c.verb || typ != c.typ || id != c.id || name != c.name || ok != c.ok {
			t.Errorf("%s: %q %q %q %q %v", c.subject, verb, typ, id, name, ok)
		}
	}
}
