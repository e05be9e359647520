package placement

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/pb"
)

// membershipCase is one case of testdata/membership.json, which the Node.js
// client's tests run too (examples/node/test/membership.test.js).
type membershipCase struct {
	Name  string `json:"name"`
	Steps []struct {
		Key      string `json:"key"`
		Op       string `json:"op"`
		Revision uint64 `json:"revision"`
		Record   *struct {
			HostID          string   `json:"host_id"`
			Subject         string   `json:"subject"`
			ActorTypes      []string `json:"actor_types"`
			State           int32    `json:"state"`
			Incarnation     string   `json:"incarnation"`
			ChangedRevision uint64   `json:"changed_revision"`
			Protocol        uint32   `json:"protocol"`
			LivenessBucket  string   `json:"liveness_bucket"`
			LeaseTTLMs      uint64   `json:"lease_ttl_ms"`
		} `json:"record"`
		ValueHex   *string  `json:"value_hex"`
		Generation uint64   `json:"generation"`
		Members    []HostID `json:"members"`
		Draining   []HostID `json:"draining"`
	} `json:"steps"`
}

// TestMembershipConformance folds the shared cases' entries into a view, as
// the watcher does, and checks the member set and generation after each.
func TestMembershipConformance(t *testing.T) {
	data, err := os.ReadFile("testdata/membership.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []membershipCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range file.Cases {
		t.Run(c.Name, func(t *testing.T) {
			v := view{members: make(map[HostID]*member), releases: make(map[HostID]*release)}
			for i, s := range c.Steps {
				e := entry{key: s.Key, rev: s.Revision, op: jetstream.KeyValuePut}
				switch s.Op {
				case "PUT":
				case "DEL":
					e.op = jetstream.KeyValueDelete
				case "PURGE", "MARKER":
					e.op = jetstream.KeyValuePurge
				default:
					t.Fatalf("step %d: unknown op %q", i, s.Op)
				}
				switch {
				case s.ValueHex != nil:
					if e.val, err = hex.DecodeString(*s.ValueHex); err != nil {
						t.Fatal(err)
					}
				case s.Record != nil:
					r := s.Record
					e.val, err = proto.Marshal(&pb.HostRecord{HostId: r.HostID, Subject: r.Subject, ActorTypes: r.ActorTypes,
						State: pb.HostState(r.State), Incarnation: r.Incarnation, ChangedRevision: r.ChangedRevision, Protocol: r.Protocol,
						LivenessBucket: r.LivenessBucket, LeaseTtlMs: r.LeaseTTLMs})
					if err != nil {
						t.Fatal(err)
					}
				}
				v.apply(e)
				var ids, draining []HostID
				for id, m := range v.members {
					ids = append(ids, id)
					if m.rec.GetState() == pb.HostState_HOST_STATE_DRAINING {
						draining = append(draining, id)
					}
				}
				slices.Sort(ids)
				slices.Sort(draining)
				if v.gen != s.Generation || !slices.Equal(ids, s.Members) || !slices.Equal(draining, s.Draining) {
					t.Fatalf("step %d (%s %s at %d): generation %d, members %v, draining %v; want %d, %v, %v",
						i, s.Op, s.Key, s.Revision, v.gen, ids, draining, s.Generation, s.Members, s.Draining)
				}
			}
		})
	}
}
