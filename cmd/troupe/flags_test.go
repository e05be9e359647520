package main

import (
	"bytes"
	"testing"
	"time"
)

func TestParseSync(t *testing.T) {
	for _, tc := range []struct {
		in     string
		always bool
		every  time.Duration
		err    bool
	}{
		{"", false, defaultSync, false},
		{"2m", false, 2 * time.Minute, false},
		{"always", true, 0, false},
		{"250ms", false, 250 * time.Millisecond, false},
		{"0s", false, 0, true},
		{"-1s", false, 0, true},
		{"never", false, 0, true},
	} {
		always, every, err := parseSync(tc.in)
		if always != tc.always || every != tc.every || (err != nil) != tc.err {
			t.Errorf("parseSync(%q) = %v, %v, %v", tc.in, always, every, err)
		}
	}
}

func TestDefaultStore(t *testing.T) {
	getenv := func(v string) func(string) string {
		return func(k string) string {
			if k == "XDG_DATA_HOME" {
				return v
			}
			return ""
		}
	}
	if got, _ := defaultStore(getenv("/data")); got != "/data/troupe/dev" {
		t.Errorf("with XDG_DATA_HOME=/data: %q", got)
	}
	t.Setenv("HOME", "/home/u")
	for _, xdg := range []string{"", "relative"} { // a relative XDG path is ignored
		if got, _ := defaultStore(getenv(xdg)); got != "/home/u/.local/share/troupe/dev" {
			t.Errorf("with XDG_DATA_HOME=%q: %q", xdg, got)
		}
	}
}

func TestWriteReply(t *testing.T) {
	for in, want := range map[string]string{"": "\n", "7": "7\n", "a\n": "a\n", "a\nb": "a\nb\n"} {
		var b bytes.Buffer
		if err := writeReply(&b, []byte(in)); err != nil || b.String() != want {
			t.Errorf("writeReply(%q) wrote %q, %v; want %q", in, b.String(), err, want)
		}
	}
}

func TestWorkerFlags(t *testing.T) {
	for _, tc := range []struct {
		types   string
		timeout time.Duration
		want    []string
		err     bool
	}{
		{"", 2 * time.Second, nil, false},
		{"jscounter", time.Second, []string{"jscounter"}, false},
		{"jscounter, jsproxy", time.Second, []string{"jscounter", "jsproxy"}, false},
		{"a.b", time.Second, nil, true},
		{"a,,b", time.Second, nil, true},
		{"jscounter", 0, nil, true},
		{"jscounter", -time.Second, nil, true},
	} {
		w := workerFlags{types: tc.types, timeout: tc.timeout}
		got, err := w.list()
		if (err != nil) != tc.err || len(got) != len(tc.want) {
			t.Errorf("--worker-types %q --worker-timeout %v: %v, %v", tc.types, tc.timeout, got, err)
			continue
		}
		for i := range got {
			if string(got[i]) != tc.want[i] {
				t.Errorf("--worker-types %q: %v, want %v", tc.types, got, tc.want)
			}
		}
	}
}
