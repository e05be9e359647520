package placement

// ReminderHosts is how many hosts pull fired reminders from the shared
// consumer: three, so that a crashed puller delays nothing while another
// lives. Every host pulling would cost the server a waiting pull request and
// its heartbeats per host (an eighth of its work at rest with 150 hosts) and
// hit the consumer's limit of waiting requests with hundreds of hosts, while
// two hosts already deliver firings as fast as the server stores them.
const ReminderHosts = 3

// reminderRingStart is where the reminder pullers start on the ring: the
// host hash of "reminders", so that they are most often not the collectors,
// which start at the beginning of the ring.
var reminderRingStart = ringPoint{hash: hostHash("reminders")}

// ReminderPullers returns the hosts that pull fired reminders in table t:
// the first ReminderHosts active members that deliver reminders
// (Member.Reminders) on the ring that Watched orders, from the host hash of
// "reminders" on.
func ReminderPullers(t *Table) []HostID {
	return t.walkRing(reminderRingStart, ReminderHosts, func(m *Member) bool { return m.Reminders && !m.Draining })
}
