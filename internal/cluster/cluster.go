// Package cluster starts a real NATS cluster for tests: embedded
// nats-servers with JetStream, joined by routes on loopback, each on its own
// random ports and temporary store. A node can be shut down and restarted on
// the same ports and store, as a crashed and restarted server would be.
package cluster

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Name is the cluster name every node uses.
const Name = "troupe"

// Account is the account the nodes' unauthenticated clients use, for the
// server's per-account JetStream queries.
const Account = server.DEFAULT_GLOBAL_ACCOUNT

// Cluster is a running NATS cluster.
type Cluster struct {
	Nodes []*Node
}

// Node is one server of a cluster. Its ports and store stay the same across
// Shutdown and Restart.
type Node struct {
	Name        string
	StoreDir    string
	ClientPort  int
	ClusterPort int
	routes      string

	mu sync.Mutex
	s  *server.Server
}

// Start starts n JetStream servers named n1..n<n>, in cluster Name, with
// routes to each other on loopback, and waits until they agree on a
// JetStream meta leader. Every node is shut down when t ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	ports := freePorts(t, 2*n)
	c := &Cluster{}
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[n+i]))
	}
	for i := range n {
		c.Nodes = append(c.Nodes, &Node{
			Name:        fmt.Sprintf("n%d", i+1),
			StoreDir:    t.TempDir(),
			ClientPort:  ports[i],
			ClusterPort: ports[n+i],
			routes:      strings.Join(routes, ","),
		})
	}
	t.Cleanup(func() {
		for _, nd := range c.Nodes {
			nd.Shutdown()
		}
	})
	// The servers start concurrently: each waits for its routes before it is
	// ready, and the meta group needs a majority to elect a leader.
	errs := make(chan error, n)
	for _, nd := range c.Nodes {
		go func() { errs <- nd.start() }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	c.WaitMetaLeader(t, 30*time.Second)
	return c
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

func (nd *Node) options() *server.Options {
	return &server.Options{
		ServerName: nd.Name,
		Host:       "127.0.0.1",
		Port:       nd.ClientPort,
		JetStream:  true,
		StoreDir:   nd.StoreDir,
		Cluster: server.ClusterOpts{
			Name: Name,
			Host: "127.0.0.1",
			Port: nd.ClusterPort,
		},
		Routes: server.RoutesFromStr(nd.routes),
		NoSigs: true,
		NoLog:  true,
	}
}

func (nd *Node) start() error {
	s, err := server.NewServer(nd.options())
	if err != nil {
		return fmt.Errorf("cluster node %s: %w", nd.Name, err)
	}
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("cluster node %s: not ready for connections within 20s", nd.Name)
	}
	nd.mu.Lock()
	nd.s = s
	nd.mu.Unlock()
	return nil
}

// Server is the node's running server, nil while it is shut down.
func (nd *Node) Server() *server.Server {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.s
}

// URL is the node's client URL; it does not change across restarts.
func (nd *Node) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", nd.ClientPort) }

// Shutdown stops the node's server and waits until it is down. It does
// nothing when the node is already down.
func (nd *Node) Shutdown() {
	nd.mu.Lock()
	s := nd.s
	nd.s = nil
	nd.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Restart starts the node again on its ports and store.
func (nd *Node) Restart(t testing.TB) {
	t.Helper()
	if nd.Server() != nil {
		t.Fatalf("cluster node %s is running", nd.Name)
	}
	if err := nd.start(); err != nil {
		t.Fatal(err)
	}
}

// URLs returns the client URLs of all nodes, starting with node i's, so a
// client connects to node i and keeps the others as reconnect fallbacks.
func (c *Cluster) URLs(i int) []string {
	urls := []string{c.Nodes[i].URL()}
	for j, nd := range c.Nodes {
		if j != i {
			urls = append(urls, nd.URL())
		}
	}
	return urls
}

// Connect connects to node i, with the other nodes as fallbacks, reconnecting
// forever every 20ms. The connection is closed when t ends.
func (c *Cluster) Connect(t testing.TB, i int, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{
		nats.DontRandomize(),
		nats.MaxReconnects(-1),
		nats.ReconnectBufSize(-1),
		nats.ReconnectWait(20 * time.Millisecond),
		nats.ReconnectJitter(10*time.Millisecond, 10*time.Millisecond),
	}, opts...)
	nc, err := nats.Connect(strings.Join(c.URLs(i), ","), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Running returns the servers that are up.
func (c *Cluster) Running() []*server.Server {
	var ss []*server.Server
	for _, nd := range c.Nodes {
		if s := nd.Server(); s != nil {
			ss = append(ss, s)
		}
	}
	return ss
}

// WaitMetaLeader waits until one running server leads the JetStream meta
// group, every running server is current with it, and the leader counts
// every running server as an online JetStream peer (only then can it place
// a stream's replicas on all of them).
func (c *Cluster) WaitMetaLeader(t testing.TB, timeout time.Duration) *server.Server {
	t.Helper()
	var leader *server.Server
	Eventually(t, timeout, "a JetStream meta leader that every running node follows", func() bool {
		leader = nil
		running := c.Running()
		for _, s := range running {
			if !s.JetStreamIsCurrent() {
				return false
			}
			if s.JetStreamIsLeader() {
				leader = s
			}
		}
		return leader != nil && len(leader.JetStreamClusterPeers()) == len(running)
	})
	return leader
}

// StreamLeader returns the node leading the stream, or nil.
func (c *Cluster) StreamLeader(stream string) *Node {
	for _, nd := range c.Nodes {
		if s := nd.Server(); s != nil && s.JetStreamIsStreamLeader(Account, stream) {
			return nd
		}
	}
	return nil
}

// WaitStreamCurrent waits until the stream has a leader and every running
// node that holds a replica of it is current.
func (c *Cluster) WaitStreamCurrent(t testing.TB, timeout time.Duration, stream string) {
	t.Helper()
	Eventually(t, timeout, "stream "+stream+" has a leader and current replicas", func() bool {
		if c.StreamLeader(stream) == nil {
			return false
		}
		for _, s := range c.Running() {
			if s.JetStreamIsStreamAssigned(Account, stream) && !s.JetStreamIsStreamCurrent(Account, stream) {
				return false
			}
		}
		return true
	})
}

// WaitNodeCurrent waits until the node runs, follows the meta leader, and
// holds a current replica of each stream: a restarted node has caught up.
func (nd *Node) WaitNodeCurrent(t testing.TB, timeout time.Duration, streams ...string) {
	t.Helper()
	Eventually(t, timeout, nd.Name+" current with the meta group and its streams", func() bool {
		s := nd.Server()
		if s == nil || !s.JetStreamIsCurrent() {
			return false
		}
		for _, stream := range streams {
			if !s.JetStreamIsStreamAssigned(Account, stream) || !s.JetStreamIsStreamCurrent(Account, stream) {
				return false
			}
		}
		return true
	})
}

// Eventually polls cond every 10ms until it holds, failing t after timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}
