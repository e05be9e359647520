package protocol_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/troupe-dev/troupe/protocol"
)

// callCases is protocol/testdata/calls.json, the calls' conformance cases
// that the Go tests and the Node.js client tests share.
type callCases struct {
	CallHeader []struct {
		Type       string `json:"type"`
		ID         string `json:"id"`
		IDEncoded  string `json:"id_encoded"`
		Method     string `json:"method"`
		Generation uint64 `json:"generation"`
		TimeoutMs  int64  `json:"timeout_ms"`
		Value      string `json:"value"`
	} `json:"call_header"`
	CallIDs struct {
		Valid   []string `json:"valid"`
		Invalid []string `json:"invalid"`
	} `json:"call_ids"`
}

func TestConformanceCallHeader(t *testing.T) {
	data, err := os.ReadFile("testdata/calls.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases callCases
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases.CallHeader) == 0 {
		t.Fatal("no call_header cases")
	}
	for _, c := range cases.CallHeader {
		if enc := protocol.EncodeID(c.ID); enc != c.IDEncoded {
			t.Errorf("EncodeID(%q) = %q, want %q", c.ID, enc, c.IDEncoded)
		}
		if v := string(protocol.AppendCall(nil, c.Type, c.IDEncoded, c.Method, c.Generation, c.TimeoutMs)); v != c.Value {
			t.Errorf("AppendCall(%s) = %q, want %q", c.Type, v, c.Value)
		}
		f, ok := protocol.ParseCall(c.Value)
		want := protocol.CallFields{Type: c.Type, ID: c.IDEncoded, Method: c.Method, Generation: c.Generation, TimeoutMs: c.TimeoutMs}
		if !ok || f != want {
			t.Errorf("ParseCall(%q) = %+v, %v; want %+v", c.Value, f, ok, want)
		}
	}
}

// TestConformanceIdempotentCallIDs checks the call ids of the shared cases,
// alone and as the sixth field of a Troupe-Call value.
func TestConformanceIdempotentCallIDs(t *testing.T) {
	data, err := os.ReadFile("testdata/calls.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases callCases
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases.CallIDs.Valid) == 0 || len(cases.CallIDs.Invalid) == 0 {
		t.Fatal("no call_ids cases")
	}
	for _, id := range cases.CallIDs.Valid {
		if !protocol.ValidCallID(id) {
			t.Errorf("ValidCallID(%q) = false, want true", id)
		}
		v := string(protocol.AppendCallID(protocol.AppendCall(nil, "counter", "c1", "add", 7, 100), id))
		f, ok := protocol.ParseCall(v)
		if !ok || f.CallID != id || f.TimeoutMs != 100 {
			t.Errorf("ParseCall(%q) = %+v, %v; want call id %q", v, f, ok, id)
		}
	}
	for _, id := range cases.CallIDs.Invalid {
		if protocol.ValidCallID(id) {
			t.Errorf("ValidCallID(%q) = true, want false", id)
		}
		v := "counter c1 add 7 100 " + id
		if f, ok := protocol.ParseCall(v); ok && protocol.ValidCallID(f.CallID) {
			t.Errorf("ParseCall(%q) gave the valid call id %q", v, f.CallID)
		}
	}
}
