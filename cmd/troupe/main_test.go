package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/internal/proctest"
	"github.com/troupe-dev/troupe/router"
)

// troupeBin is the binary under test, built once by TestMain.
var troupeBin string

func TestMain(m *testing.M) {
	bin, remove, err := proctest.Build(".", raceEnabled)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	troupeBin = bin
	code := m.Run()
	remove()
	os.Exit(code)
}

// proc is a long-running troupe process, killed when the test ends.
type proc struct {
	cmd    *exec.Cmd
	stdout proctest.Buffer
	stderr proctest.Buffer
	done   chan struct{}
	err    error // from Wait, once done is closed
}

// startProc starts troupe with args.
func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	return startCmd(t, troupeBin, testEnv(), args...)
}

// startCmd starts the program bin with env and args; it is killed when t
// ends, and its output logged if t failed.
func startCmd(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s %s\nstdout:\n%s\nstderr:\n%s", filepath.Base(bin), strings.Join(args, " "), p.stdout.String(), p.stderr.String())
		}
	})
	return p
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// exitCode waits for the process to end and returns its exit status.
func (p *proc) exitCode(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("troupe %v still running after %v", p.cmd.Args[1:], within)
	}
	if p.err != nil && p.cmd.ProcessState == nil {
		t.Fatal(p.err)
	}
	return p.cmd.ProcessState.ExitCode()
}

// startDev starts troupe dev and returns it with the URL it printed.
func startDev(t *testing.T, addr, store string) (*proc, string) {
	t.Helper()
	p := startProc(t, "dev", "--listen", addr, "--store", store)
	var url string
	waitFor(t, 20*time.Second, "troupe dev prints its URL", func() bool {
		first, _, ok := strings.Cut(p.stdout.String(), "\n")
		url = first
		return ok
	})
	if want := "nats://" + addr; url != want {
		t.Fatalf("troupe dev printed %q first, want %q", url, want)
	}
	return p, url
}

// testEnv is the environment of a troupe process: no NATS_URL, and no
// second of sleep at exit in a race-enabled binary.
func testEnv() []string {
	return append(os.Environ(), "NATS_URL=", "GORACE=atexit_sleep_ms=0")
}

// result is how a short troupe command ended.
type result struct {
	stdout, stderr string
	code           int
}

// troupe runs a short command to its end; stdin feeds its standard input
// and extraEnv adds to its environment. Safe to call from several goroutines.
func troupe(stdin string, extraEnv []string, args ...string) result {
	res, err := runProgram(troupeBin, append(testEnv(), extraEnv...), stdin, args...)
	if err != nil {
		res.stderr, res.code = err.Error(), -1
	}
	return res
}

// runProgram runs the program bin to its end, bounded by 30 s; err is set when it
// could not run or did not end by itself.
func runProgram(bin string, env []string, stdin string, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return result{out.String(), errb.String(), ee.ExitCode()}, nil
	case err != nil:
		return result{stdout: out.String()}, err
	}
	return result{out.String(), errb.String(), 0}, nil
}

// mustCall runs troupe call and checks it prints want.
func mustCall(t *testing.T, url, want string, args ...string) {
	t.Helper()
	if err := callReply(url, want, args...); err != nil {
		t.Fatal(err)
	}
}

// callReply runs troupe call and reports whether it printed want.
func callReply(url, want string, args ...string) error {
	r := troupe("", nil, append([]string{"call", "-s", url}, args...)...)
	if r.code != 0 || r.stdout != want+"\n" {
		return fmt.Errorf("troupe call %v: exit %d, stdout %q, stderr %q; want %q", args, r.code, r.stdout, r.stderr, want+"\n")
	}
	return nil
}

// waitFor polls cond until it holds, failing the test after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newRouter follows the membership at url from the test process.
func newRouter(t *testing.T, url string) *router.Router {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return natstest.Router(t, nc)
}
