package proctest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Build builds the Go main package pkg (an import path, or "." for the
// current one) into a temporary directory, with the race detector when race
// is set, and returns the binary's path and a function that removes it.
func Build(pkg string, race bool) (bin string, remove func(), err error) {
	dir, err := os.MkdirTemp("", "troupe-test-")
	if err != nil {
		return "", nil, err
	}
	remove = func() { os.RemoveAll(dir) }
	bin = filepath.Join(dir, filepath.Base(pkg))
	if pkg == "." {
		bin = filepath.Join(dir, "main")
	}
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, pkg)...).CombinedOutput(); err != nil {
		remove()
		return "", nil, fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return bin, remove, nil
}
