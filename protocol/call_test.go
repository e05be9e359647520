package protocol

import "testing"

func TestCallHeaderRoundTrip(t *testing.T) {
	v := string(AppendCall(nil, "counter", EncodeID("a.b c"), "add", 42, 5000))
	if v != "counter a%2Eb%20c add 42 5000" {
		t.Fatalf("AppendCall = %q", v)
	}
	f, ok := ParseCall(v)
	want := CallFields{Type: "counter", ID: "a%2Eb%20c", Method: "add", Generation: 42, TimeoutMs: 5000}
	if !ok || f != want {
		t.Fatalf("ParseCall(%q) = %+v, %v; want %+v", v, f, ok, want)
	}
}

func TestParseCallIdempotentSixthField(t *testing.T) {
	v := string(AppendCallID(AppendCall(nil, "counter", "c", "add", 1, 2), "k-1"))
	if f, ok := ParseCall(v); !ok || f.CallID != "k-1" || f.TimeoutMs != 2 {
		t.Fatalf("ParseCall(%q) = %+v, %v; want call id k-1", v, f, ok)
	}
}

func TestParseCallRefusesAllButFiveOrSixFields(t *testing.T) {
	for _, v := range []string{
		"", " c add 1 2", "counter", "counter c add", "counter c add 1", "counter c add 1 2 3 4",
		"counter  c add 1 2", " counter c add 1 2", "counter c add 1 2 ",
		"counter c add -1 2", "counter c add 1 -2", "counter c add +1 2", "counter c add 1 0x2",
		"counter c add 18446744073709551616 2", "counter c add 1 9223372036854775808",
	} {
		if f, ok := ParseCall(v); ok {
			t.Errorf("ParseCall(%q) = %+v, want refused", v, f)
		}
	}
}
