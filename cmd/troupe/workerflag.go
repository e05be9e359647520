package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// workerUsage documents the worker flags in the usage of dev and host.
const workerUsage = `  --worker-types TYPES
                    also serve these actor types (comma-separated), whose
                    turns workers in other languages compute over NATS
                    (docs/workers.md); off by default
  --worker-timeout DURATION
                    how long a turn waits for a worker's answer before it
                    fails with UNAVAILABLE, nothing saved (default 2s)
`

// workerFlags are --worker-types and --worker-timeout.
type workerFlags struct {
	types   string
	timeout time.Duration
}

func (w *workerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&w.types, "worker-types", "", "actor types served by workers")
	fs.DurationVar(&w.timeout, "worker-timeout", protocol.DefaultWorkerTimeout, "worker turn timeout")
}

// list checks the flags and returns the worker types.
func (w *workerFlags) list() ([]placement.ActorType, error) {
	if w.timeout <= 0 {
		return nil, fmt.Errorf("--worker-timeout %v: want a positive duration", w.timeout)
	}
	if w.types == "" {
		return nil, nil
	}
	var out []placement.ActorType
	for _, s := range strings.Split(w.types, ",") {
		t := placement.ActorType(strings.TrimSpace(s))
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("--worker-types: %v", err)
		}
		out = append(out, t)
	}
	return out, nil
}

// registerAll registers the worker types on h.
func (w *workerFlags) registerAll(h *host.Host) error {
	types, err := w.list()
	if err != nil {
		return err
	}
	for _, t := range types {
		if err := h.RegisterWorker(t, host.WorkerTimeout(w.timeout)); err != nil {
			return err
		}
	}
	return nil
}
