package bench

import (
	"bufio"
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/internal/proctest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/router"
)

// BenchmarkNodeActorAB compares a call to the JavaScript counter jscounter
// (examples/node/actor, one worker process; each turn is a NATS round trip
// from the host to the worker) with a call to the Go counter, in
// alternating phases (see BenchmarkCallAB), one caller (seq) and 64 callers
// on 64 counters of each kind (par64). Both add 1 and save the total before
// replying. It reports each side's p50 latency and throughput and the
// JavaScript/Go ratios. Run it once:
//
//	go test -run '^$' -bench NodeActorAB -benchtime=1x ./bench/
func BenchmarkNodeActorAB(b *testing.B) {
	dir := proctest.NodeExamples(b)
	s := natstest.Server(b)
	startHost(b, natstest.Connect(b, s), host.Config{Logger: discardLogger}, func(h *host.Host) error {
		return errors.Join(counter.Register(h), h.RegisterWorker("jscounter"))
	})
	startNodeWorker(b, dir, s.ClientURL())
	r := natstest.Router(b, natstest.Connect(b, s))
	add := func(typ placement.ActorType) func(g int) error {
		return func(g int) error {
			_, err := r.Call(context.Background(), typ, actorID("ab", g), "add", []byte("1"))
			return err
		}
	}
	goSide, jsSide := add(counter.Type), add("jscounter")
	warmUp(b, r, callers, goSide, jsSide)
	for _, mode := range abModes {
		b.Run(mode.name, func(b *testing.B) {
			sides := alternate(b, mode.callers, goSide, jsSide)
			reportAB(b, "go", sides[0], "js", sides[1])
		})
	}
}

// warmUp activates the actors the callers use, once the router's table
// serves their types.
func warmUp(b *testing.B, r *router.Router, n int, sides ...func(g int) error) {
	deadline := time.Now().Add(30 * time.Second)
	for g := range n {
		for _, do := range sides {
			for {
				err := do(g)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("warming up: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

// startNodeWorker runs the example JavaScript worker (actor/examples.js in
// dir) against url until b ends.
func startNodeWorker(b *testing.B, dir, url string) {
	b.Helper()
	cmd := exec.Command("node", "actor/examples.js", url)
	cmd.Dir = dir
	var stderr proctest.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "serving") {
				ready <- true
			}
		}
		ready <- false
	}()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	})
	select {
	case ok := <-ready:
		if !ok {
			b.Fatalf("the JavaScript worker exited:\n%s", stderr.String())
		}
	case <-time.After(30 * time.Second):
		b.Fatalf("the JavaScript worker did not start within 30s:\n%s", stderr.String())
	}
}
