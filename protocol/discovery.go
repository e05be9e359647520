package protocol

// Hosts answer the NATS service discovery protocol of nats.go/micro (ADR-32)
// as instances of the service ServiceName, whatever the subject prefix,
// whose instance id is the host id. They answer the verbs PING, INFO and
// STATS.

// ServiceName is the service name hosts answer discovery requests under.
const ServiceName = "troupe"

// DiscoverySubjects are the $SRV subjects host id answers: every verb for
// all services, for ServiceName, and for this host.
func DiscoverySubjects(id HostID) []string {
	return []string{
		"$SRV.*",
		"$SRV.*." + ServiceName,
		"$SRV.*." + ServiceName + "." + string(id),
	}
}

// Endpoints a host lists in its INFO and STATS answers.
const (
	EndpointCall       = "call"        // HostSubject
	EndpointGateway    = "gateway"     // GatewaySubjects in GatewayQueue, unless the gateway is disabled
	EndpointActors     = "actors"      // AdminActorsSubject
	EndpointActorsHost = "actors-host" // AdminActorsHostSubject
)

// Metadata keys of a host's discovery answers.
const (
	MetadataHostID        = "host_id"
	MetadataActorTypes    = "actor_types" // comma-separated
	MetadataGeneration    = "generation"  // decimal
	MetadataIncarnation   = "incarnation"
	MetadataState         = "state" // HostStateActive or HostStateDraining
	MetadataSubject       = "subject"
	MetadataSubjectPrefix = "subject_prefix"
)

// Values of MetadataState.
const (
	HostStateActive   = "active"
	HostStateDraining = "draining"
)
