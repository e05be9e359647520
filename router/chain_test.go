package router_test

import (
	"context"
	"strings"
	"testing"

	"github.com/troupe-dev/troupe/router"
)

func TestPathRoundTrip(t *testing.T) {
	path := []router.Hop{{Type: "counter", ID: "a"}, {Type: "bank", ID: "b.c d"}, {Type: "counter", ID: "a"}}
	s := router.FormatPath(path)
	if s != "counter/a bank/b%2Ec%20d counter/a" {
		t.Fatalf("FormatPath = %q", s)
	}
	back, err := router.ParsePath(s)
	if err != nil || len(back) != 3 || back[1] != path[1] {
		t.Fatalf("ParsePath = %v, %v", back, err)
	}
	if p, err := router.ParsePath(""); err != nil || p != nil {
		t.Fatalf("empty path = %v, %v", p, err)
	}
	for _, bad := range []string{"counter", "counter/", "/a", "counter/a.b", "bad.type/a", "counter/a  bank/b", "counter/%63"} {
		if _, err := router.ParsePath(bad); err == nil {
			t.Errorf("ParsePath(%q) accepted", bad)
		}
	}
}

func TestFormatCycle(t *testing.T) {
	path := []router.Hop{{Type: "x", ID: "0"}, {Type: "counter", ID: "a"}, {Type: "bank", ID: "b"}}
	if got := router.FormatCycle(path, router.Hop{Type: "counter", ID: "a"}); got != "counter/a → bank/b → counter/a" {
		t.Fatalf("FormatCycle = %q", got)
	}
}

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
