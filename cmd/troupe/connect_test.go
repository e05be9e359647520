package main

import (
	"sync/atomic"

	"github.com/troupe-dev/troupe/internal/natstest"

	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/troupe-dev/troupe/internal/natscli"
)

// TestConnSettings checks how flags, $NATS_URL and a context combine.
func TestConnSettings(t *testing.T) {
	xdg := t.TempDir()
	writeContext(t, xdg, "ctx", map[string]any{
		"url": "nats://ctx:4222", "user": "cu", "password": "cp",
		"cert": "~/c.pem", "key": "$KEYDIR/k.pem", "ca": "file:///ca.pem",
	})
	writeContext(t, xdg, "other", map[string]any{"url": "nats://other:4222"})
	writeContext(t, xdg, "nsc", map[string]any{"nsc": "nsc://op/acct/user"})
	writeContext(t, xdg, "op", map[string]any{"creds": "op://vault/creds"})
	base := map[string]string{"XDG_CONFIG_HOME": xdg, "HOME": "/home/u", "KEYDIR": "/keys"}
	ctxAuth := natscli.Settings{User: "cu", Password: "cp", Cert: "/home/u/c.pem", Key: "/keys/k.pem", CA: "/ca.pem"}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want natscli.Settings // URL "" means the error err
		err  string
	}{
		{"default", nil, nil, natscli.Settings{URL: nats.DefaultURL}, ""},
		{"NATS_URL", map[string]string{"NATS_URL": "nats://env:1"}, nil, natscli.Settings{URL: "nats://env:1"}, ""},
		{"flag over NATS_URL", map[string]string{"NATS_URL": "nats://env:1"}, []string{"-s", "nats://a:1,nats://b:2"},
			natscli.Settings{URL: "nats://a:1,nats://b:2"}, ""},
		{"context", nil, []string{"--context", "ctx"}, withURL(ctxAuth, "nats://ctx:4222"), ""},
		{"NATS_URL over context", map[string]string{"NATS_URL": "nats://env:1"}, []string{"--context", "ctx"},
			withURL(ctxAuth, "nats://env:1"), ""},
		{"NATS_CONTEXT", map[string]string{"NATS_CONTEXT": "ctx"}, nil, withURL(ctxAuth, "nats://ctx:4222"), ""},
		{"--context over NATS_CONTEXT", map[string]string{"NATS_CONTEXT": "ctx"}, []string{"--context", "other"},
			natscli.Settings{URL: "nats://other:4222"}, ""},
		{"credentials replace the context's", nil, []string{"--context", "ctx", "--nkey", "/seed"},
			natscli.Settings{URL: "nats://ctx:4222", NKey: "/seed", Cert: "/home/u/c.pem", Key: "/keys/k.pem", CA: "/ca.pem"}, ""},
		{"TLS flags override", nil, []string{"--context", "ctx", "--tlsca", "/ca2", "--tlscert", "/c2", "--tlskey", "/k2"},
			natscli.Settings{URL: "nats://ctx:4222", User: "cu", Password: "cp", Cert: "/c2", Key: "/k2", CA: "/ca2"}, ""},
		{"context as a file", nil, []string{"--context", filepath.Join(xdg, "nats", "context", "other.json")},
			natscli.Settings{URL: "nats://other:4222"}, ""},
		{"missing context", nil, []string{"--context", "nosuch"}, natscli.Settings{}, "nosuch.json"},
		{"bad name", nil, []string{"--context", "../ctx"}, natscli.Settings{}, "invalid name"},
		{"nsc", nil, []string{"--context", "nsc"}, natscli.Settings{}, "nsc is not supported"},
		{"op://", nil, []string{"--context", "op"}, natscli.Settings{}, "op:// references are not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tc.env {
				env[k] = v
			}
			var c connFlags
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			c.register(fs, func(k string) string { return env[k] })
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			got, err := c.settings()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("settings() = %+v, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("settings() = %+v, %v\nwant %+v", got, err, tc.want)
			}
		})
	}
}

func withURL(s natscli.Settings, url string) natscli.Settings { s.URL = url; return s }

func TestSettingsOptionsChecks(t *testing.T) {
	for _, s := range []natscli.Settings{{Password: "p"}, {Cert: "/c"}, {Key: "/k"}} {
		if _, err := s.Options(); err == nil {
			t.Errorf("%+v.Options(): no error", s)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                 "nats://127.0.0.1:4222",
		"nats://u:secret@a:1, tls://b:2":        "nats://u:xxxxx@a:1,tls://b:2",
		"tok@a:1":                               "nats://xxxxx@a:1",
		"nats://a:1,nats://u:secret@b:2,c:3":    "nats://a:1,nats://u:xxxxx@b:2,c:3",
		"nats://u:p%40ss@[::1]:4222,nats://x:1": "nats://u:xxxxx@[::1]:4222,nats://x:1",
	} {
		if got := natscli.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestConnectUserPassword runs a host, calls and hosts against a server
// that wants a user and password, through a context too.
func TestConnectUserPassword(t *testing.T) {
	t.Parallel()
	url := authServer(t, func(o *server.Options) { o.Username, o.Password = "u", "p" })
	auth := []string{"--user", "u", "--password", "p"}
	joinHost(t, url, auth...)
	// Several URLs, the first with nothing listening.
	urls := "nats://" + natstest.FreeAddr(t) + "," + url
	mustCall(t, urls, "3", append(auth, "counter", "c1", "add", "3")...)
	if r := troupe("", nil, append([]string{"hosts", "-s", url}, auth...)...); r.code != 0 || !strings.Contains(r.stdout, "h1  troupe.host.h1") {
		t.Errorf("troupe hosts: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	bad := troupe("", nil, "call", "-s", strings.Replace(url, "nats://", "nats://u:wrongpass@", 1), "counter", "c1", "get")
	if bad.code != 1 || !strings.HasPrefix(bad.stderr, "troupe: UNAVAILABLE: connect to nats://u:xxxxx@") ||
		!strings.Contains(strings.ToLower(bad.stderr), "authorization violation") || strings.Contains(bad.stderr, "wrongpass") {
		t.Errorf("wrong password in the URL: exit %d, stderr %q; want 1, a redacted URL and authorization violation", bad.code, bad.stderr)
	}
	bad = troupe("", nil, "call", "-s", url, "--user", "u", "--password", "wrong", "counter", "c1", "get")
	if bad.code != 1 || !strings.Contains(strings.ToLower(bad.stderr), "authorization violation") {
		t.Errorf("wrong --password: exit %d, stderr %q; want 1 and authorization violation", bad.code, bad.stderr)
	}
	// A context with the wrong password; the flags replace its credentials.
	xdg := t.TempDir()
	writeContext(t, xdg, "wrong", map[string]any{"url": url, "user": "u", "password": "wrong"})
	env := []string{"XDG_CONFIG_HOME=" + xdg}
	if r := troupe("", env, "call", "--context", "wrong", "counter", "c1", "get"); r.code != 1 {
		t.Errorf("context with a wrong password: exit %d, stderr %q; want 1", r.code, r.stderr)
	}
	if r := troupe("", env, append([]string{"call", "--context", "wrong"}, append(auth, "counter", "c1", "get")...)...); r.code != 0 || r.stdout != "3\n" {
		t.Errorf("context with flags over it: exit %d, stdout %q, stderr %q; want 3", r.code, r.stdout, r.stderr)
	}
}

// TestConnectTLS runs a host and calls against a server that verifies
// client certificates, with flags and with a nats CLI context.
func TestConnectTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki := newPKI(t, dir)
	url := authServer(t, func(o *server.Options) {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: pki.serverCert, KeyFile: pki.serverKey, CaFile: pki.ca, Verify: true, Timeout: 5,
		})
		if err != nil {
			t.Fatal(err)
		}
		o.TLSConfig, o.TLS, o.TLSVerify, o.TLSTimeout = tc, true, true, 5
	})
	tlsFlags := []string{"--tlsca", pki.ca, "--tlscert", pki.clientCert, "--tlskey", pki.clientKey}
	joinHost(t, url, tlsFlags...)
	mustCall(t, url, "4", append(tlsFlags, "counter", "c1", "add", "4")...)
	for name, flags := range map[string][]string{
		"no client certificate": {"--tlsca", pki.ca},
		"no CA":                 {"--tlscert", pki.clientCert, "--tlskey", pki.clientKey},
	} {
		r := troupe("", nil, append([]string{"call", "-s", url, "--timeout", "3s"}, append(flags, "counter", "c1", "get")...)...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "troupe: UNAVAILABLE: connect to "+url) {
			t.Errorf("%s: exit %d, stderr %q; want 1 and UNAVAILABLE: connect to", name, r.code, r.stderr)
		}
	}
	if r := troupe("", nil, "call", "-s", url, "--tlscert", pki.clientCert, "counter", "c1", "get"); r.code != 1 || !strings.Contains(r.stderr, "needs its key") {
		t.Errorf("--tlscert without --tlskey: exit %d, stderr %q", r.code, r.stderr)
	}
	xdg := t.TempDir()
	writeContext(t, xdg, "tls", map[string]any{
		"description": "troupe test", "url": url, "ca": pki.ca, "cert": pki.clientCert, "key": pki.clientKey,
	})
	env := []string{"XDG_CONFIG_HOME=" + xdg}
	if r := troupe("", env, "call", "--context", "tls", "counter", "c1", "get"); r.code != 0 || r.stdout != "4\n" {
		t.Errorf("--context tls: exit %d, stdout %q, stderr %q; want 4", r.code, r.stdout, r.stderr)
	}
	if r := troupe("", append(env, "NATS_CONTEXT=tls"), "hosts"); r.code != 0 || !strings.Contains(r.stdout, "h1") {
		t.Errorf("hosts with NATS_CONTEXT=tls: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// TestConnectNkey runs a host and calls with an nkey seed file.
func TestConnectNkey(t *testing.T) {
	t.Parallel()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := writeFile(t, t.TempDir(), "user.nk", seed)
	url := authServer(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })
	joinHost(t, url, "--nkey", seedFile)
	mustCall(t, url, "5", "--nkey", seedFile, "counter", "c1", "add", "5")
	if r := troupe("", nil, "call", "-s", url, "counter", "c1", "get"); r.code != 1 || !strings.Contains(strings.ToLower(r.stderr), "authorization violation") {
		t.Errorf("without --nkey: exit %d, stderr %q; want 1 and authorization violation", r.code, r.stderr)
	}
}

// TestConnectCreds runs a host and calls with a user credentials file, on
// a server in operator (JWT) mode.
func TestConnectCreds(t *testing.T) {
	t.Parallel()
	op := newOperator(t)
	creds := writeFile(t, t.TempDir(), "user.creds", op.userCreds(t))
	url := authServer(t, op.configure)
	joinHost(t, url, "--creds", creds)
	mustCall(t, url, "6", "--creds", creds, "counter", "c1", "add", "6")
	if r := troupe("", nil, "call", "-s", url, "counter", "c1", "get"); r.code != 1 || !strings.Contains(strings.ToLower(r.stderr), "authorization violation") {
		t.Errorf("without --creds: exit %d, stderr %q; want 1 and authorization violation", r.code, r.stderr)
	}
}

// authServer starts a server with JetStream, configured further by mod, and
// returns its client URL.
func authServer(t *testing.T, mod func(*server.Options)) string {
	t.Helper()
	o := &server.Options{
		ServerName: "auth", Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
	}
	mod(o)
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("server not ready within 10s")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	addr := s.Addr().(*net.TCPAddr)
	return "nats://" + addr.String()
}

// joinHost runs troupe host h1 on url with the connection flags conn, and
// waits until a call with them succeeds.
func joinHost(t *testing.T, url string, conn ...string) {
	t.Helper()
	startProc(t, append([]string{"host", "-s", url, "--name", "h1"}, conn...)...)
	waitFor(t, 30*time.Second, "the host serves calls", func() bool {
		return callReply(url, "0", append(conn, "counter", "probe", "get")...) == nil
	})
}

// writeContext writes a nats CLI context file under xdg.
func writeContext(t *testing.T, xdg, name string, fields map[string]any) {
	t.Helper()
	b, err := json.MarshalIndent(fields, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(xdg, "nats", "context")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, name+".json", b)
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// pki holds the PEM files of a test CA, a server certificate for
// 127.0.0.1 and a client certificate.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	caKey, caDER := newCert(t, nil, nil, &x509.Certificate{
		Subject: pkix.Name{CommonName: "troupe test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	})
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, srvDER := newCert(t, ca, caKey, &x509.Certificate{
		Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	cliKey, cliDER := newCert(t, ca, caKey, &x509.Certificate{
		Subject:  pkix.Name{CommonName: "troupe test client"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return pki{
		ca:         writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER),
		serverCert: writePEM(t, dir, "server.pem", "CERTIFICATE", srvDER),
		serverKey:  writeKey(t, dir, "server-key.pem", srvKey),
		clientCert: writePEM(t, dir, "client.pem", "CERTIFICATE", cliDER),
		clientKey:  writeKey(t, dir, "client-key.pem", cliKey),
	}
}

// serial numbers the test certificates; tests make them in parallel.
var serial atomic.Int64

// newCert makes a key and a certificate from tmpl, signed by parent (self-
// signed when parent is nil), valid for an hour.
func newCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, tmpl *x509.Certificate) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(serial.Add(1))
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

func writeKey(t *testing.T, dir, name string, key *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name, "EC PRIVATE KEY", der)
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	return writeFile(t, dir, name, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

// operator is a NATS operator with a system account and one account with
// JetStream, for a server in operator mode.
type operator struct {
	claims         *jwt.OperatorClaims
	sysPub, accPub string
	sysJWT, accJWT string
	accKP          nkeys.KeyPair
}

func newOperator(t *testing.T) *operator {
	t.Helper()
	okp, err := nkeys.CreateOperator()
	if err != nil {
		t.Fatal(err)
	}
	opub, _ := okp.PublicKey()
	op := &operator{claims: jwt.NewOperatorClaims(opub)}
	account := func(js bool) (nkeys.KeyPair, string, string) {
		kp, err := nkeys.CreateAccount()
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := kp.PublicKey()
		ac := jwt.NewAccountClaims(pub)
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		enc, err := ac.Encode(okp)
		if err != nil {
			t.Fatal(err)
		}
		return kp, pub, enc
	}
	_, op.sysPub, op.sysJWT = account(false)
	op.accKP, op.accPub, op.accJWT = account(true)
	op.claims.SystemAccount = op.sysPub
	if _, err := op.claims.Encode(okp); err != nil {
		t.Fatal(err)
	}
	return op
}

// configure puts the server in operator mode with a memory resolver.
func (op *operator) configure(o *server.Options) {
	r := &server.MemAccResolver{}
	_ = r.Store(op.sysPub, op.sysJWT)
	_ = r.Store(op.accPub, op.accJWT)
	o.TrustedOperators = []*jwt.OperatorClaims{op.claims}
	o.AccountResolver = r
	o.SystemAccount = op.sysPub
}

// userCreds returns a credentials file's contents for a new user of the
// JetStream account.
func (op *operator) userCreds(t *testing.T) []byte {
	t.Helper()
	ukp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	upub, _ := ukp.PublicKey()
	useed, _ := ukp.Seed()
	ujwt, err := jwt.NewUserClaims(upub).Encode(op.accKP)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(ujwt, useed)
	if err != nil {
		t.Fatal(err)
	}
	return creds
}
