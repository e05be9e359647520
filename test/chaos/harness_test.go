package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/internal/proctest"
	"github.com/troupe-dev/troupe/internal/tcpproxy"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/router"
)

// troupeBin is the binary under test, built once by TestMain. It is built
// without the race detector: the hosts must keep up with the load on a
// small machine, and the host package's own tests run under -race.
var troupeBin string

func TestMain(m *testing.M) {
	bin, remove, err := proctest.Build("github.com/troupe-dev/troupe/cmd/troupe", false)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	troupeBin = bin
	code := m.Run()
	remove()
	os.Exit(code)
}

// harness owns the server, the hosts' processes and their proxies.
type harness struct {
	t      *testing.T
	srv    *server.Server
	dir    string
	router *router.Router

	faults map[string]int // injected, by kind
	seed   int64

	// typ is the counter type under load ("counter", the Go example, or
	// "jscounter", served by JavaScript workers); hostArgs are added to
	// every host's command line.
	typ      placement.ActorType
	hostArgs []string

	mu     sync.Mutex
	hosts  map[string]*hostProc // by name, the current process of each host
	runs   []*hostProc          // every process ever started, for the ledger
	nextID int
}

// hostProc is one process of a host.
type hostProc struct {
	name   string
	proxy  *tcpproxy.Proxy
	cmd    *exec.Cmd
	ledger string
	stderr proctest.Buffer
	done   chan struct{}

	mu      sync.Mutex
	diedAt  int64 // unix nanoseconds of a SIGKILL; 0 if it exited on its own
	stopped bool  // under SIGSTOP
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, srv: natstest.Server(t), dir: t.TempDir(), hosts: make(map[string]*hostProc), typ: "counter"}
	nc := natstest.Connect(t, h.srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := placement.EnsureBucket(context.Background(), js, placement.BucketConfig{}); err != nil {
		t.Fatal(err)
	}
	h.router = natstest.Router(t, nc)
	t.Cleanup(h.killAll)
	return h
}

// startHosts starts n new hosts.
func (h *harness) startHosts(n int) {
	for range n {
		h.nextID++
		h.start(fmt.Sprintf("h%d", h.nextID), nil)
	}
}

// start starts a process for the host name, through proxy (a new one when
// nil).
func (h *harness) start(name string, proxy *tcpproxy.Proxy) *hostProc {
	h.t.Helper()
	if proxy == nil {
		var err error
		if proxy, err = tcpproxy.Start(strings.TrimPrefix(h.srv.ClientURL(), "nats://")); err != nil {
			h.t.Fatal(err)
		}
	}
	h.mu.Lock()
	run := len(h.runs)
	h.mu.Unlock()
	p := &hostProc{
		name:   name,
		proxy:  proxy,
		ledger: filepath.Join(h.dir, fmt.Sprintf("ledger-%03d-%s.jsonl", run, name)),
		done:   make(chan struct{}),
	}
	args := append([]string{"host", "-s", "nats://" + proxy.Addr(), "--name", name,
		"--lease-ttl", flagTTL.String(), "--ledger", p.ledger}, h.hostArgs...)
	p.cmd = exec.Command(troupeBin, args...)
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	h.mu.Lock()
	h.hosts[name] = p
	h.runs = append(h.runs, p)
	h.mu.Unlock()
	return p
}

// waitHosts waits until the router's table lists exactly the hosts named,
// none draining.
func (h *harness) waitHosts(names []string) {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var got []string
	for time.Now().Before(deadline) {
		got = got[:0]
		for _, m := range h.router.Table().Hosts(h.typ) {
			got = append(got, string(m))
		}
		slices.Sort(got)
		if slices.Equal(got, names) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("the table lists hosts %v, want every host started and not stopped: %v", got, names)
}

// liveNames is the sorted names of the hosts that should be running.
func (h *harness) liveNames() []string {
	var names []string
	for _, p := range h.live() {
		names = append(names, p.name)
	}
	return names
}

func (h *harness) live() []*hostProc {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ps []*hostProc
	for _, p := range h.hosts {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *hostProc) int { return strings.Compare(a.name, b.name) })
	return ps
}

func (h *harness) forget(p *hostProc) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hosts[p.name] == p {
		delete(h.hosts, p.name)
	}
}

// kill sends SIGKILL and waits for the process to die.
func (p *hostProc) kill() {
	p.mu.Lock()
	if p.diedAt == 0 && !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		p.diedAt = time.Now().UnixNano()
	}
	p.mu.Unlock()
}

func (p *hostProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// term sends SIGTERM and waits for the drain to end.
func (p *hostProc) term(t *testing.T) {
	t.Helper()
	p.cont()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("host %s did not exit within 30s of SIGTERM:\n%s", p.name, p.stderr.String())
		p.kill()
	}
}

func (p *hostProc) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGSTOP)
	p.stopped = true
}

func (p *hostProc) cont() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		p.stopped = false
	}
}

// heal resumes stopped hosts, restores cut links, and waits until the table
// lists every live host.
func (h *harness) heal() {
	for _, p := range h.live() {
		p.cont()
		p.proxy.Restore()
	}
	h.waitHosts(h.liveNames())
}

// readCounters reads every counter's final value.
func (h *harness) readCounters(n int) []int64 {
	h.t.Helper()
	finals := make([]int64, n)
	for i := range finals {
		var err error
		for try := 0; try < 5; try++ {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			var reply []byte
			reply, err = h.router.Call(ctx, h.typ, actorID(i), "get", nil)
			cancel()
			if err == nil {
				_, err = fmt.Sscan(string(reply), &finals[i])
				break
			}
		}
		if err != nil {
			h.t.Fatalf("reading counter %s: %v", actorID(i), err)
		}
	}
	return finals
}

// stopAll drains every host, so their ledgers close every activation.
func (h *harness) stopAll() {
	var wg sync.WaitGroup
	for _, p := range h.live() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.term(h.t)
		}()
	}
	wg.Wait()
}

func (h *harness) killAll() {
	h.mu.Lock()
	runs := append([]*hostProc(nil), h.runs...)
	h.mu.Unlock()
	for _, p := range runs {
		p.cont()
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		p.proxy.Close()
	}
	if h.t.Failed() {
		for _, p := range runs {
			h.t.Logf("host %s (ledger %s) stderr:\n%s", p.name, filepath.Base(p.ledger), tail(p.stderr.String(), 40))
		}
	}
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

func actorID(i int) placement.ActorID { return placement.ActorID(fmt.Sprintf("c%d", i)) }
