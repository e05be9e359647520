package placement

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

var updateVectors = flag.Bool("update", false, "rewrite testdata/vectors.json from vectorCases")

const vectorsFile = "testdata/vectors.json"

// vector is one golden case of testdata/vectors.json. Every member listed
// serves Type and none is draining; the order of Members is irrelevant.
type vector struct {
	HashVersion string   `json:"hash_version"`
	Type        string   `json:"type"`
	ID          *string  `json:"id,omitempty"` // the id as text; absent when it is not valid UTF-8
	IDHex       string   `json:"id_hex"`       // the id's bytes, authoritative
	KeyHash     string   `json:"key_hash"`     // decimal, as JSON numbers lose precision
	Members     []HostID `json:"members"`
	Owner       HostID   `json:"owner"`
}

// vectorCase is the input of one vector; the outputs come from the code.
type vectorCase struct {
	typ     ActorType
	id      string
	members []HostID
}

// vectorCases are the inputs of the golden file: ids with every kind of
// awkward byte, and member sets of several sizes, some listed out of order.
func vectorCases() []vectorCase {
	three := []HostID{"host-0", "host-1", "host-2"}
	ten := hostIDs(10)
	shuffled := []HostID{"node-b", "Node_A", "node-c", "z", "a-1", "0"}
	ids := []string{
		"user-42", "1", "a.b.c", "*", ">", "a.*.>", "hello world", " ",
		"tab\there", "line\nbreak", "crlf\r\n", "\x00", "a\x00b", "\x00\x00\x00",
		"héllo", "日本語", "emoji 🎭", "\u2028", "\xff", "\xc3\x28", "\xed\xa0\x80",
		"\x80abc", `"quoted"`, `back\slash`, "troupe.call.counter.1.inc",
		"<&>", strings.Repeat("x", MaxActorIDLen),
	}
	var cs []vectorCase
	for i, id := range ids {
		ms := three
		switch i % 3 {
		case 1:
			ms = ten
		case 2:
			ms = shuffled
		}
		cs = append(cs, vectorCase{"counter", id, ms})
	}
	long := ActorType(strings.Repeat("T", MaxNameLen))
	for _, c := range []vectorCase{
		{"room", "user-42", three},
		{"a", "user-42", three},
		{"Z_9-x", "user-42", ten},
		{long, "user-42", ten},
		{"counter", "solo", []HostID{"only"}},
		{"counter", "pair", []HostID{"b", "a"}},
		{"counter", "user-1", hostIDs(25)},
		{"counter", "user-2", hostIDs(25)},
		{"counter", "user-3", hostIDs(25)},
		{"counter", "user-1", hostIDs(24)},
		{"counter", "user-2", hostIDs(24)},
		{"counter", "user-3", hostIDs(24)},
	} {
		cs = append(cs, c)
	}
	return cs
}

// makeVector computes the outputs of one case with the package's code.
func makeVector(c vectorCase) vector {
	v := vector{
		HashVersion: HashVersion,
		Type:        string(c.typ),
		IDHex:       hex.EncodeToString([]byte(c.id)),
		KeyHash:     strconv.FormatUint(KeyHash(c.typ, ActorID(c.id)), 10),
		Members:     c.members,
	}
	if utf8.ValidString(c.id) {
		v.ID = &c.id
	}
	if m, ok := NewTable(1, membersOf(c.members, c.typ)).Owner(c.typ, ActorID(c.id)); ok {
		v.Owner = m.ID
	}
	return v
}

// encodeVectors writes one case per line, without HTML escaping, so that the
// file reads and diffs well.
func encodeVectors(vs []vector) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("[\n")
	for i, v := range vs {
		var line bytes.Buffer
		enc := json.NewEncoder(&line)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return nil, err
		}
		buf.Write(bytes.TrimSuffix(line.Bytes(), []byte("\n")))
		if i < len(vs)-1 {
			buf.WriteString(",")
		}
		buf.WriteString("\n")
	}
	buf.WriteString("]\n")
	return buf.Bytes(), nil
}

func TestVectors(t *testing.T) {
	if *updateVectors {
		writeVectors(t)
	}
	data, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for i, v := range vs {
		if err := checkVector(v); err != nil {
			t.Errorf("vector %d (type %q, id %s): %v", i, v.Type, v.IDHex, err)
		}
	}
}

func writeVectors(t *testing.T) {
	var vs []vector
	for _, c := range vectorCases() {
		vs = append(vs, makeVector(c))
	}
	data, err := encodeVectors(vs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vectorsFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkVector recomputes a vector from its inputs with the package's code.
func checkVector(v vector) error {
	if v.HashVersion != HashVersion {
		return fmt.Errorf("hash_version %q, code implements %q", v.HashVersion, HashVersion)
	}
	id, err := hex.DecodeString(v.IDHex)
	if err != nil {
		return err
	}
	if v.ID != nil && *v.ID != string(id) {
		return fmt.Errorf("id %q does not match id_hex", *v.ID)
	}
	if v.ID == nil && utf8.Valid(id) {
		return fmt.Errorf("id missing though id_hex is valid UTF-8")
	}
	got := makeVector(vectorCase{ActorType(v.Type), string(id), v.Members})
	if got.KeyHash != v.KeyHash {
		return fmt.Errorf("key_hash %s, code computes %s", v.KeyHash, got.KeyHash)
	}
	if got.Owner != v.Owner {
		return fmt.Errorf("owner %q, code computes %q", v.Owner, got.Owner)
	}
	return nil
}

// TestVectorsMatchCases checks that the file holds exactly vectorCases, so
// that a case added to the code cannot be forgotten in the file.
func TestVectorsMatchCases(t *testing.T) {
	data, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	for _, c := range vectorCases() {
		vs = append(vs, makeVector(c))
	}
	want, err := encodeVectors(vs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, want) {
		t.Errorf("%s is stale: run go test ./placement -run TestVectors -update", vectorsFile)
	}
}
