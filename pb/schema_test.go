package pb_test

import (
	"os"
	"strings"
	"testing"
)

// TestProtocolPageHasTheSchemas: PROTOCOL.md carries the schemas inline, so
// that a client can be written from the page alone; they must be the file's.
func TestProtocolPageHasTheSchemas(t *testing.T) {
	page, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	proto, err := os.ReadFile("troupe.proto")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(page), "\n```proto\n")
	if !ok {
		t.Fatal("PROTOCOL.md has no ```proto block")
	}
	block, _, ok = strings.Cut(block, "\n```")
	if !ok {
		t.Fatal("PROTOCOL.md's ```proto block does not end")
	}
	if strings.TrimSpace(block) != strings.TrimSpace(string(proto)) {
		t.Fatal("the schemas in PROTOCOL.md differ from pb/troupe.proto: copy the file into the page's ```proto block")
	}
}
