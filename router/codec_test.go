package router_test

import (
	"errors"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/router"
)

type celsius float64
type name string

// roundTrip encodes v with c and decodes it into a new T.
func roundTrip[T any](t *testing.T, c router.Codec, v T) (T, []byte) {
	t.Helper()
	b, err := c.Marshal(v)
	if err != nil {
		t.Fatalf("%s: marshal %T: %v", c.Name(), v, err)
	}
	var out T
	if err := c.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: unmarshal %q into %T: %v", c.Name(), b, out, err)
	}
	return out, b
}

func TestTextCodec(t *testing.T) {
	if v, b := roundTrip(t, router.Text, int64(-42)); v != -42 || string(b) != "-42" {
		t.Fatalf("int64: %v %q", v, b)
	}
	if v, b := roundTrip(t, router.Text, celsius(21.5)); v != 21.5 || string(b) != "21.5" {
		t.Fatalf("named float: %v %q", v, b)
	}
	if v, _ := roundTrip(t, router.Text, name("ann")); v != "ann" {
		t.Fatalf("named string: %v", v)
	}
	if v, _ := roundTrip(t, router.Text, true); !v {
		t.Fatal("bool")
	}
	if v, b := roundTrip(t, router.Text, []byte("raw\x00bytes")); string(v) != "raw\x00bytes" || string(b) != "raw\x00bytes" {
		t.Fatalf("bytes: %q", v)
	}
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if v, _ := roundTrip(t, router.Text, when); !v.Equal(when) {
		t.Fatalf("TextMarshaler: %v", v)
	}
	if _, b := roundTrip(t, router.Text, struct{}{}); len(b) != 0 {
		t.Fatalf("struct{} encodes as %q", b)
	}
	var n int64
	if err := router.Text.Unmarshal([]byte(" 7\n"), &n); err != nil || n != 7 {
		t.Fatalf("white space around a number: %d, %v", n, err)
	}
	var small uint8
	for _, bad := range []string{"", "x", "1.5", "300"} {
		var fe *router.FormatError
		if err := router.Text.Unmarshal([]byte(bad), &small); !errors.As(err, &fe) {
			t.Fatalf("uint8 %q: %v, want a FormatError", bad, err)
		}
	}
	var st struct{}
	if err := router.Text.Unmarshal([]byte("ignored"), &st); err != nil {
		t.Fatalf("struct{} ignores the payload: %v", err)
	}
	if _, err := router.Text.Marshal(map[string]int{}); err == nil {
		t.Fatal("a map has no text form")
	}
}

func TestJSONCodec(t *testing.T) {
	type req struct {
		A int    `json:"a"`
		B string `json:"b"`
	}
	if v, b := roundTrip(t, router.JSON, req{1, "x"}); v != (req{1, "x"}) || string(b) != `{"a":1,"b":"x"}` {
		t.Fatalf("%+v %s", v, b)
	}
	v := req{A: 9}
	if err := router.JSON.Unmarshal(nil, &v); err != nil || v.A != 9 {
		t.Fatalf("an empty payload leaves the zero value: %+v %v", v, err)
	}
	if err := router.JSON.Unmarshal([]byte("{"), &v); err == nil {
		t.Fatal("broken JSON decoded")
	}
}

func TestProtoCodec(t *testing.T) {
	rec := &pb.HostRecord{HostId: "h1", ActorTypes: []string{"a"}}
	out, _ := roundTrip(t, router.Proto, rec)
	if out.GetHostId() != "h1" || len(out.GetActorTypes()) != 1 {
		t.Fatalf("decoded into a message pointer: %v", out)
	}
	if _, err := router.Proto.Marshal(struct{}{}); err == nil {
		t.Fatal("encoded a non-message")
	}
	var s string
	if err := router.Proto.Unmarshal(nil, &s); err == nil {
		t.Fatal("decoded into a non-message")
	}
}
