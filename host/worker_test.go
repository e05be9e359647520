package host_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/protocol"
)

// goWorker is a worker written in Go for the tests: a real NATS subscriber
// in the workers' queue group that answers each turn with answer(turn).
func goWorker(t *testing.T, nc *nats.Conn, typ string, answer func(*pb.WorkerTurn) []byte) {
	t.Helper()
	sub, err := nc.QueueSubscribe(protocol.WorkerSubject(protocol.DefaultSubjectPrefix, protocol.ActorType(typ)), protocol.WorkerQueue(protocol.DefaultSubjectPrefix), func(m *nats.Msg) {
		var turn pb.WorkerTurn
		if err := proto.Unmarshal(m.Data, &turn); err != nil {
			t.Errorf("malformed WorkerTurn: %v", err)
			return
		}
		if b := answer(&turn); b != nil {
			_ = m.Respond(b)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
}

func encodeAnswer(t *testing.T, a *pb.WorkerAnswer) []byte {
	b, err := proto.Marshal(a)
	if err != nil {
		t.Error(err)
	}
	return b
}

// workerCall sends a call through the gateway, as a client in any
// language would, and returns the reply body and its error code ("" for
// none).
func workerCall(t *testing.T, nc *nats.Conn, typ, id, method, payload string) (string, *protocol.Error) {
	t.Helper()
	return workerCallWithin(t, nc, typ, id, method, payload, "5000")
}

func workerCallWithin(t *testing.T, nc *nats.Conn, typ, id, method, payload, timeoutMs string) (string, *protocol.Error) {
	t.Helper()
	msg := &nats.Msg{Subject: protocol.GatewaySubject(protocol.DefaultSubjectPrefix, protocol.ActorType(typ), protocol.ActorID(id), method), Data: []byte(payload), Header: nats.Header{}}
	msg.Header.Set(protocol.HeaderTimeout, timeoutMs)
	reply, err := nc.RequestMsg(msg, 10*time.Second)
	if err != nil {
		t.Fatalf("%s %s %s: %v", typ, id, method, err)
	}
	return string(reply.Data), protocol.DecodeError(reply.Header, reply.Data)
}

func stateMap(entries []*pb.StateEntry) map[string]string {
	m := make(map[string]string, len(entries))
	for _, e := range entries {
		m[e.Name] = string(e.Value)
	}
	return m
}

func stateEntries(m map[string]string) []*pb.StateEntry {
	var out []*pb.StateEntry
	for name, v := range m {
		out = append(out, &pb.StateEntry{Name: name, Value: []byte(v)})
	}
	return out
}

// TestConformanceWorkerAnswers runs the answers of
// protocol/testdata/workers.json: a worker answers a call with the case's
// answer, and the caller's reply or code, and the state the next turn
// receives, are as the case says.
func TestConformanceWorkerAnswers(t *testing.T) {
	data, err := os.ReadFile("../protocol/testdata/workers.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases struct {
		Answers []struct {
			Name      string            `json:"name"`
			Before    map[string]string `json:"before"`
			Answer    json.RawMessage   `json:"answer"`
			AnswerHex string            `json:"answer_hex"`
			Reply     string            `json:"reply"`
			Code      string            `json:"code"`
			AppCode   string            `json:"app_code"`
			State     map[string]string `json:"state"`
		} `json:"answers"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases.Answers) == 0 {
		t.Fatal("no answers")
	}
	s := natstest.Server(t)
	startHost(t, s, host.Config{}, func(h *host.Host) {
		if err := h.RegisterWorker("wk"); err != nil {
			t.Fatal(err)
		}
	})
	nc := natstest.Connect(t, s)
	var mu sync.Mutex
	answers := map[string][]byte{} // by actor id, for the method "case"
	seen := map[string]map[string]string{}
	goWorker(t, nc, "wk", func(turn *pb.WorkerTurn) []byte {
		id := string(turn.ActorId)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case turn.Kind == pb.TurnKind_TURN_ACTIVATE:
			return encodeAnswer(t, &pb.WorkerAnswer{})
		case turn.Method == "seed":
			var before map[string]string
			_ = json.Unmarshal(turn.Payload, &before)
			return encodeAnswer(t, &pb.WorkerAnswer{StateChanged: true, State: stateEntries(before)})
		case turn.Method == "case":
			return answers[id]
		default: // peek
			seen[id] = stateMap(turn.State)
			return encodeAnswer(t, &pb.WorkerAnswer{})
		}
	})
	for i, c := range cases.Answers {
		id := "case" + string(rune('a'+i))
		var ans []byte
		if c.AnswerHex != "" {
			ans, err = hex.DecodeString(c.AnswerHex)
		} else {
			var a pb.WorkerAnswer
			err = protojson.Unmarshal(c.Answer, &a)
			ans = encodeAnswer(t, &a)
		}
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		mu.Lock()
		answers[id] = ans
		mu.Unlock()
		before, _ := json.Marshal(c.Before)
		if _, perr := workerCall(t, nc, "wk", id, "seed", string(before)); perr != nil {
			t.Fatalf("%s: seed: %v", c.Name, perr)
		}
		reply, perr := workerCall(t, nc, "wk", id, "case", "")
		switch {
		case c.Code == "" && perr != nil:
			t.Errorf("%s: %v, want reply %q", c.Name, perr, c.Reply)
		case c.Code == "" && reply != c.Reply:
			t.Errorf("%s: reply %q, want %q", c.Name, reply, c.Reply)
		case c.Code != "" && (perr == nil || perr.Code.String() != c.Code || perr.AppCode != c.AppCode):
			t.Errorf("%s: got %v (reply %q), want code %s app code %q", c.Name, perr, reply, c.Code, c.AppCode)
		}
		if _, perr := workerCall(t, nc, "wk", id, "peek", ""); perr != nil {
			t.Fatalf("%s: peek: %v", c.Name, perr)
		}
		mu.Lock()
		got := seen[id]
		mu.Unlock()
		if !maps.Equal(got, c.State) {
			t.Errorf("%s: state %v, want %v", c.Name, got, c.State)
		}
	}
}

// TestWorkerTurnCarriesCall checks what a worker is sent for a call: the
// identity, the call, the non-troupe headers, the state, and the chain
// the worker's own calls carry.
func TestWorkerTurnCarriesCall(t *testing.T) {
	s := natstest.Server(t)
	h := startHost(t, s, host.Config{}, func(h *host.Host) {
		if err := h.RegisterWorker("wk"); err != nil {
			t.Fatal(err)
		}
	})
	nc := natstest.Connect(t, s)
	turns := make(chan *pb.WorkerTurn, 4)
	goWorker(t, nc, "wk", func(turn *pb.WorkerTurn) []byte {
		turns <- turn
		return encodeAnswer(t, &pb.WorkerAnswer{Reply: []byte("ok"), StateChanged: true, State: []*pb.StateEntry{{Value: []byte("s1")}}})
	})
	msg := &nats.Msg{Subject: protocol.GatewaySubject(protocol.DefaultSubjectPrefix, "wk", "a.b", "add"), Data: []byte("5"), Header: nats.Header{"X-Request": {"r1"}}}
	msg.Header.Set(protocol.HeaderTimeout, "3000")
	reply, err := nc.RequestMsg(msg, 10*time.Second)
	if err != nil || string(reply.Data) != "ok" {
		t.Fatalf("call: %v %q", err, reply.Data)
	}
	act, turn := <-turns, <-turns
	if act.Kind != pb.TurnKind_TURN_ACTIVATE || string(act.ActorId) != "a.b" || len(act.State) != 0 {
		t.Errorf("activation turn %v", act)
	}
	if turn.Kind != pb.TurnKind_TURN_CALL || turn.ActorType != "wk" || string(turn.ActorId) != "a.b" || turn.Method != "add" || string(turn.Payload) != "5" {
		t.Errorf("call turn %v", turn)
	}
	if len(turn.Headers) != 1 || turn.Headers[0].Name != "X-Request" || turn.Headers[0].Values[0] != "r1" {
		t.Errorf("headers %v, want only X-Request: r1", turn.Headers)
	}
	if turn.Chain == "" || protocol.ValidateChainID(turn.Chain) != nil || turn.ChainPath != "wk/a%2Eb" {
		t.Errorf("chain %q path %q, want a chain id and wk/a%%2Eb", turn.Chain, turn.ChainPath)
	}
	if turn.TimeoutMs == 0 || turn.TimeoutMs > 2000 || turn.HostId != string(h.ID()) {
		t.Errorf("timeout %d ms (want 1-2000), host %q", turn.TimeoutMs, turn.HostId)
	}
	if _, perr := workerCall(t, nc, "wk", "a.b", "get", ""); perr != nil {
		t.Fatal(perr)
	}
	if got := stateMap((<-turns).State); !maps.Equal(got, map[string]string{"": "s1"}) {
		t.Errorf("next turn's state %v, want the saved s1", got)
	}
}

// TestWorkerSilentTurnFails checks the end of a turn whose worker never
// answers (it died mid-turn): UNAVAILABLE after the worker timeout, which
// the gateway retries until the call's deadline, telling the last
// attempt's error; nothing saved; the next turn goes to a worker that
// answers.
func TestWorkerSilentTurnFails(t *testing.T) {
	s := natstest.Server(t)
	startHost(t, s, host.Config{}, func(h *host.Host) {
		if err := h.RegisterWorker("wk", host.WorkerTimeout(300*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	})
	nc := natstest.Connect(t, s)
	var mu sync.Mutex
	silent := true
	var states []map[string]string
	goWorker(t, nc, "wk", func(turn *pb.WorkerTurn) []byte {
		mu.Lock()
		defer mu.Unlock()
		if turn.Kind != pb.TurnKind_TURN_CALL {
			return encodeAnswer(t, &pb.WorkerAnswer{})
		}
		states = append(states, stateMap(turn.State))
		if silent {
			return nil // gone mid-turn
		}
		return encodeAnswer(t, &pb.WorkerAnswer{Reply: []byte("ok"), StateChanged: true, State: []*pb.StateEntry{{Value: []byte("after")}}})
	})
	start := time.Now()
	_, perr := workerCallWithin(t, nc, "wk", "x", "set", "", "1000")
	// The call ends at its deadline. Its message tells the last attempt:
	// an UNAVAILABLE one (the worker gave no answer within 300ms) when the
	// deadline fell between attempts, or the host's own DEADLINE_EXCEEDED
	// when it fell while a worker held the last one.
	if !errors.Is(perr, protocol.ErrDeadlineExceeded) ||
		!(strings.Contains(perr.Message, "UNAVAILABLE") && strings.Contains(perr.Message, "gave no answer within 300ms") ||
			strings.Contains(perr.Message, "while a worker ran a turn")) {
		t.Fatalf("silent worker: %v, want DEADLINE_EXCEEDED after UNAVAILABLE attempts", perr)
	}
	if d := time.Since(start); d < time.Second || d > 5*time.Second {
		t.Errorf("the call failed after %v, want its 1s deadline", d)
	}
	mu.Lock()
	if len(states) < 2 {
		t.Errorf("%d silent turns in 1s, want the UNAVAILABLE attempt retried", len(states))
	}
	silent = false
	mu.Unlock()
	for range 2 {
		if reply, perr := workerCall(t, nc, "wk", "x", "set", ""); perr != nil || reply != "ok" {
			t.Fatalf("answering worker: %q %v", reply, perr)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	n := len(states)
	if n < 4 || !maps.Equal(states[n-2], map[string]string{}) || !maps.Equal(states[n-1], map[string]string{"": "after"}) {
		t.Errorf("turns saw states %v: want the silent ones to have saved nothing", states)
	}
	for _, st := range states[:n-1] {
		if len(st) != 0 {
			t.Errorf("turns saw states %v: a silent turn saved", states)
		}
	}
}

// TestWorkerNoneRunning checks a call of a worker type that no worker
// serves: each attempt fails UNAVAILABLE at once, and the call's deadline
// error says so.
func TestWorkerNoneRunning(t *testing.T) {
	s := natstest.Server(t)
	startHost(t, s, host.Config{}, func(h *host.Host) {
		if err := h.RegisterWorker("wk"); err != nil {
			t.Fatal(err)
		}
	})
	nc := natstest.Connect(t, s)
	_, perr := workerCallWithin(t, nc, "wk", "x", "get", "", "300")
	if !errors.Is(perr, protocol.ErrDeadlineExceeded) || !strings.Contains(perr.Message, "no worker serves type \"wk\"") {
		t.Fatalf("no worker: %v, want DEADLINE_EXCEEDED naming the missing worker", perr)
	}
}

// TestWorkerTimersAndReminders checks the effects of an answer: a timer's
// ticks and a reminder's firings come back as turns.
func TestWorkerTimersAndReminders(t *testing.T) {
	s := natstest.Server(t)
	startHost(t, s, host.Config{}, func(h *host.Host) {
		if err := h.RegisterWorker("wk"); err != nil {
			t.Fatal(err)
		}
	})
	nc := natstest.Connect(t, s)
	ticks := make(chan *pb.WorkerTurn, 16)
	goWorker(t, nc, "wk", func(turn *pb.WorkerTurn) []byte {
		switch {
		case turn.Method == "start":
			return encodeAnswer(t, &pb.WorkerAnswer{
				Timers:    []*pb.TimerEffect{{Name: "t", DueMs: 10}},
				Reminders: []*pb.ReminderEffect{{Name: "r", Schedule: protocol.At(time.Now().Add(time.Second)), Method: "fired", Payload: []byte("p")}},
			})
		case turn.Kind == pb.TurnKind_TURN_TIMER, turn.Kind == pb.TurnKind_TURN_REMINDER:
			ticks <- turn
		}
		return encodeAnswer(t, &pb.WorkerAnswer{})
	})
	if _, perr := workerCall(t, nc, "wk", "x", "start", ""); perr != nil {
		t.Fatal(perr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var timer, reminder bool
	for !timer || !reminder {
		select {
		case turn := <-ticks:
			switch turn.Kind {
			case pb.TurnKind_TURN_TIMER:
				timer = turn.Name == "t"
			case pb.TurnKind_TURN_REMINDER:
				reminder = turn.Name == "r" && turn.Method == "fired" && string(turn.Payload) == "p"
			}
		case <-ctx.Done():
			t.Fatalf("timer tick %v, reminder firing %v", timer, reminder)
		}
	}
}

// TestWorkerTurnTooLarge checks a turn whose payload and state exceed the
// server's max payload: PAYLOAD_TOO_LARGE at once, not retried.
func TestWorkerTurnTooLarge(t *testing.T) {
	s := natstest.Server(t)
	startHost(t, s, host.Config{}, func(h *host.Host) {
		if err := h.RegisterWorker("wk"); err != nil {
			t.Fatal(err)
		}
	})
	nc := natstest.Connect(t, s)
	goWorker(t, nc, "wk", func(turn *pb.WorkerTurn) []byte {
		if turn.Method == "grow" {
			return encodeAnswer(t, &pb.WorkerAnswer{StateChanged: true, State: []*pb.StateEntry{{Value: make([]byte, nc.MaxPayload()*3/4)}}})
		}
		return encodeAnswer(t, &pb.WorkerAnswer{})
	})
	if _, perr := workerCall(t, nc, "wk", "x", "grow", ""); perr != nil {
		t.Fatal(perr)
	}
	start := time.Now()
	_, perr := workerCall(t, nc, "wk", "x", "more", string(make([]byte, nc.MaxPayload()/2)))
	if !errors.Is(perr, protocol.ErrPayloadTooLarge) {
		t.Fatalf("a turn above the max payload: %v, want PAYLOAD_TOO_LARGE", perr)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v: retried", d)
	}
}
