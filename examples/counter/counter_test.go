package counter_test

import (
	"context"
	"testing"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host/actortest"
)

func TestCounterSavesEveryAdd(t *testing.T) {
	kit := actortest.New(t)
	kit.Register(counter.Type, counter.New)
	ctx := context.Background()
	for _, n := range []int64{5, -2, 10} {
		if _, err := counter.Add.Call(ctx, kit.Router(), "c1", n); err != nil {
			t.Fatal(err)
		}
	}
	if got := string(kit.State(counter.Type, "c1")); got != "13" {
		t.Fatalf("saved state %q, want 13", got)
	}
	kit.Deactivate(counter.Type, "c1") // the next call activates it from the store
	if total, err := counter.Get.Call(ctx, kit.Router(), "c1", struct{}{}); err != nil || total != 13 {
		t.Fatalf("get after reactivation = %d, %v; want 13", total, err)
	}
}
