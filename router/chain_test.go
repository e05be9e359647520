package router_test

import (
	"context"
	"strings"
	"testing"

	"github.com/troupe-dev/troupe/router"
)

func TestChainContext(t *testing.T) {
	if _, ok := router.ChainFrom(context.Background()); ok {
		t.Fatal("a plain context carries a chain")
	}
	id := router.NewChainID()
	if err := router.ValidateChainID(id); err != nil || len(id) != 32 || id == router.NewChainID() {
		t.Fatalf("NewChainID = %q, %v", id, err)
	}
	ctx := router.WithChain(context.Background(), router.Chain{ID: id, Path: []router.Hop{{Type: "t", ID: "i"}}})
	c, ok := router.ChainFrom(ctx)
	if !ok || c.ID != id || len(c.Path) != 1 {
		t.Fatalf("ChainFrom = %+v, %v", c, ok)
	}
	if err := router.ValidateChainID(strings.Repeat("x", 65)); err == nil {
		t.Fatal("a 65-character chain id is valid")
	}
}
