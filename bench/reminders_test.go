package bench

// Reminder benchmarks (see docs/performance.md, "Reminders"):
//
//	go test -run '^$' -bench 'Reminder' -benchtime=2000x ./bench/
//	go test -run '^$' -bench ReminderFire -benchtime=1x ./bench/ [-reminders=20000] [-fireprofile=cpu.out]
//
// BenchmarkReminderRegister stores b.N reminders for distinct actors, one
// registration at a time (seq) and from 64 goroutines (par64), and reports
// the latency of one registration (p50-µs, p99-µs) and the rate (calls/s are
// registrations per second). It also reports the heap the whole process (the
// embedded NATS server and the host) holds per registered reminder: the
// server's cost, since a host holds none (cmd/troupe's
// TestTenThousandRemindersLeaveAHostFlat measures the host alone).
//
// BenchmarkReminderFire registers -reminders one-shot reminders, on as many
// actors, all due at the same instant, and reports how fast they are
// delivered once due: fires/s from the due time to the last completed turn,
// and the delay of the median and the 99th-percentile firing after the due
// time, and the CPU time the process spent in that window per firing
// (cpu-µs/fire: the embedded server's and the hosts' work together, which
// other load on the machine changes less than the rates). -fireprofile
// writes a CPU profile of that window alone, without the registration and
// the call baseline around it.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/router"
)

var (
	remindersFlag   = flag.Int("reminders", 10_000, "reminders BenchmarkReminderFire registers and fires per iteration")
	fireProfileFlag = flag.String("fireprofile", "", "write a CPU profile of BenchmarkReminderFire's firing window (from the due time to the last firing) to this file; not with -test.cpuprofile")
)

func BenchmarkReminderRegister(b *testing.B) {
	f := newFixture(b, host.Config{})
	far := router.At(time.Now().Add(24 * time.Hour))
	ctx := context.Background()
	set := func(prefix string, i int) error {
		return f.router.SetReminder(ctx, actorType, actorID(prefix, i), router.Reminder{Name: "r", Schedule: far, Method: method})
	}
	if err := set("warm", 0); err != nil {
		b.Fatal(err)
	}
	var round atomic.Int64
	b.Run("seq", func(b *testing.B) {
		prefix := fmt.Sprint("seq", round.Add(1), "-")
		before := heapAfterGC()
		runSeq(b, func(i int) error { return set(prefix, i) })
		b.ReportMetric((float64(heapAfterGC())-float64(before))/float64(b.N), "process-B/reminder")
	})
	b.Run("par64", func(b *testing.B) {
		prefix := fmt.Sprint("par", round.Add(1), "-")
		var next atomic.Int64
		runPar(b, func(int) error { return set(prefix, int(next.Add(1))) })
	})
}

func BenchmarkReminderFire(b *testing.B) {
	n := *remindersFlag
	var (
		fired atomic.Int64
		mu    sync.Mutex
		at    []time.Time
		done  = make(chan struct{})
	)
	f := newFixture(b, host.Config{}) // its host delivers firings too
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		fired.Store(0)
		at = at[:0]
		done = make(chan struct{})
		recorder := func(_ context.Context, c host.Call) ([]byte, error) {
			if _, ok := host.ReminderName(c); ok {
				mu.Lock()
				at = append(at, time.Now())
				mu.Unlock()
				if fired.Add(1) == int64(n) {
					close(done)
				}
			}
			return nil, nil
		}
		// Each round a new host with a type of its own, whose turns record
		// when they ran.
		typ := placement.ActorType(fmt.Sprint("fire", time.Now().UnixNano()%1e9))
		h := startHost(b, natstest.Connect(b, f.srv), host.Config{Logger: discardLogger}, func(h *host.Host) error {
			return h.Register(typ, host.Func(recorder), host.NoState())
		})
		due := registerDue(b, h.Router(), typ, n)
		b.StartTimer()
		stopWindow := watchFrom(b, due)
		select {
		case <-done:
		case <-time.After(time.Until(due) + 2*time.Minute):
			b.Fatalf("%d of %d reminders fired", fired.Load(), n)
		}
		cpu := stopWindow()
		b.StopTimer()
		mu.Lock()
		slices.SortFunc(at, func(x, y time.Time) int { return x.Compare(y) })
		last := at[len(at)-1]
		b.ReportMetric(float64(n)/last.Sub(due).Seconds(), "fires/s")
		b.ReportMetric(float64(at[0].Sub(due))/float64(time.Millisecond), "first-delay-ms")
		b.ReportMetric(float64(at[len(at)/2].Sub(due))/float64(time.Millisecond), "p50-delay-ms")
		b.ReportMetric(float64(at[len(at)*99/100].Sub(due))/float64(time.Millisecond), "p99-delay-ms")
		if cpu > 0 {
			b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(n), "cpu-µs/fire")
		}
		fireRate := float64(n) / last.Sub(due).Seconds()
		mu.Unlock()
		// The same number of plain calls to new actors of the type, from 64
		// callers, in this run: the machine's speed cancels in the ratio.
		callRate := callBaseline(b, h.Router(), typ, n)
		b.ReportMetric(callRate, "calls/s")
		b.ReportMetric(fireRate/callRate, "fires/calls")
		h.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n), "reminders")
}

// watchFrom starts watching the firing window at t: the CPU time the
// process spends in it (the embedded server's included), and, with
// -fireprofile, a CPU profile of it. The function it returns ends the
// window and returns that CPU time.
func watchFrom(b *testing.B, t time.Time) (stop func() time.Duration) {
	b.Helper()
	var f *os.File
	if *fireProfileFlag != "" {
		var err error
		if f, err = os.Create(*fireProfileFlag); err != nil {
			b.Fatal(err)
		}
	}
	timer := time.NewTimer(time.Until(t))
	started := make(chan time.Duration, 1)
	go func() {
		<-timer.C
		if f != nil {
			if err := pprof.StartCPUProfile(f); err != nil {
				b.Error(err)
			}
		}
		started <- sample().cpu
	}()
	return func() time.Duration {
		cpu := sample().cpu - <-started
		if f != nil {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				b.Error(err)
			}
		}
		return cpu
	}
}

// registerDue registers n one-shot reminders of typ on distinct actors, all
// due at one instant far enough ahead for the registration to finish first,
// and returns it.
func registerDue(b *testing.B, r *router.Router, typ placement.ActorType, n int) time.Time {
	b.Helper()
	// At least 2,000 registrations/s (BenchmarkReminderRegister measures
	// several times that), plus a margin.
	due := time.Now().Add(2*time.Second + time.Duration(n)*time.Second/2000)
	rem := router.Reminder{Name: "r", Schedule: router.At(due), Method: method}
	err := inParallel(n, func(i int) error {
		return r.SetReminder(context.Background(), typ, actorID("f", i), rem)
	})
	if err != nil {
		b.Fatal(err)
	}
	if time.Now().After(due) {
		b.Fatalf("registering %d reminders took past their due time", n)
	}
	return due
}

// callBaseline makes n calls to n new actors of typ from 64 callers and
// returns the rate.
func callBaseline(b *testing.B, r *router.Router, typ placement.ActorType, n int) float64 {
	b.Helper()
	start := time.Now()
	err := inParallel(n, func(i int) error {
		_, err := r.Call(context.Background(), typ, actorID("c", i), method, payload)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return float64(n) / time.Since(start).Seconds()
}

// inParallel runs f(0…n-1) from `callers` goroutines and returns the first
// error; a goroutine stops at its first error.
func inParallel(n int, f func(i int) error) error {
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	for range callers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := f(i); err != nil {
					errMu.Lock()
					first = cmpOr(first, err)
					errMu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}
