package protocol

import (
	"strings"
	"testing"
)

func TestPathRoundTrip(t *testing.T) {
	path := []Hop{{Type: "counter", ID: "a"}, {Type: "bank", ID: "b.c d"}, {Type: "counter", ID: "a"}}
	s := FormatPath(path)
	if s != "counter/a bank/b%2Ec%20d counter/a" {
		t.Fatalf("FormatPath = %q", s)
	}
	back, err := ParsePath(s)
	if err != nil || len(back) != 3 || back[1] != path[1] {
		t.Fatalf("ParsePath = %v, %v", back, err)
	}
	if p, err := ParsePath(""); err != nil || p != nil {
		t.Fatalf("empty path = %v, %v", p, err)
	}
	for _, bad := range []string{"counter", "counter/", "/a", "counter/a.b", "bad.type/a", "counter/a  bank/b", "counter/%63"} {
		if _, err := ParsePath(bad); err == nil {
			t.Errorf("ParsePath(%q) accepted", bad)
		}
	}
}

func TestFormatCycle(t *testing.T) {
	path := []Hop{{Type: "x", ID: "0"}, {Type: "counter", ID: "a"}, {Type: "bank", ID: "b"}}
	if got := FormatCycle(path, Hop{Type: "counter", ID: "a"}); got != "counter/a → bank/b → counter/a" {
		t.Fatalf("FormatCycle = %q", got)
	}
}

func TestChainID(t *testing.T) {
	id := NewChainID()
	if err := ValidateChainID(id); err != nil || len(id) != 32 || id == NewChainID() {
		t.Fatalf("NewChainID = %q, %v", id, err)
	}
	if err := ValidateChainID(strings.Repeat("x", 65)); err == nil {
		t.Fatal("a 65-character chain id is valid")
	}
	if err := ValidateChainID("a.b"); err == nil {
		t.Fatal("a chain id with a dot is valid")
	}
}
