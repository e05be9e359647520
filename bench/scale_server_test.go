package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/troupe-dev/troupe/internal/embedded"
)

// The scale harness measures the server from outside: the nats-server runs
// in its own process (this test binary, re-executed), so its CPU time is its
// own and the hosts' is the harness's.

// natsStoreEnv, when set, makes the test binary run a nats-server on that
// store directory instead of its tests (see serveNATS).
const natsStoreEnv = "TROUPE_BENCH_NATS_STORE"

// natsSyncEnv, when set with natsStoreEnv, is the server's fsync interval
// instead of devSync (see -scale.sync).
const natsSyncEnv = "TROUPE_BENCH_NATS_SYNC"

// natsProfileEnv, when set with natsStoreEnv, makes the server process write
// a CPU profile of itself to that file while it measures at rest (see
// -scale.serverprofile): started on the first SIGUSR1, stopped on the next.
const natsProfileEnv = "TROUPE_BENCH_NATS_PROFILE"

func TestMain(m *testing.M) {
	if dir := os.Getenv(natsStoreEnv); dir != "" {
		os.Exit(serveNATS(dir))
	}
	os.Exit(m.Run())
}

// devSync is the fsync interval `troupe dev` gives its embedded server
// (defaultSync in cmd/troupe/dev.go, which is package main).
const devSync = 100 * time.Millisecond

// serveNATS runs a server configured as `troupe dev` configures its own
// (embedded.Config with the dev fsync interval, unless -scale.sync says
// otherwise; a random loopback port instead of 4222), plus the HTTP monitor
// on a random port. It prints "<client URL> <monitor address>" on one line,
// and runs until its standard input ends: the parent closes it, or dies.
func serveNATS(dir string) int {
	sync := devSync
	if v := os.Getenv(natsSyncEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		sync = d
	}
	s, err := embedded.Start(embedded.Config{StoreDir: dir, SyncInterval: sync, Monitor: "127.0.0.1:0"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if path := os.Getenv(natsProfileEnv); path != "" {
		go profileOnSignal(path)
	}
	fmt.Printf("%s %s\n", s.ClientURL(), s.MonitorAddr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	s.Shutdown()
	s.WaitForShutdown()
	return 0
}

// profileOnSignal writes a CPU profile to path from the first SIGUSR1 to the
// second.
func profileOnSignal(path string) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	<-sig
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	<-sig
	pprof.StopCPUProfile()
}

// natsProc is a nats-server in a child process.
type natsProc struct {
	cmd     *exec.Cmd
	stdin   io.Closer
	url     string
	monitor string
	done    chan struct{}
}

// startNATSProc starts a server process for tb, stopped when tb ends.
func startNATSProc(tb testing.TB) *natsProc {
	tb.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), natsStoreEnv+"="+tb.TempDir())
	if *scaleServerProfile != "" {
		cmd.Env = append(cmd.Env, natsProfileEnv+"="+*scaleServerProfile)
	}
	if *scaleSync != devSync {
		cmd.Env = append(cmd.Env, natsSyncEnv+"="+scaleSync.String())
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &natsProc{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	tb.Cleanup(p.stop)
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		f := strings.Fields(l)
		if len(f) != 2 {
			tb.Fatalf("nats-server process said %q, want its URL and monitor address", l)
		}
		p.url, p.monitor = f[0], f[1]
	case <-time.After(30 * time.Second):
		tb.Fatal("nats-server process did not start within 30s")
	}
	return p
}

// toggleProfile starts the server's CPU profile, or stops it if started,
// when -scale.serverprofile names a file.
func (p *natsProc) toggleProfile() {
	if *scaleServerProfile != "" {
		_ = p.cmd.Process.Signal(syscall.SIGUSR1)
	}
}

// stop ends the server process: it shuts down when its input closes, and is
// killed if it has not within 10 s.
func (p *natsProc) stop() {
	_ = p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// counters is what the harness reads of the server and of itself at one
// moment.
type counters struct {
	at                 time.Time
	inMsgs, outMsgs    int64
	outBytes           int64
	serverCPU, selfCPU time.Duration
}

// sample reads the server's message counters from /varz, its CPU time from
// /proc and the harness's own CPU time.
func (p *natsProc) sample() (counters, error) {
	c := counters{at: time.Now()}
	resp, err := http.Get("http://" + p.monitor + "/varz")
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	var v server.Varz
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return c, fmt.Errorf("/varz: %w", err)
	}
	c.inMsgs, c.outMsgs, c.outBytes = v.InMsgs, v.OutMsgs, v.OutBytes
	if c.serverCPU, err = procCPU(p.cmd.Process.Pid); err != nil {
		return c, err
	}
	c.selfCPU = selfCPU()
	return c, nil
}

// clockTicks is the unit of /proc/<pid>/stat times (USER_HZ, 100 on Linux).
const clockTicks = 100

// procCPU is the user plus system CPU time of process pid, from
// /proc/<pid>/stat (fields 14 and 15).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')') // the command name may hold spaces
	if i < 0 || i+2 > len(b) {
		return 0, errors.New("unreadable /proc stat")
	}
	f := strings.Fields(string(b[i+2:])) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// selfCPU is the harness process's user plus system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rates is the change of counters over a window, per second of it.
type rates struct {
	window               time.Duration
	inPerSec, outPerSec  float64
	outBytesPerSec       float64
	serverCore, selfCore float64 // CPU, in cores (1 = 100 % of a core)
}

func ratesBetween(a, b counters) rates {
	d := b.at.Sub(a.at)
	s := d.Seconds()
	return rates{
		window:         d,
		inPerSec:       float64(b.inMsgs-a.inMsgs) / s,
		outPerSec:      float64(b.outMsgs-a.outMsgs) / s,
		outBytesPerSec: float64(b.outBytes-a.outBytes) / s,
		serverCore:     (b.serverCPU - a.serverCPU).Seconds() / s,
		selfCore:       (b.selfCPU - a.selfCPU).Seconds() / s,
	}
}

// parseCounts parses the comma-separated counts of 2 or more that flag name
// holds, of what (hosts, members).
func parseCounts(tb testing.TB, name, value, what string) []int {
	var ns []int
	for _, f := range strings.Split(value, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			tb.Fatalf("%s: %q is not a %s count of 2 or more", name, f, what)
		}
		ns = append(ns, n)
	}
	return ns
}

// table writes results as a Markdown table, a column per result.
type table[T any] struct {
	w       io.Writer
	results []T
}

// row writes one row: its name, then f of each result.
func (t table[T]) row(name string, f func(T) string) {
	fmt.Fprintf(t.w, "| %s |", name)
	for _, r := range t.results {
		fmt.Fprintf(t.w, " %s |", f(r))
	}
	fmt.Fprintln(t.w)
}

// header writes the first row and the separator under it.
func (t table[T]) header(name string, f func(T) string) {
	t.row(name, f)
	fmt.Fprint(t.w, "|---|")
	for range t.results {
		fmt.Fprint(t.w, "---|")
	}
	fmt.Fprintln(t.w)
}

// numOf formats f of a result with format.
func numOf[T any](format string, f func(T) float64) func(T) string {
	return func(r T) string { return fmt.Sprintf(format, f(r)) }
}
