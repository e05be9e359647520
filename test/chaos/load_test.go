package chaos

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/router"
)

// load calls add 1 on random counters from several workers and counts, per
// counter, what was acknowledged and what failed. Half the calls go to the
// first -chaos.hot counters, so that those see concurrent calls: their turns
// run in groups that one save covers (host/group.go).
type load struct {
	typ  placement.ActorType
	quit chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	acked    []int64
	failed   []int64
	codes    map[string]int
	calls    int
	late     []time.Duration // how far past its deadline each late call ended
	maxOver  time.Duration   // the latest any call ended past its deadline
	outages  []outage        // per counter, each run of failures between two successes
	lastOK   []time.Time
	failedAt []time.Time // first failure since the last success; zero if none
}

func (h *harness) startLoad(workers, actors int, timeout time.Duration) *load {
	l := &load{
		typ:      h.typ,
		quit:     make(chan struct{}),
		acked:    make([]int64, actors),
		failed:   make([]int64, actors),
		codes:    make(map[string]int),
		lastOK:   make([]time.Time, actors),
		failedAt: make([]time.Time, actors),
	}
	var seq atomic.Uint64
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), seq.Add(1)))
			for {
				select {
				case <-l.quit:
					return
				default:
				}
				i := rng.IntN(actors)
				if rng.IntN(2) == 0 {
					i = rng.IntN(min(*flagHot, actors))
				}
				l.call(h.router, i, timeout)
			}
		}()
	}
	return l
}

func (l *load) call(r *router.Router, i int, timeout time.Duration) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	_, err := r.Call(ctx, l.typ, actorID(i), "add", []byte("1"))
	cancel()
	end := time.Now()
	over := end.Sub(start) - timeout

	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	l.maxOver = max(l.maxOver, over)
	if over > deadlineMargin {
		l.late = append(l.late, over)
	}
	if err == nil {
		l.acked[i]++
		if !l.failedAt[i].IsZero() && !l.lastOK[i].IsZero() {
			l.outages = append(l.outages, outage{actor: i, from: l.lastOK[i], to: end})
		}
		l.lastOK[i], l.failedAt[i] = end, time.Time{}
		return
	}
	l.failed[i]++
	l.codes[codeOf(err)]++
	if l.failedAt[i].IsZero() {
		l.failedAt[i] = end
	}
}

// outage is a run of failed calls to one counter, from the last success
// before it to the first success after it.
type outage struct {
	actor    int
	from, to time.Time
}

func (o outage) length() time.Duration { return o.to.Sub(o.from) }

func codeOf(err error) string {
	var e *router.Error
	if errors.As(err, &e) {
		return e.Code.String()
	}
	return "untyped: " + err.Error()
}

func (l *load) stop() {
	close(l.quit)
	l.wg.Wait()
}
