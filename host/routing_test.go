package host_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
)

// probe is an instrumented actor type: every turn records which host ran it
// and whether another turn of the same actor was running at the same time.
type probe struct {
	mu       sync.Mutex
	running  map[placement.ActorID]*atomic.Int32
	overlaps atomic.Int64
	turns    atomic.Int64
}

func newProbe() *probe { return &probe{running: make(map[placement.ActorID]*atomic.Int32)} }

func (p *probe) counter(id placement.ActorID) *atomic.Int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.running[id]
	if !ok {
		c = new(atomic.Int32)
		p.running[id] = c
	}
	return c
}

// register adds the probe type to h; its turns reply with h's id.
func (p *probe) register(h *host.Host) {
	_ = h.Register("probe", func(self *host.Self) host.Actor {
		return host.ActorFunc(func(ctx context.Context, c host.Call) ([]byte, error) {
			running := p.counter(self.ID())
			if running.Add(1) != 1 {
				p.overlaps.Add(1)
			}
			defer running.Add(-1)
			p.turns.Add(1)
			time.Sleep(20 * time.Microsecond) // widen the window an overlap would need
			return []byte(h.ID()), nil
		})
	}, host.NoState())
}

func TestCallsLandOnTheOwnerOneTurnAtATime(t *testing.T) {
	s := natstest.Server(t)
	p := newProbe()
	for range 3 {
		startHost(t, s, host.Config{}, p.register)
	}
	r := newRouter(t, s)
	table := waitMembers(t, r, 3)

	const actors, callers, callsPerCaller = 1000, 16, 250
	var wg sync.WaitGroup
	var wrongHost, failed atomic.Int64
	perHost := make([]atomic.Int64, 3)
	members := table.Members()
	for c := range callers {
		wg.Go(func() {
			for i := range callsPerCaller {
				// Every actor is called by several callers at once.
				id := placement.ActorID(fmt.Sprintf("p-%d", (i*callers+c*7)%actors))
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				got, err := r.Call(ctx, "probe", id, "who", nil)
				cancel()
				if err != nil {
					failed.Add(1)
					t.Errorf("call %s: %v", id, err)
					continue
				}
				owner, _ := table.Owner("probe", id)
				if string(got) != string(owner.ID) {
					wrongHost.Add(1)
				}
				for j, m := range members {
					if string(m.ID) == string(got) {
						perHost[j].Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	if n := p.turns.Load(); n != callers*callsPerCaller-failed.Load() {
		t.Errorf("%d turns ran, want %d", n, callers*callsPerCaller)
	}
	if n := wrongHost.Load(); n != 0 {
		t.Errorf("%d calls ran on a host other than the table's owner", n)
	}
	if n := p.overlaps.Load(); n != 0 {
		t.Errorf("%d turns overlapped another turn of the same actor", n)
	}
	for j := range perHost {
		if perHost[j].Load() == 0 {
			t.Errorf("host %s ran no call: the load was not spread", members[j].ID)
		}
	}
}

func TestGracefulShutdownFailsNoCall(t *testing.T) {
	s := natstest.Server(t)
	p := newProbe()
	hosts := make([]*host.Host, 3)
	for i := range hosts {
		hosts[i] = startHost(t, s, host.Config{}, p.register)
	}
	r := newRouter(t, s)
	waitMembers(t, r, 3)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	for c := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := r.Call(ctx, "probe", placement.ActorID(fmt.Sprintf("g-%d-%d", c, i%50)), "who", nil)
				cancel()
				if err != nil {
					failed.Add(1)
					t.Errorf("call failed during a graceful leave: %v", err)
					continue
				}
				ok.Add(1)
			}
		})
	}
	waitCalls(t, &ok, 500)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hosts[0].Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	waitMembers(t, r, 2)
	before := ok.Load()
	waitCalls(t, &ok, before+500)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d calls failed", failed.Load(), ok.Load()+failed.Load())
	}
	if p.overlaps.Load() != 0 {
		t.Fatalf("%d overlapping turns", p.overlaps.Load())
	}
}

// waitCalls waits until n reaches at least want.
func waitCalls(t *testing.T, n *atomic.Int64, want int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for n.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("only %d calls succeeded, want %d", n.Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
