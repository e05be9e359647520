package tcpproxy

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// server listens on a free port and serves each connection with serve, on
// its own goroutine; it stops listening when the test ends.
func server(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); serve(c) }()
		}
	}()
	return ln.Addr().String()
}

func echoServer(t *testing.T) string {
	return server(t, func(c net.Conn) { _, _ = io.Copy(c, c) })
}

// roundTrip sends a line through addr and reports whether it came back.
func roundTrip(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "ping\n"
}

func TestCutClosesConnectionsAndRestoreReopens(t *testing.T) {
	p, err := Start(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !roundTrip(p.Addr()) {
		t.Fatal("no round trip through the proxy")
	}

	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := r.ReadString('\n'); err != io.EOF {
		t.Fatalf("read on a cut connection: %v, want EOF", err)
	}
	if roundTrip(p.Addr()) {
		t.Fatal("a new connection got through while cut")
	}
	p.Restore()
	if !roundTrip(p.Addr()) {
		t.Fatal("no round trip after restore")
	}
}

func TestCutOnForwardsTheMatchThenCuts(t *testing.T) {
	got := make(chan string, 8)
	addr := server(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			got <- line
		}
	})
	p, err := Start(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	fired := p.CutOn("PUB join", 200*time.Millisecond)

	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, line := range []string{"PUB other\n", "PUB join\n"} {
		if _, err := c.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		if g := <-got; g != line {
			t.Fatalf("the server got %q, want %q", g, line)
		}
	}
	select {
	case <-fired:
	case <-time.After(2 * time.Second):
		t.Fatal("the cut did not fire on the matching line")
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := bufio.NewReader(c).ReadString('\n'); err != io.EOF {
		t.Fatalf("read after the cut: %v, want EOF", err)
	}
	if roundTripTo(p.Addr(), got) {
		t.Fatal("a new connection got through during the hold")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !roundTripTo(p.Addr(), got) {
		if time.Now().After(deadline) {
			t.Fatal("the proxy did not accept connections again after the hold")
		}
	}
}

// roundTripTo sends a line through addr and reports whether the recording
// server behind it got it.
func roundTripTo(addr string, got <-chan string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	if _, err := c.Write([]byte("probe\n")); err != nil {
		return false
	}
	select {
	case line := <-got:
		return line == "probe\n"
	case <-time.After(100 * time.Millisecond):
		return false
	}
}

// TestCutOnLosesTheAnswer: the server's answer to the matching bytes never
// reaches the client, however fast the server answers, so a test that arms
// a cut on a request can count on its answer being lost.
func TestCutOnLosesTheAnswer(t *testing.T) {
	addr := server(t, func(c net.Conn) { _, _ = io.Copy(c, c) }) // echoes at once
	for i := range 50 {
		p, err := Start(addr)
		if err != nil {
			t.Fatal(err)
		}
		fired := p.CutOn("PUB join", time.Millisecond)
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("PUB join\n")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != io.EOF {
			t.Fatalf("try %d: read after the matching line: %q, %v; want EOF", i, line, err)
		}
		select {
		case <-fired:
		case <-time.After(2 * time.Second):
			t.Fatalf("try %d: the cut did not fire", i)
		}
		c.Close()
		p.Close()
	}
}
