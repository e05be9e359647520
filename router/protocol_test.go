package router

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

func TestErrorsSurviveTheWire(t *testing.T) {
	sent := []*Error{
		Errorf(CodeBusy, "mailbox full"),
		AppError("insufficient_funds", "balance 3\nbelow 5"),
		{Code: CodeMoved, Message: "moved", Generation: 42},
		{Code: CodeInternal},
	}
	for _, e := range sent {
		h, body := EncodeError(e)
		if strings.ContainsAny(h.Get(HeaderError), "\r\n") {
			t.Errorf("%v: header %q spans lines", e, h.Get(HeaderError))
		}
		got := DecodeError(h, body)
		if got == nil || got.Code != e.Code || got.AppCode != e.AppCode || got.Generation != e.Generation {
			t.Fatalf("sent %#v, got %#v", e, got)
		}
		if e.Message != "" && got.Message != e.Message {
			t.Errorf("message %q came back as %q", e.Message, got.Message)
		}
		if !errors.Is(got, &Error{Code: e.Code}) {
			t.Errorf("errors.Is(%v, code %v) is false", got, e.Code)
		}
	}
	if DecodeError(nil, []byte("reply")) != nil {
		t.Error("a reply without error headers decoded as an error")
	}
}

func TestErrorIsComparesCodes(t *testing.T) {
	err := error(Errorf(CodeBusy, "full"))
	if !errors.Is(err, ErrBusy) || errors.Is(err, ErrMoved) {
		t.Fatal("errors.Is must compare codes")
	}
	app := AppError("a", "x")
	if !errors.Is(app, ErrApplication) || !errors.Is(app, AppError("a", "")) || errors.Is(app, AppError("b", "")) {
		t.Fatal("application errors must match by code and, when given, app code")
	}
	if e := AsError(errors.New("plain")); e.Code != CodeApplication || e.Message != "plain" {
		t.Fatalf("AsError(plain) = %#v", e)
	}
	if s := Errorf(CodeNoHost, "none").Error(); s != "troupe: NO_HOST: none" {
		t.Fatalf("Error() = %q", s)
	}
}
