package proctest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// NodeExamples returns the directory of the Node.js examples
// (examples/node), with its pinned npm packages installed. It skips the test
// when TROUPE_SKIP_NODE=1 and fails it when node or npm is not on PATH.
func NodeExamples(t testing.TB) string {
	t.Helper()
	if os.Getenv("TROUPE_SKIP_NODE") == "1" {
		t.Skip("TROUPE_SKIP_NODE=1")
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not on PATH (%v): install Node.js 20 or later, or set TROUPE_SKIP_NODE=1", tool, err)
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("module root not found")
		}
		dir = parent
	}
	dir = filepath.Join(dir, "examples", "node")
	NpmCI(t, dir)
	return dir
}

// npmTimeout bounds npm ci.
const npmTimeout = 5 * time.Minute

// NpmCI runs `npm ci` in dir when node_modules is missing or older than
// package-lock.json (npm ci records the install in
// node_modules/.package-lock.json).
func NpmCI(t testing.TB, dir string) {
	t.Helper()
	lock, err := os.Stat(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	if inst, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err == nil && !inst.ModTime().Before(lock.ModTime()) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), npmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v (timeout %v)\n%s", dir, err, npmTimeout, out)
	}
}
