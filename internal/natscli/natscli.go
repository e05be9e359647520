// Package natscli reads the connection settings of the nats CLI: its
// contexts, the JSON files `nats context save` writes to
// $XDG_CONFIG_HOME/nats/context/NAME.json (else ~/.config/nats/context), and
// turns settings into nats.go options.
//
// It is a small hand-written reader of the fields a connection needs, not
// github.com/nats-io/jsm.go/natscontext: that package is not in troupe's
// module graph, and its module brings in Prometheus, fisk and the nsc
// tooling. A field troupe cannot honour (an nsc lookup, a SOCKS proxy, a
// JetStream domain, a Windows certificate store, a credential reference
// such as op:// or env://, an inline user JWT) is an error, never silently dropped.
package natscli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
)

// Settings say how to connect, with the field names of a context file.
// Paths are of files; every string may be empty.
type Settings struct {
	URL         string `json:"url"` // one or more server URLs, comma-separated
	User        string `json:"user"`
	Password    string `json:"password"`
	Token       string `json:"token"`
	Creds       string `json:"creds"`
	NKey        string `json:"nkey"` // a file holding an nkey seed
	Cert        string `json:"cert"`
	Key         string `json:"key"`
	CA          string `json:"ca"`
	TLSFirst    bool   `json:"tls_first"`
	InboxPrefix string `json:"inbox_prefix"`

	// Fields troupe refuses rather than ignores.
	NSC         string `json:"nsc"`
	SocksProxy  string `json:"socks_proxy"`
	JSDomain    string `json:"jetstream_domain"`
	JSAPIPrefix string `json:"jetstream_api_prefix"`
	CertStore   string `json:"windows_cert_store"`
	UserJWT     string `json:"user_jwt"`
	UserSeed    string `json:"user_seed"`
}

// Path returns the file of the context name: name itself when it is an
// existing .json file (as the nats CLI allows), else NAME.json in the
// context directory.
func Path(name string, getenv func(string) string) (string, error) {
	if strings.HasSuffix(name, ".json") {
		if fi, err := os.Stat(name); err == nil && fi.Mode().IsRegular() {
			return name, nil
		}
	}
	if name == "" || strings.Contains(name, "..") || strings.ContainsAny(name, `/\`) {
		return "", fmt.Errorf("nats context %q: invalid name", name)
	}
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := getenv("HOME")
		if home == "" {
			return "", fmt.Errorf("nats context %q: neither $XDG_CONFIG_HOME nor $HOME is set", name)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "nats", "context", name+".json"), nil
}

// Load reads the context name. Like the nats CLI it expands $VAR and a
// leading ~ in the file fields.
func Load(name string, getenv func(string) string) (Settings, error) {
	var s Settings
	path, err := Path(name, getenv)
	if err != nil {
		return s, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, fmt.Errorf("nats context %q: no file %s", name, path)
	}
	if err != nil {
		return s, fmt.Errorf("nats context %q: %w", name, err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("nats context %q: %s: %w", name, path, err)
	}
	if err := s.supported(); err != nil {
		return s, fmt.Errorf("nats context %q: %w", name, err)
	}
	for _, p := range []*string{&s.Creds, &s.NKey, &s.Cert, &s.Key, &s.CA} {
		*p = expand(*p, getenv)
	}
	return s, nil
}

// supported reports the first field set that troupe does not implement.
func (s Settings) supported() error {
	for field, v := range map[string]string{
		"nsc": s.NSC, "socks_proxy": s.SocksProxy, "jetstream_domain": s.JSDomain,
		"jetstream_api_prefix": s.JSAPIPrefix, "windows_cert_store": s.CertStore,
		"user_jwt": s.UserJWT, "user_seed": s.UserSeed,
	} {
		if v != "" {
			return fmt.Errorf("%s is not supported by troupe", field)
		}
	}
	for field, v := range map[string]string{
		"creds": s.Creds, "nkey": s.NKey, "cert": s.Cert, "key": s.Key, "ca": s.CA,
		"password": s.Password, "token": s.Token,
	} {
		if scheme, _, ok := strings.Cut(v, "://"); ok && scheme != "file" && !strings.ContainsAny(scheme, `/\`) {
			return fmt.Errorf("%s: %s:// references are not supported by troupe; use a file or the value", field, scheme)
		}
	}
	return nil
}

// expand expands $VAR and a leading ~ in a path, and strips file://.
func expand(path string, getenv func(string) string) string {
	path = strings.TrimPrefix(os.Expand(path, getenv), "file://")
	if path == "~" || strings.HasPrefix(path, "~/") {
		path = getenv("HOME") + path[1:]
	}
	return path
}

// Override returns s with the values of o that are set: the URL, the
// authentication as a whole (user, password, token, creds, nkey: one
// set in o replaces all of s's, so credentials never mix), the CA, and the
// client certificate and key as a pair.
func (s Settings) Override(o Settings) Settings {
	if o.URL != "" {
		s.URL = o.URL
	}
	if o.User != "" || o.Password != "" || o.Token != "" || o.Creds != "" || o.NKey != "" {
		s.User, s.Password, s.Token, s.Creds, s.NKey = o.User, o.Password, o.Token, o.Creds, o.NKey
	}
	if o.CA != "" {
		s.CA = o.CA
	}
	if o.Cert != "" || o.Key != "" {
		s.Cert, s.Key = o.Cert, o.Key
	}
	return s
}

// Options returns the nats.go options s asks for.
func (s Settings) Options() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case s.Password != "" && s.User == "":
		return nil, errors.New("a password needs a user")
	case (s.Cert == "") != (s.Key == ""):
		return nil, errors.New("a TLS client certificate needs its key, and a key its certificate")
	}
	if s.User != "" {
		opts = append(opts, nats.UserInfo(s.User, s.Password))
	}
	if s.Token != "" {
		opts = append(opts, nats.Token(s.Token))
	}
	if s.Creds != "" {
		opts = append(opts, nats.UserCredentials(s.Creds))
	}
	if s.NKey != "" {
		o, err := nats.NkeyOptionFromSeed(s.NKey)
		if err != nil {
			return nil, fmt.Errorf("nkey %s: %w", s.NKey, err)
		}
		opts = append(opts, o)
	}
	if s.Cert != "" {
		opts = append(opts, nats.ClientCert(s.Cert, s.Key))
	}
	if s.CA != "" {
		opts = append(opts, nats.RootCAs(s.CA))
	}
	if s.TLSFirst {
		opts = append(opts, nats.TLSHandshakeFirst())
	}
	if s.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(s.InboxPrefix))
	}
	return opts, nil
}

// Redact returns urls, comma-separated, with any password replaced.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		raw := p
		if !strings.Contains(raw, "://") {
			raw = "nats://" + raw
		}
		if u, err := url.Parse(raw); err == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				p = u.Redacted()
			} else {
				u.User = url.User("xxxxx") // a lone user part may be a token
				p = u.String()
			}
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}
