package protocol

import (
	"errors"
	"strings"
	"testing"
)

func TestEncodeIDIsCanonicalAndSafe(t *testing.T) {
	cases := map[string]string{
		"c1":           "c1",
		"user:42@eu":   "user:42@eu",
		"a.b":          "a%2Eb",
		"*":            "%2A",
		">":            "%3E",
		"a b":          "a%20b",
		"%":            "%25",
		"é":            "%C3%A9",
		"\x00\n":       "%00%0A",
		"k=v+w,x~y_z-": "k=v+w,x~y_z-",
	}
	for id, want := range cases {
		if got := EncodeID(id); got != want {
			t.Errorf("EncodeID(%q) = %q, want %q", id, got, want)
		}
		if back, err := DecodeID(want); err != nil || back != id {
			t.Errorf("DecodeID(%q) = %q, %v; want %q", want, back, err, id)
		}
	}
	for _, bad := range []string{"a.b", "a b", "%", "%4", "%zz", "%2e", "%63", "\n", "é"} {
		if got, err := DecodeID(bad); err == nil {
			t.Errorf("DecodeID(%q) = %q, want an error", bad, got)
		}
	}
}

func FuzzIDRoundTrip(f *testing.F) {
	for _, s := range []string{"", "c1", "a.b", "%", "%25", "\xff", "日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		enc := EncodeID(id)
		if strings.ContainsAny(enc, ".*> \t\r\n") {
			t.Fatalf("EncodeID(%q) = %q is not one safe token", id, enc)
		}
		back, err := DecodeID(enc)
		if err != nil || back != id {
			t.Fatalf("round trip of %q: %q, %v", id, back, err)
		}
		// Any string that decodes must be the canonical encoding of its id.
		if dec, err := DecodeID(id); err == nil && EncodeID(dec) != id {
			t.Fatalf("%q decodes to %q, whose encoding is %q", id, dec, EncodeID(dec))
		}
	})
}

func TestNames(t *testing.T) {
	long := strings.Repeat("x", MaxNameLen)
	for _, ok := range []string{"a", "counter", "A-Z_a-z_0-9", long} {
		if err := ValidateName("name", ok); err != nil {
			t.Errorf("ValidateName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", long + "x", "a.b", "a b", "a*", "a>", "é", "a/b", "a%"} {
		if err := ValidateName("name", bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
	if err := HostID("h.1").Validate(); !errors.Is(err, ErrInvalidName) {
		t.Errorf("host id h.1: %v", err)
	}
	if err := ActorType("").Validate(); !errors.Is(err, ErrInvalidName) {
		t.Errorf("empty actor type: %v", err)
	}
	for _, ok := range []ActorID{"x", "a.b c\x00\xff", ActorID(strings.Repeat("z", MaxActorIDLen))} {
		if err := ok.Validate(); err != nil {
			t.Errorf("actor id %q: %v", ok, err)
		}
	}
	for _, bad := range []ActorID{"", ActorID(strings.Repeat("z", MaxActorIDLen+1))} {
		if err := bad.Validate(); !errors.Is(err, ErrInvalidActorID) {
			t.Errorf("actor id of %d bytes: %v, want ErrInvalidActorID", len(bad), err)
		}
	}
}
