package embedded

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// TestMonitor checks that Config.Monitor serves /varz on the address the
// server reports, and that monitoring stays off without it.
func TestMonitor(t *testing.T) {
	s, err := Start(Config{StoreDir: t.TempDir(), Monitor: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	addr := s.MonitorAddr()
	if addr == nil {
		t.Fatal("no monitor address")
	}
	resp, err := http.Get("http://" + addr.String() + "/varz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v server.Varz
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	if v.JetStream.Config == nil || v.JetStream.Config.StoreDir == "" {
		t.Fatalf("/varz shows no JetStream: %+v", v.JetStream)
	}

	off, err := Start(Config{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { off.Shutdown(); off.WaitForShutdown() }()
	if a := off.MonitorAddr(); a != nil {
		t.Fatalf("monitoring on at %v without Config.Monitor", a)
	}
}

func TestMonitorBadAddress(t *testing.T) {
	if _, err := Start(Config{StoreDir: t.TempDir(), Monitor: "127.0.0.1:http"}); err == nil {
		t.Fatal("started with a bad monitor address")
	}
}
