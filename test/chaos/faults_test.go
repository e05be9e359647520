package chaos

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// The faults, each injected into one live host while the others serve.
const (
	faultKill = "sigkill+restart" // SIGKILL, then a new process under the same name
	faultTerm = "sigterm+restart" // graceful drain, then a new process
	faultJoin = "join"            // a new host joins (or, with enough extras, one leaves)
	faultStop = "sigstop"         // SIGSTOP past the lease TTL, then SIGCONT
	faultCut  = "cut"             // the host's NATS link cut past the lease TTL, then restored
	faultBlip = "blip"            // the link cut for 300 ms, well inside the lease
	// SIGKILL, then a new process whose link is cut as its join's create
	// goes out, for 500 ms: the answer is lost, the record stored.
	faultJoinCut = "sigkill+joincut"
)

var faultKinds = []string{faultKill, faultTerm, faultJoin, faultStop, faultCut, faultBlip, faultJoinCut}

// schedule starts a fault schedule over kinds from -chaos.seed, or from a
// new seed that it logs so that a failing run can be replayed. Fault i is
// of kind kindOf(i): every kind once, then one at random.
func (h *harness) schedule(kinds []string) (rng *rand.Rand, kindOf func(i int) string) {
	seed := *flagSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	h.seed = seed
	h.t.Logf("fault schedule seed %d (-chaos.seed)", seed)
	rng = rand.New(rand.NewPCG(uint64(seed), 0))
	h.faults = make(map[string]int)
	return rng, func(i int) string {
		if i < len(kinds) {
			return kinds[i]
		}
		return kinds[rng.IntN(len(kinds))]
	}
}

// injectFaults injects n faults one after another: every kind once, then at
// random.
func (h *harness) injectFaults(n int) {
	rng, kindOf := h.schedule(faultKinds)
	for i := range n {
		kind := kindOf(i)
		live := h.live()
		p := live[rng.IntN(len(live))]
		start := time.Now()
		h.inject(kind, p)
		h.faults[kind]++
		h.t.Logf("fault %2d at %s: %-16s %-4s %v", i+1, start.Format("15:04:05.000"), kind, p.name, time.Since(start).Round(time.Millisecond))
		time.Sleep(time.Duration(300+rng.IntN(500)) * time.Millisecond)
	}
}

func (h *harness) inject(kind string, p *hostProc) {
	past := *flagTTL + time.Second
	switch kind {
	case faultKill:
		p.kill()
		h.start(p.name, p.proxy)
	case faultTerm:
		p.term(h.t)
		h.start(p.name, p.proxy)
	case faultJoin:
		if len(h.live()) >= *flagHosts+2 {
			p.term(h.t)
			h.forget(p)
			return
		}
		h.nextID++
		h.start(fmt.Sprintf("h%d", h.nextID), nil)
	case faultStop:
		p.stop()
		time.Sleep(past)
		p.cont()
	case faultCut:
		p.proxy.Cut()
		time.Sleep(past)
		p.proxy.Restore()
	case faultBlip:
		p.proxy.Cut()
		time.Sleep(300 * time.Millisecond)
		p.proxy.Restore()
	case faultJoinCut:
		p.kill()
		cut := p.proxy.CutOn("PUB "+protocol.KVSubject(placement.DefaultBucket, placement.HostKey(placement.HostID(p.name)))+" ", 500*time.Millisecond)
		h.start(p.name, p.proxy)
		select {
		case <-cut:
		case <-time.After(30 * time.Second):
			h.t.Errorf("host %s never sent its join", p.name)
		}
	}
}
