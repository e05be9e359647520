// Package nodeclients runs the tests of the Node.js clients in examples/node
// (their test/*.test.js) against a real troupe deployment, so that
// `go test ./...` covers them: it builds the troupe binary, starts `troupe
// dev` on a free loopback port with a temporary store, installs the pinned
// npm packages when needed and runs `node --test test/` with
// TROUPE_NATS_URL and TROUPE_BIN set.
//
// Node.js and npm must be on PATH; set TROUPE_SKIP_NODE=1 to skip instead.
package nodeclients

import (
	"github.com/troupe-dev/troupe/internal/natstest"

	"github.com/troupe-dev/troupe/internal/proctest"

	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	nodeTimeout = 2 * time.Minute
)

func TestNodeClients(t *testing.T) {
	root, dir := nodeDirs(t)
	bin := buildTroupe(t, root)
	url := startDev(t, bin)

	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	env := append(os.Environ(), "TROUPE_NATS_URL="+url, "TROUPE_BIN="+bin)
	if err := run(ctx, t, dir, env, "node", "--test", "test/"); err != nil {
		t.Fatalf("node --test: %v (timeout %v)", err, nodeTimeout)
	}
}

// nodeDirs returns the module root and examples/node with its npm
// packages installed (proctest.NodeExamples: it skips the test when
// TROUPE_SKIP_NODE=1 and fails it when node or npm is not on PATH).
func nodeDirs(t *testing.T) (root, dir string) {
	t.Helper()
	dir = proctest.NodeExamples(t)
	return filepath.Dir(filepath.Dir(dir)), dir
}

// buildTroupe builds cmd/troupe into a temporary directory, with the race
// detector when this test has it (the build cache then shares cmd/troupe's
// own test build).
func buildTroupe(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "troupe")
	args := []string{"build", "-o", bin}
	if raceEnabled() {
		args = append(args, "-race")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/troupe")...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/troupe: %v\n%s", err, out)
	}
	return bin
}

func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// startDev starts `troupe dev` on a free port, with the extra flags args,
// and returns the URL it printed. It is stopped with SIGTERM (a graceful
// drain) when the test ends.
func startDev(t *testing.T, bin string, args ...string) string {
	t.Helper()
	addr := natstest.FreeAddr(t)
	cmd := exec.Command(bin, append([]string{"dev", "--listen", addr, "--store", t.TempDir()}, args...)...)
	cmd.Env = append(os.Environ(), "NATS_URL=", "GORACE=atexit_sleep_ms=0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr proctest.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case urls <- sc.Text():
			default:
			}
		}
		done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("troupe dev after SIGTERM: %v\n%s", err, stderr.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("troupe dev still running 30s after SIGTERM; killed\n%s", stderr.String())
		}
	})
	select {
	case url := <-urls:
		if want := "nats://" + addr; url != want {
			t.Fatalf("troupe dev printed %q first, want %q\n%s", url, want, stderr.String())
		}
		return url
	case err := <-done:
		t.Fatalf("troupe dev exited: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("troupe dev printed no URL within 30s\n%s", stderr.String())
	}
	return ""
}

// run runs a command in dir with env (nil: this process's) and sends its
// output to the test log line by line, shown when the test fails or with -v.
// The command gets its own process group, so that a timeout also ends what
// it started.
func run(ctx context.Context, t *testing.T, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, env
	w := &logWriter{t: t, prefix: name + ": "}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	w.Write([]byte("\n")) // the last line, if it had no newline
	return err
}

// logWriter sends complete lines to t.Log.
type logWriter struct {
	t      *testing.T
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		line, rest, ok := strings.Cut(string(w.buf), "\n")
		if !ok {
			return len(p), nil
		}
		if line != "" {
			w.t.Log(w.prefix + line)
		}
		w.buf = []byte(rest)
	}
}
