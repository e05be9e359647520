// Package tcpproxy is a loopback TCP proxy whose connections a test can cut
// and restore, to put a process's network link through faults it cannot
// tell from a real outage.
package tcpproxy

import (
	"bytes"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy forwards every connection it accepts to a target address.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool // true for the client side of a connection
	wg    sync.WaitGroup
	on    *trigger // armed by CutOn; nil when none
}

// trigger is a cut armed to happen when a client sends pattern.
type trigger struct {
	pattern []byte
	hold    time.Duration
	fired   chan struct{}
}

// Start listens on a free loopback port and forwards to target.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: make(map[net.Conn]bool)}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every open connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// CutOn arms a one-shot cut: the first time a client sends bytes that
// contain pattern, the proxy closes every client's side, forwards the bytes
// to the server, then closes the servers' sides and refuses new connections
// for hold, so that whatever the server answers to them is lost, as on a
// link that fails right after a request went out. The returned channel is
// closed at the cut. A pattern split across two reads of the client's
// stream is not seen; NATS clients write a protocol line and its payload in
// one flush.
func (p *Proxy) CutOn(pattern string, hold time.Duration) <-chan struct{} {
	t := &trigger{pattern: []byte(pattern), hold: hold, fired: make(chan struct{})}
	p.mu.Lock()
	p.on = t
	p.mu.Unlock()
	return t.fired
}

// match takes the armed trigger if chunk, about to be forwarded, matches
// it, and closes every client's side at once, so that no answer to chunk
// can reach a client however fast the server is; the caller forwards chunk
// and then calls fire.
func (p *Proxy) match(chunk []byte) *trigger {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.on
	if t == nil || !bytes.Contains(chunk, t.pattern) {
		return nil
	}
	p.on = nil
	p.cut = true
	for c, client := range p.conns {
		if client {
			_ = c.Close()
		}
	}
	return t
}

// fire completes the cut of trigger t, taken by match.
func (p *Proxy) fire(t *trigger) {
	p.Cut()
	close(t.fired)
	time.AfterFunc(t.hold, p.Restore)
}

// Restore accepts connections again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// Close stops the proxy and closes its connections.
func (p *Proxy) Close() {
	_ = p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

// serve pipes one client connection to the target until either side ends
// or the proxy cuts it.
func (p *Proxy) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	if !p.track(client, server) {
		_ = client.Close()
		_ = server.Close()
		return
	}
	defer p.untrack(client, server)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		_ = dst.Close()
		_ = src.Close()
		done <- struct{}{}
	}
	go func() { // client to server, watching for an armed cut
		buf := make([]byte, 32<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				t := p.match(buf[:n])
				_, werr := server.Write(buf[:n])
				if t != nil {
					p.fire(t)
				}
				if werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		_ = server.Close()
		_ = client.Close()
		done <- struct{}{}
	}()
	go pipe(client, server)
	<-done
	<-done
}

func (p *Proxy) track(client, server net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	p.conns[client] = true
	p.conns[server] = false
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}
