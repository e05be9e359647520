package router_test

import (
	"errors"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// TestProtocolNames checks that router's names for the wire protocol are
// package protocol's, so code written against either sees the same errors
// and bytes. The protocol itself is tested in package protocol.
func TestProtocolNames(t *testing.T) {
	var e *router.Error = protocol.Errorf(protocol.CodeBusy, "full")
	if !errors.Is(e, router.ErrBusy) || router.ErrMoved != protocol.ErrMoved || router.CodeMoved != protocol.CodeMoved {
		t.Fatal("router's errors are not protocol's")
	}
	if got := router.Errorf(router.CodeNoHost, "%w", errors.ErrUnsupported); !errors.Is(got, errors.ErrUnsupported) || got.Error() != "troupe: NO_HOST: unsupported operation" {
		t.Fatalf("Errorf = %v", got)
	}
	h, body := router.EncodeError(router.AppError("a", "x"))
	if d := protocol.DecodeError(h, body); d.AppCode != "a" || router.AsError(d) != d {
		t.Fatalf("error reply decoded as %#v", d)
	}
	if router.EncodeID("a.b") != "a%2Eb" || router.HeaderID != "Troupe-Id" || router.HeaderChainPath != "Troupe-Chain-Path" {
		t.Fatal("router's encoding or header names differ from protocol's")
	}
	if id, err := router.DecodeID("a%2Eb"); err != nil || id != "a.b" {
		t.Fatalf("DecodeID = %q, %v", id, err)
	}
	if router.FormatPath([]router.Hop{{Type: "t", ID: "a b"}}) != "t/a%20b" {
		t.Fatal("FormatPath differs from protocol's")
	}
	if got := router.ScheduleSubject(router.DefaultSubjectPrefix, "t", "a.b", "n"); got != "troupe.rmd.sched.t.a%2Eb.n" {
		t.Fatalf("ScheduleSubject = %q", got)
	}
	if got := router.FireSubject("p", "t", "i", "n"); got != "p.rmd.fire.t.i.n" {
		t.Fatalf("FireSubject = %q", got)
	}
	if router.Every(time.Minute) != "@every 1m0s" || router.At(time.Unix(0, 0)) != "@at 1970-01-01T00:00:00Z" {
		t.Fatal("schedules differ from protocol's")
	}
}
