package protocol

import (
	"strings"
	"testing"
)

// TestKeys pins the key layouts of the membership and state buckets.
func TestKeys(t *testing.T) {
	cases := []struct{ got, want string }{
		{HostKey("h-1"), "hosts.h-1"},
		{ReleaseKey("h-1"), "released.h-1"},
		{AliveKey("h-1"), "alive.h-1"},
		{HostKeys, "hosts.*"},
		{ReleaseKeys, "released.*"},
		{StateKey("counter", "c1"), "counter.c1"},
		{StateKey("counter", "A-Z_a-z_0-9"), "counter.A-Z_a-z_0-9"},
		{StateKey("counter", "a.b c"), "counter.a=2Eb=20c"},
		{StateKey("counter", "k=v+w,x~y:z@e%"), "counter.k=3Dv=2Bw=2Cx=7Ey=3Az=40e=25"},
		{StateKey("bank", "\x00\xffé*>"), "bank.=00=FF=C3=A9=2A=3E"},
		{StateKey("t", "a/b"), "t.a=2Fb"},
	}
	for i, c := range cases {
		if c.got != c.want {
			t.Errorf("case %d: %q, want %q", i, c.got, c.want)
		}
	}
	long := StateKey("t", ActorID(strings.Repeat("\xff", MaxActorIDLen)))
	if len(long) != len("t.")+3*MaxActorIDLen {
		t.Errorf("longest state key has %d bytes", len(long))
	}
}

func TestParseKeys(t *testing.T) {
	cases := []struct {
		key         string
		host, rel   HostID
		hostOK, rOK bool
	}{
		{"hosts.h-1", "h-1", "", true, false},
		{"released.h-1", "", "h-1", false, true},
		{"hosts.bad$id", "", "", false, false},
		{"hosts.", "", "", false, false},
		{"released.a.b", "", "", false, false},
		{"counter.c1", "", "", false, false},
	}
	for _, c := range cases {
		h, hok := ParseHostKey(c.key)
		r, rok := ParseReleaseKey(c.key)
		if h != c.host || hok != c.hostOK || r != c.rel || rok != c.rOK {
			t.Errorf("%q: host %q %v, release %q %v", c.key, h, hok, r, rok)
		}
	}
	for key, want := range map[string]HostID{"alive.h-1": "h-1", "alive.bad$id": "", "hosts.h-1": "", "alive.a.b": ""} {
		if id, ok := ParseAliveKey(key); id != want || ok != (want != "") {
			t.Errorf("ParseAliveKey(%q) = %q, %v; want %q", key, id, ok, want)
		}
	}
}

func TestReleasedHeader(t *testing.T) {
	v := FormatReleased("h-1", "00000000000000a1", 42)
	if v != "h-1 00000000000000a1 42" {
		t.Fatalf("FormatReleased: %q", v)
	}
	if id, inc, gen, ok := ParseReleased(v); !ok || id != "h-1" || inc != "00000000000000a1" || gen != 42 {
		t.Fatalf("ParseReleased(%q) = %q %q %d %v", v, id, inc, gen, ok)
	}
	for _, bad := range []string{"", "h-1 i", "h-1 i 0", "h-1 i -1", "h-1 i 1 2", "bad$id i 1", "h-1  1", "h-1 i x"} {
		if _, _, _, ok := ParseReleased(bad); ok {
			t.Errorf("ParseReleased(%q) accepted", bad)
		}
	}
}
