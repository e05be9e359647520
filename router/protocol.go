package router

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// Headers of a call request sent to a host's subject. The request body is the
// payload; the reply body is the actor's reply.
const (
	HeaderType       = "Troupe-Type"       // actor type
	HeaderID         = "Troupe-Id"         // actor id, encoded with EncodeID
	HeaderMethod     = "Troupe-Method"     // method name
	HeaderGeneration = "Troupe-Generation" // caller's table generation, decimal; optional
	HeaderTimeout    = "Troupe-Timeout"    // milliseconds left until the caller's deadline, decimal; optional
)

// Headers of an error reply. A reply is an error exactly when it carries
// HeaderErrorCode; its body is the full message.
const (
	HeaderErrorCode = "Nats-Service-Error-Code" // decimal Code
	HeaderError     = "Nats-Service-Error"      // the message on one line
	HeaderAppCode   = "Troupe-App-Code"         // the actor's own code, for CodeApplication
	// HeaderGeneration also rides on CodeMoved replies: the host's generation.
)

// EncodeID makes an actor id safe for a header value and a subject token:
// bytes in [A-Za-z0-9_~:@=+,-] stay as they are and every other byte becomes
// %XX (upper-case hex). The encoding is canonical: each id has exactly one.
func EncodeID(id string) string {
	n := 0
	for i := 0; i < len(id); i++ {
		if !plainIDByte(id[i]) {
			n++
		}
	}
	if n == 0 {
		return id
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(id)+2*n)
	for i := 0; i < len(id); i++ {
		c := id[i]
		if plainIDByte(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&15])
	}
	return string(b)
}

// DecodeID reverses EncodeID. It accepts only the canonical form, so no two
// header values name the same actor.
func DecodeID(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		for i := 0; i < len(s); i++ {
			if !plainIDByte(s[i]) {
				return "", fmt.Errorf("byte %q at %d must be %%-encoded", s[i], i)
			}
		}
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case plainIDByte(c):
			b = append(b, c)
		case c == '%' && i+2 < len(s) && upperHex(s[i+1]) && upperHex(s[i+2]):
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if plainIDByte(byte(v)) {
				return "", fmt.Errorf("%q at %d must not be %%-encoded", byte(v), i)
			}
			b = append(b, byte(v))
			i += 2
		default:
			return "", fmt.Errorf("bad escape or byte %q at %d", c, i)
		}
	}
	return string(b), nil
}

func plainIDByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("_~:@=+,-", c) >= 0
}

func upperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

// EncodeError sets the headers and body of an error reply.
func EncodeError(e *Error) (nats.Header, []byte) {
	h := nats.Header{}
	h.Set(HeaderErrorCode, strconv.Itoa(int(e.Code)))
	h.Set(HeaderError, oneLine(e.Code.String()+": "+e.Message))
	if e.AppCode != "" {
		h.Set(HeaderAppCode, oneLine(e.AppCode))
	}
	if e.Generation != 0 {
		h.Set(HeaderGeneration, strconv.FormatUint(e.Generation, 10))
	}
	return h, []byte(e.Message)
}

// DecodeError returns the error an error reply carries, or nil when the reply
// is a success.
func DecodeError(h nats.Header, body []byte) *Error {
	codeText := h.Get(HeaderErrorCode)
	if codeText == "" {
		return nil
	}
	code, err := strconv.Atoi(codeText)
	if err != nil {
		return &Error{Code: CodeInternal, Message: fmt.Sprintf("reply with malformed %s %q: %s", HeaderErrorCode, codeText, h.Get(HeaderError))}
	}
	e := &Error{Code: Code(code), AppCode: h.Get(HeaderAppCode), Message: string(body)}
	if e.Message == "" {
		e.Message = h.Get(HeaderError)
	}
	e.Generation, _ = strconv.ParseUint(h.Get(HeaderGeneration), 10, 64)
	return e
}

// oneLine keeps a header value on one line and bounded in size.
func oneLine(s string) string {
	const limit = 512
	if len(s) > limit {
		s = s[:limit]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
