package protocol

// Every host answers an admin request for a report of its actors (JSON;
// see PROTOCOL.md for the request and the report), without a queue group, so
// that a tool can ask all hosts at once and gather the answers.

// AdminActorsSubject is answered by every host under prefix:
// <prefix>.admin.actors.
func AdminActorsSubject(prefix string) string { return prefix + ".admin.actors" }

// AdminActorsHostSubject is answered by host id only:
// <prefix>.admin.actors.<hostID>.
func AdminActorsHostSubject(prefix string, id HostID) string {
	return prefix + ".admin.actors." + string(id)
}
