package host

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/troupe-dev/troupe/placement"
)

func TestDirectoryHoldsOneActivationPerID(t *testing.T) {
	s := newTestSandbox(t, Config{})
	noop := Func(func(context.Context, Call) ([]byte, error) { return nil, nil })
	typ, err := newActorType(s.cfg, s.types, "d", noop, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &typ.dir
	// Many goroutines asking for the same ids get the same activations.
	got := make([][]*activation, 8)
	var wg sync.WaitGroup
	for g := range got {
		wg.Go(func() {
			for i := range 100 {
				got[g] = append(got[g], d.getOrCreate(s.eng, typ, placement.ActorID(fmt.Sprint("a", i))))
			}
		})
	}
	wg.Wait()
	for g := range got {
		for i := range got[g] {
			if got[g][i] != got[0][i] {
				t.Fatalf("two activations of a%d", i)
			}
		}
	}
	if n := d.len(); n != 100 {
		t.Fatalf("len %d, want 100", n)
	}
	// remove takes out only the activation it is given.
	stale := newActivation(s.eng, typ, "a7")
	d.remove("a7", stale)
	if n := d.len(); n != 100 {
		t.Fatalf("removing a stale activation changed len to %d", n)
	}
	d.remove("a7", got[0][7])
	seen := map[placement.ActorID]bool{}
	d.each(func(a *activation) {
		seen[a.id] = true
		d.getOrCreate(s.eng, typ, a.id) // each may call back into the directory
	})
	if len(seen) != 99 || seen["a7"] || d.len() != 99 {
		t.Fatalf("each saw %d ids (a7: %v), len %d; want 99 without a7", len(seen), seen["a7"], d.len())
	}
	if a := d.getOrCreate(s.eng, typ, "a7"); a == got[0][7] {
		t.Fatal("a removed activation came back")
	}
}
