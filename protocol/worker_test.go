package protocol_test

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/protocol"
)

// workerCases is protocol/testdata/workers.json, the worker protocol's
// conformance cases that the Go tests and the JavaScript actor package share.
type workerCases struct {
	Encodings []struct {
		Name    string          `json:"name"`
		Message string          `json:"message"`
		Value   json.RawMessage `json:"value"`
		Hex     string          `json:"hex"`
	} `json:"encodings"`
}

// TestConformanceWorkerEncodings checks that each message of the worker
// cases encodes to the bytes the file gives, and decodes back from them.
func TestConformanceWorkerEncodings(t *testing.T) {
	data, err := os.ReadFile("testdata/workers.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases workerCases
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases.Encodings) == 0 {
		t.Fatal("no encodings")
	}
	for _, c := range cases.Encodings {
		var m, back proto.Message
		switch c.Message {
		case "WorkerTurn":
			m, back = &pb.WorkerTurn{}, &pb.WorkerTurn{}
		case "WorkerAnswer":
			m, back = &pb.WorkerAnswer{}, &pb.WorkerAnswer{}
		default:
			t.Fatalf("%s: unknown message %q", c.Name, c.Message)
		}
		if err := protojson.Unmarshal(c.Value, m); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if got := hex.EncodeToString(b); got != c.Hex {
			t.Errorf("%s: encodes to %s, want %s", c.Name, got, c.Hex)
		}
		want, err := hex.DecodeString(c.Hex)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if err := proto.Unmarshal(want, back); err != nil || !proto.Equal(m, back) {
			t.Errorf("%s: %s decodes to %v (%v), want %v", c.Name, c.Hex, back, err, m)
		}
	}
}

func TestWorkerNames(t *testing.T) {
	if got := protocol.WorkerSubject("troupe", "jscounter"); got != "troupe.worker.jscounter" {
		t.Errorf("WorkerSubject = %q", got)
	}
	if got := protocol.WorkerQueue("troupe"); got != "troupe.workers" {
		t.Errorf("WorkerQueue = %q", got)
	}
	for code, ok := range map[protocol.Code]bool{protocol.CodeApplication: true, protocol.CodeInvalidArgument: true, protocol.CodeUnknownMethod: true, protocol.CodeInternal: true, protocol.CodeMoved: false, protocol.CodeStateConflict: false, protocol.CodeUnavailable: false} {
		if protocol.WorkerCode(code) != ok {
			t.Errorf("WorkerCode(%s) = %v", code, !ok)
		}
	}
}
