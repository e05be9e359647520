#!/usr/bin/env bash
# Installs the pinned protobuf generators that `go generate ./pb` uses.
# protoc comes from Debian's protobuf-compiler package, protoc-gen-go from the
# Go module proxy at the version go.mod pins for google.golang.org/protobuf.
set -euo pipefail
PROTOC_DEB_VERSION=3.21.12-3+deb12u1
PROTOC_GEN_GO_VERSION=v1.36.12

if ! protoc --version 2>/dev/null | grep -q '3.21.12'; then
	apt-get update -qq
	apt-get install -y -qq "protobuf-compiler=${PROTOC_DEB_VERSION}"
fi
go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}"
echo "protoc $(protoc --version), protoc-gen-go $("$(go env GOPATH)"/bin/protoc-gen-go --version)"
