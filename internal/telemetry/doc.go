// Package telemetry holds what the host and the router share to report
// metrics and traces: bounded label values, call counters with cached
// children, registration that tolerates a shared registry, and the W3C
// trace-context carrier for NATS headers.
//
// Nothing here is global: every value hangs off a host or a router, and a
// nil one costs its owner one nil check per call.
package telemetry
