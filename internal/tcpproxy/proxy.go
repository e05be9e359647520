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
	conns map[net.Conn]struct{}
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
	p := &Proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
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
// contain pattern, the proxy forwards them, then cuts every connection at
// once and refuses new ones for hold, so that whatever the server answers to
// them is lost, as on a link that fails right after a request went out. The
// returned channel is closed at the cut. A pattern split across two reads
// of the client's stream is not seen; NATS clients write a protocol line
// and its payload in one flush.
func (p *Proxy) CutOn(pattern string, hold time.Duration) <-chan struct{} {
	t := &trigger{pattern: []byte(pattern), hold: hold, fired: make(chan struct{})}
	p.mu.Lock()
	p.on = t
	p.mu.Unlock()
	return t.fired
}

// sent fires the armed trigger if chunk, just forwarded, matches it.
func (p *Proxy) sent(chunk []byte) {
	p.mu.Lock()
	t := p.on
	if t == nil || !bytes.Contains(chunk, t.pattern) {
		p.mu.Unlock()
		return
	}
	p.on = nil
	p.mu.Unlock()
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
				if _, werr := server.Write(buf[:n]); werr != nil {
					break
				}
				p.sent(buf[:n])
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

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}
