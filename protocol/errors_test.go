package protocol

import (
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

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

// TestErrorReplyBytes pins the headers and body of error replies as
// PROTOCOL.md shows them.
func TestErrorReplyBytes(t *testing.T) {
	cases := []struct {
		e    *Error
		want nats.Header
		body string
	}{
		{Errorf(CodeBusy, "mailbox full"), nats.Header{
			"Nats-Service-Error-Code": {"9"},
			"Nats-Service-Error":      {"BUSY: mailbox full"},
		}, "mailbox full"},
		{AppError("insufficient_funds", "balance 3\nbelow 5"), nats.Header{
			"Nats-Service-Error-Code": {"12"},
			"Nats-Service-Error":      {"APPLICATION: balance 3 below 5"},
			"Troupe-App-Code":         {"insufficient_funds"},
		}, "balance 3\nbelow 5"},
		{&Error{Code: CodeMoved, Message: "moved", Generation: 42}, nats.Header{
			"Nats-Service-Error-Code": {"11"},
			"Nats-Service-Error":      {"MOVED: moved"},
			"Troupe-Generation":       {"42"},
		}, "moved"},
		{&Error{Code: CodeUnavailable, Message: strings.Repeat("x", 600)}, nats.Header{
			"Nats-Service-Error-Code": {"14"},
			"Nats-Service-Error":      {"UNAVAILABLE: " + strings.Repeat("x", 512-len("UNAVAILABLE: "))},
		}, strings.Repeat("x", 600)},
	}
	for _, c := range cases {
		h, body := EncodeError(c.e)
		if len(h) != len(c.want) {
			t.Errorf("%v: headers %v, want %v", c.e, h, c.want)
		}
		for k, v := range c.want {
			if got := h.Values(k); len(got) != 1 || got[0] != v[0] {
				t.Errorf("%v: header %s = %q, want %q", c.e, k, got, v)
			}
		}
		if string(body) != c.body {
			t.Errorf("%v: body %q, want %q", c.e, body, c.body)
		}
	}
	// A reply with only the one-line header keeps that as its message.
	h := nats.Header{"Nats-Service-Error-Code": {"4"}, "Nats-Service-Error": {"NO_HOST: none"}}
	if e := DecodeError(h, nil); e.Code != CodeNoHost || e.Message != "NO_HOST: none" {
		t.Errorf("DecodeError without a body = %#v", e)
	}
	h = nats.Header{"Nats-Service-Error-Code": {"x"}, "Nats-Service-Error": {"odd"}}
	if e := DecodeError(h, nil); e.Code != CodeInternal {
		t.Errorf("DecodeError of a malformed code = %#v, want INTERNAL", e)
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
	if s := AppError("a", "x").Error(); s != "troupe: APPLICATION(a): x" {
		t.Fatalf("Error() = %q", s)
	}
	if s := Code(0).String(); s != "CODE_0" {
		t.Fatalf("Code(0) = %q", s)
	}
	if s := Code(99).String(); s != "CODE_99" {
		t.Fatalf("Code(99) = %q", s)
	}
}
