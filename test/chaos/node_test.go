package chaos

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/internal/proctest"
	"github.com/troupe-dev/troupe/internal/tcpproxy"
)

// TestChaosNodeActor is the chaos run for an actor written in JavaScript:
// the counter jscounter (examples/node/actor), whose turns JavaScript worker
// processes compute while `troupe host` processes (--worker-types
// jscounter) keep placement, fencing and the save. Faults hit both: SIGKILL
// and SIGTERM of hosts and of workers, and cut links of both. The checks
// are TestChaos's: no acknowledged increment lost, none applied that was
// never sent, no overlapping activations in the hosts' ledgers, every call
// ended within its deadline.
//
// The default run injects each fault kind once; -chaos.node-faults N runs
// longer:
//
//	go test -count=1 -v -run TestChaosNodeActor ./test/chaos -chaos.node-faults 60
var (
	flagNodeFaults  = flag.Int("chaos.node-faults", len(nodeFaultKinds), "faults to inject in TestChaosNodeActor")
	flagNodeActors  = flag.Int("chaos.node-actors", 200, "jscounter actors under load in TestChaosNodeActor")
	flagNodeWorkers = flag.Int("chaos.node-workers", 2, "JavaScript worker processes in TestChaosNodeActor")
)

// Faults of JavaScript workers.
const (
	faultWorkerKill = "worker-sigkill+restart" // SIGKILL of a worker (mid-turn, under load), then a new one
	faultWorkerTerm = "worker-sigterm+restart" // a worker stops gracefully, then a new one
	faultWorkerCut  = "worker-cut"             // a worker's NATS link cut past the worker timeout, then restored
)

// workerTimeout is the hosts' --worker-timeout in the run: well inside a
// call's deadline, so that a call whose worker died is retried in time.
const workerTimeout = 500 * time.Millisecond

var nodeFaultKinds = []string{faultKill, faultWorkerKill, faultTerm, faultWorkerTerm, faultCut, faultWorkerCut, faultBlip}

func TestChaosNodeActor(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos run skipped in -short mode")
	}
	dir := proctest.NodeExamples(t)
	h := newHarness(t)
	h.typ = "jscounter"
	h.hostArgs = []string{"--worker-types", "jscounter", "--worker-timeout", workerTimeout.String()}
	ws := &workers{h: h, dir: dir}
	t.Cleanup(ws.killAll)
	for i := range *flagNodeWorkers {
		ws.start(fmt.Sprintf("w%d", i+1), nil)
	}
	h.startHosts(*flagHosts)
	h.waitHosts(h.liveNames())

	load := h.startLoad(*flagWorkers, *flagNodeActors, *flagTimeout)
	time.Sleep(time.Second)
	h.injectNodeFaults(ws, *flagNodeFaults)
	time.Sleep(time.Second)
	load.stop()

	h.heal()
	ws.heal()
	finals := h.readCounters(*flagNodeActors)
	h.stopAll()

	h.verify(load, finals)
}

// injectNodeFaults injects n faults one after another into hosts and
// workers: every kind once, then at random.
func (h *harness) injectNodeFaults(ws *workers, n int) {
	rng, kindOf := h.schedule(nodeFaultKinds)
	for i := range n {
		kind := kindOf(i)
		start := time.Now()
		var target string
		switch kind {
		case faultWorkerKill, faultWorkerTerm, faultWorkerCut:
			w := ws.pick(rng)
			target = w.name
			ws.inject(kind, w)
		default:
			live := h.live()
			p := live[rng.IntN(len(live))]
			target = p.name
			h.inject(kind, p)
		}
		h.faults[kind]++
		h.t.Logf("fault %2d at %s: %-22s %-4s %v", i+1, start.Format("15:04:05.000"), kind, target, time.Since(start).Round(time.Millisecond))
		time.Sleep(time.Duration(300+rng.IntN(500)) * time.Millisecond)
	}
}

// workers owns the JavaScript worker processes and their proxies.
type workers struct {
	h   *harness
	dir string

	mu   sync.Mutex
	live map[string]*workerProc
	runs []*workerProc
}

// workerProc is one process of a worker.
type workerProc struct {
	name   string
	proxy  *tcpproxy.Proxy
	cmd    *exec.Cmd
	stderr proctest.Buffer
	ready  chan struct{} // closed when it serves
	done   chan struct{}
}

// start starts a worker process named name through proxy (a new one when
// nil) and waits until it serves.
func (ws *workers) start(name string, proxy *tcpproxy.Proxy) *workerProc {
	t := ws.h.t
	t.Helper()
	if proxy == nil {
		var err error
		if proxy, err = tcpproxy.Start(strings.TrimPrefix(ws.h.srv.ClientURL(), "nats://")); err != nil {
			t.Fatal(err)
		}
	}
	w := &workerProc{name: name, proxy: proxy, ready: make(chan struct{}), done: make(chan struct{})}
	w.cmd = exec.Command("node", "actor/examples.js", "nats://"+proxy.Addr())
	w.cmd.Dir = ws.dir
	w.cmd.Stderr = &w.stderr
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "serving") {
				close(w.ready)
			}
		}
		_ = w.cmd.Wait()
		close(w.done)
	}()
	ws.mu.Lock()
	if ws.live == nil {
		ws.live = make(map[string]*workerProc)
	}
	ws.live[name] = w
	ws.runs = append(ws.runs, w)
	ws.mu.Unlock()
	select {
	case <-w.ready:
	case <-w.done:
		t.Fatalf("worker %s exited before serving:\n%s", name, w.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("worker %s not serving within 30s:\n%s", name, w.stderr.String())
	}
	return w
}

// pick returns a live worker at random.
func (ws *workers) pick(rng *rand.Rand) *workerProc {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	names := make([]string, 0, len(ws.live))
	for n := range ws.live {
		names = append(names, n)
	}
	slices.Sort(names)
	return ws.live[names[rng.IntN(len(names))]]
}

func (ws *workers) inject(kind string, w *workerProc) {
	t := ws.h.t
	switch kind {
	case faultWorkerKill:
		_ = w.cmd.Process.Signal(syscall.SIGKILL)
		<-w.done
		ws.start(w.name, w.proxy)
	case faultWorkerTerm:
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.done:
		case <-time.After(30 * time.Second):
			t.Errorf("worker %s did not exit within 30s of SIGTERM:\n%s", w.name, w.stderr.String())
			_ = w.cmd.Process.Kill()
			<-w.done
		}
		ws.start(w.name, w.proxy)
	case faultWorkerCut:
		w.proxy.Cut()
		time.Sleep(2 * workerTimeout)
		w.proxy.Restore()
	}
}

// heal restores every worker's link.
func (ws *workers) heal() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, w := range ws.live {
		w.proxy.Restore()
	}
}

func (ws *workers) killAll() {
	ws.mu.Lock()
	runs := append([]*workerProc(nil), ws.runs...)
	ws.mu.Unlock()
	for _, w := range runs {
		select {
		case <-w.done:
		default:
			_ = w.cmd.Process.Kill()
			<-w.done
		}
		w.proxy.Close()
	}
	if ws.h.t.Failed() {
		for _, w := range runs {
			ws.h.t.Logf("worker %s stderr:\n%s", w.name, tail(w.stderr.String(), 20))
		}
	}
}
