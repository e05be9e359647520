package main

import (
	"github.com/troupe-dev/troupe/internal/natstest"

	"strings"
	"testing"
)

// TestCallErrors checks that failed calls exit 1 with the error code on
// standard error, leave the hosts serving, and that PAYLOAD forms work.
func TestCallErrors(t *testing.T) {
	t.Parallel()
	_, url := startDev(t, natstest.FreeAddr(t), t.TempDir())
	for _, tc := range []struct {
		args   []string
		stderr string // the whole line for an exact match, else a part
	}{
		{[]string{"nosuch", "x", "m"}, `troupe: NO_HOST: no live host serves actor type "nosuch"` + "\n"},
		{[]string{"counter", "c1", "add", "notanumber"}, "troupe: INVALID_ARGUMENT: "},
		{[]string{"counter", "", "get"}, "troupe: INVALID_ID: "},
		{[]string{"counter", "c1", "nomethod"}, "troupe: UNKNOWN_METHOD: "},
		{[]string{"counter", "c1", "add"}, "troupe: INVALID_ARGUMENT: "}, // no PAYLOAD is empty
		{[]string{"bad.type", "c1", "get"}, "troupe: UNKNOWN_TYPE: "},
	} {
		res := troupe("", nil, append([]string{"call", "-s", url}, tc.args...)...)
		if res.code != 1 || res.stdout != "" || !strings.HasPrefix(res.stderr, tc.stderr) {
			t.Errorf("troupe call %q: exit %d, stdout %q, stderr %q; want exit 1, stderr starting %q",
				tc.args, res.code, res.stdout, res.stderr, tc.stderr)
		}
	}
	mustCall(t, url, "-5", "counter", "c1", "add", "-5")
	if res := troupe("12\n", nil, "call", "-s", url, "counter", "c1", "add", "-"); res.code != 0 || res.stdout != "7\n" {
		t.Errorf("add - with 12 on stdin: exit %d, stdout %q, stderr %q; want 7", res.code, res.stdout, res.stderr)
	}
	if res := troupe("", []string{"NATS_URL=" + url}, "call", "counter", "c1", "get"); res.code != 0 || res.stdout != "7\n" {
		t.Errorf("get with NATS_URL: exit %d, stdout %q, stderr %q; want 7", res.code, res.stdout, res.stderr)
	}
}

// TestCallUnreachable checks a call with no server to reach.
func TestCallUnreachable(t *testing.T) {
	t.Parallel()
	res := troupe("", nil, "call", "-s", "nats://"+natstest.FreeAddr(t), "--timeout", "2s", "counter", "c1", "get")
	if res.code != 1 || !strings.HasPrefix(res.stderr, "troupe: UNAVAILABLE: ") {
		t.Errorf("exit %d, stderr %q; want 1 and UNAVAILABLE", res.code, res.stderr)
	}
}

// TestUsage checks help and usage errors, which need no server.
func TestUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string // a part of standard output
		stderr string // a part of standard error
	}{
		{nil, 2, "", "Usage:"},
		{[]string{"help"}, 0, "troupe hosts [-s URL]", ""},
		{[]string{"help", "call"}, 0, "--timeout D", ""},
		{[]string{"help", "nosuch"}, 2, "", "unknown command"},
		{[]string{"nosuch"}, 2, "", `unknown command "nosuch"`},
		{[]string{"call", "-h"}, 0, "", "Usage: troupe call"},
		{[]string{"call", "counter", "c1"}, 2, "", "want TYPE ID METHOD [PAYLOAD]"},
		{[]string{"call", "a", "b", "c", "d", "e"}, 2, "", "got 5 arguments"},
		{[]string{"call", "--nosuch", "a", "b", "c"}, 2, "", "flag provided but not defined"},
		{[]string{"call", "--timeout", "0s", "a", "b", "c"}, 2, "", "--timeout must be positive"},
		{[]string{"hosts", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"host", "--name", "bad name"}, 2, "", "--name"},
		{[]string{"dev", "--sync", "sometimes"}, 2, "", `--sync "sometimes"`},
		{[]string{"help", "remind"}, 0, "@every 30s", ""},
		{[]string{"remind", "counter", "c1", "tick"}, 2, "", "want TYPE ID NAME SCHEDULE [PAYLOAD]"},
		{[]string{"reminders", "counter"}, 2, "", "want TYPE ID, got 1"},
		{[]string{"dev", "--ui", "nosuchport"}, 2, "", `--ui "nosuchport": want HOST:PORT`},
		{[]string{"host", "--ui", "a:b:c"}, 2, "", `--ui "a:b:c"`},
		{[]string{"help", "actors"}, 0, "<prefix>.admin.actors", ""},
		{[]string{"where", "counter"}, 2, "", "want TYPE ID, got 1 arguments"},
		{[]string{"where", "bad type", "x"}, 1, "", "troupe: UNKNOWN_TYPE: "},
		{[]string{"table", "--points", "0"}, 2, "", "--points must be"},
		{[]string{"table", "a", "b"}, 2, "", "want at most one TYPE"},
		{[]string{"actors", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"actors", "--host", "bad name"}, 2, "", "--host"},
		{[]string{"hosts", "-l", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"help", "subs"}, 0, "ACK PENDING", ""},
		{[]string{"subs", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"subs", "--timeout", "0s"}, 2, "", "--timeout must be positive"},
	} {
		res := troupe("", nil, tc.args...)
		if res.code != tc.code || !strings.Contains(res.stdout, tc.stdout) || !strings.Contains(res.stderr, tc.stderr) {
			t.Errorf("troupe %q: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				tc.args, res.code, res.stdout, res.stderr, tc.code, tc.stdout, tc.stderr)
		}
	}
}

// TestCallIdempotentCallID checks --call-id: the same id twice applies the
// call once and prints the first reply both times; a malformed one is a
// usage error.
func TestCallIdempotentCallID(t *testing.T) {
	t.Parallel()
	_, url := startDev(t, natstest.FreeAddr(t), t.TempDir())
	mustCall(t, url, "4", "--call-id", "script-run-1", "counter", "ci", "add", "4")
	mustCall(t, url, "4", "--call-id", "script-run-1", "counter", "ci", "add", "4")
	mustCall(t, url, "9", "--call-id", "script-run-2", "counter", "ci", "add", "5")
	mustCall(t, url, "9", "counter", "ci", "get")
	res := troupe("", nil, "call", "-s", url, "--call-id", "has space", "counter", "ci", "add", "1")
	if res.code != 2 || !strings.Contains(res.stderr, "--call-id") {
		t.Errorf("troupe call --call-id 'has space': exit %d, stderr %q; want a usage error (exit 2)", res.code, res.stderr)
	}
	mustCall(t, url, "9", "counter", "ci", "get")
}
