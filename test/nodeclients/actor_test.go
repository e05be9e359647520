package nodeclients

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/protocol"
)

// TestNodeActorConformance runs the JavaScript actor package's side of the
// worker conformance cases (protocol/testdata/workers.json) and its unit
// tests: examples/node/actor/test/conformance.test.js.
func TestNodeActorConformance(t *testing.T) {
	_, dir := nodeDirs(t)
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	if err := run(ctx, t, dir, nil, "node", "--test", "actor/test/conformance.test.js"); err != nil {
		t.Fatalf("node --test: %v (timeout %v)", err, nodeTimeout)
	}
}

// TestNodeActorPackage runs the example JavaScript actors
// (examples/node/actor/test/actors.test.js) against `troupe dev
// --worker-types jscounter,jsproxy`: calling and called by Go actors, call
// cycles, errors, reminders.
func TestNodeActorPackage(t *testing.T) {
	root, dir := nodeDirs(t)
	bin := buildTroupe(t, root)
	url := startDev(t, bin, "--worker-types", "jscounter,jsproxy")
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	env := append(os.Environ(), "TROUPE_NATS_URL="+url)
	if err := run(ctx, t, dir, env, "node", "--test", "actor/test/actors.test.js"); err != nil {
		t.Fatalf("node --test: %v (timeout %v)", err, nodeTimeout)
	}
}

// TestNodeActorWorkerKilledMidTurn kills a JavaScript worker (SIGKILL) while
// it runs a turn of jscounter: the host's worker timeout ends that turn
// with UNAVAILABLE, nothing saved, and the gateway's retry of the same call
// is taken by a worker started afterwards, so the caller gets the total of
// one add, not two.
func TestNodeActorWorkerKilledMidTurn(t *testing.T) {
	root, dir := nodeDirs(t)
	bin := buildTroupe(t, root)
	url := startDev(t, bin, "--worker-types", "jscounter", "--worker-timeout", "500ms")
	dying := startNode(t, dir, "actor/testdata/dying-worker.js", url)
	dying.waitLine(t, "ready")

	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	type result struct {
		reply string
		err   *protocol.Error
	}
	done := make(chan result, 1)
	go func() {
		msg := &nats.Msg{Subject: protocol.GatewaySubject(protocol.DefaultSubjectPrefix, "jscounter", "k1", "add"), Data: []byte("5"), Header: nats.Header{}}
		msg.Header.Set(protocol.HeaderTimeout, "20000")
		reply, err := nc.RequestMsg(msg, 25*time.Second)
		if err != nil {
			done <- result{err: protocol.Errorf(protocol.CodeInternal, "%v", err)}
			return
		}
		done <- result{reply: string(reply.Data), err: protocol.DecodeError(reply.Header, reply.Data)}
	}()
	dying.waitLine(t, "dying mid-turn")
	if err := dying.wait(10 * time.Second); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the dying worker exited with %v, want killed", err)
	}
	select {
	case r := <-done:
		t.Fatalf("the call ended (%q, %v) with no worker running; want it retried until one runs", r.reply, r.err)
	case <-time.After(time.Second): // two worker timeouts: the turn failed, and its retries found no worker
	}
	worker := startNode(t, dir, "actor/examples.js", url)
	worker.waitLine(t, "serving")
	r := <-done
	if r.err != nil || r.reply != "5" {
		t.Fatalf("the call after the worker died: %q, %v; want 5 (the dead turn saved nothing)", r.reply, r.err)
	}
	reply, err := nc.Request(protocol.GatewaySubject(protocol.DefaultSubjectPrefix, "jscounter", "k1", "get"), nil, 10*time.Second)
	if err != nil || string(reply.Data) != "5" {
		t.Fatalf("get: %v %q, want 5", err, reply.Data)
	}
}

// nodeProc is a node program the test started.
type nodeProc struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan error
}

// startNode starts node with args in dir; it is killed when the test ends.
func startNode(t *testing.T, dir string, args ...string) *nodeProc {
	t.Helper()
	cmd := exec.Command("node", args...)
	cmd.Dir = dir
	cmd.Stderr = &logWriter{t: t, prefix: "node " + args[0] + ": "}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{cmd: cmd, lines: make(chan string, 64), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			t.Log("node " + args[0] + ": " + sc.Text())
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
	})
	return p
}

// waitLine waits for a line of the program's output that contains s.
func (p *nodeProc) waitLine(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l := <-p.lines:
			if strings.Contains(l, s) {
				return
			}
		case err := <-p.done:
			p.done <- err
			t.Fatalf("node exited (%v) before printing %q", err, s)
		case <-deadline:
			t.Fatalf("node printed no %q within 30s", s)
		}
	}
}

// wait waits for the program to exit and returns how it ended.
func (p *nodeProc) wait(d time.Duration) error {
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(d):
		return context.DeadlineExceeded
	}
}
