package main

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/examples/session"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/hosttest"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/router"
)

// TestTenThousandRemindersLeaveAHostFlat registers 10,000 reminders
// through a host in this process whose NATS server is another process
// (troupe dev), and measures the host's heap around it, after GC: the
// reminders live in the server, so a host holds nothing per reminder. Not
// parallel, so that no other test allocates in this process meanwhile.
func TestTenThousandRemindersLeaveAHostFlat(t *testing.T) {
	_, url := startDev(t, natstest.FreeAddr(t), t.TempDir())
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	h := hosttest.Start(t, nc, host.Config{Logger: slog.New(slog.DiscardHandler)}, session.Register)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := h.Router()
	at := router.At(time.Now().Add(24 * time.Hour))
	// A fixed set of workers: every goroutine ever started stays in the
	// runtime's list (about 400 B each), so one per reminder would be
	// counted against the host.
	register := func(from, to int) {
		next := make(chan int)
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for i := range next {
					if err := r.SetReminder(ctx, session.Type, sessionID(i), router.Reminder{Name: "expiry", Schedule: at, Method: "expire"}); err != nil {
						t.Error(err)
					}
				}
			})
		}
		for i := from; i < to; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	register(0, 200) // warm up connections, pools and caches

	const n = 10_000
	before := heapAfterGC()
	register(200, 200+n)
	after := heapAfterGC()
	perReminder := (float64(after) - float64(before)) / n
	t.Logf("host heap %d B before, %d B after %d reminders: %.1f B per reminder", before, after, n, perReminder)

	js, _ := jetstream.New(nc)
	stream, err := js.Stream(ctx, router.DefaultReminderStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter("troupe.rmd.sched.session.>"))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(info.State.Subjects); got != 200+n {
		t.Fatalf("the server holds %d reminders, want %d", got, 200+n)
	}
	// Anything kept per reminder (a map entry, a timer, a subject string)
	// costs 100 B or more.
	if perReminder > 32 {
		t.Fatalf("the host's heap grew by %.1f B per registered reminder, want no per-reminder cost (≤ 32 B of noise)", perReminder)
	}
}

func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
