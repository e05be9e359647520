package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestExampleRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"counter apples = 3 (on ", "counter plums = 3 (on ",
		"hello world, from greeter g1",
		"bad input: troupe: INVALID_ARGUMENT: add wants a decimal integer",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
