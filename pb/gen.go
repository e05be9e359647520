// Package pb holds troupe's protobuf schemas (troupe.proto) and the Go code
// generated from them. Regenerate with `go generate ./pb` after running
// ./install-tools.sh, which installs the pinned protoc and protoc-gen-go.
package pb

//go:generate protoc --go_out=. --go_opt=paths=source_relative troupe.proto
