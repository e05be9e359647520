package protocol

import (
	"encoding/json"
	"testing"
)

// TestJSON pins the JSON bodies of the protocol: admin actors requests and
// reports, and the reminder gateway's list reply.
func TestJSON(t *testing.T) {
	cases := []struct {
		v    any
		want string
	}{
		{ActorsRequest{}, `{}`},
		{ActorsRequest{IDs: 10, Type: "counter"}, `{"ids":10,"type":"counter"}`},
		{ActorsReport{Host: "h1", Version: "v1", Generation: 7, LeaseAgeMs: 100, LeaseTTLMs: 4000},
			`{"host":"h1","version":"v1","generation":7,"draining":false,"lease_age_ms":100,"lease_ttl_ms":4000,"types":null}`},
		{ActorsReport{Host: "h1", Incarnation: "i", Version: "v1", StartedUnixMs: 5, Draining: true,
			Types: []TypeReport{{Type: "counter", Active: 2, Calls: 9, Errors: 1, IDs: []string{"a%2Eb", "c"}}}},
			`{"host":"h1","incarnation":"i","version":"v1","started_unix_ms":5,"generation":0,"draining":true,"lease_age_ms":0,"lease_ttl_ms":0,` +
				`"types":[{"type":"counter","active":2,"calls":9,"errors":1,"ids":["a%2Eb","c"]}]}`},
	}
	for _, c := range cases {
		b, err := json.Marshal(c.v)
		if err != nil || string(b) != c.want {
			t.Errorf("%+v: %s, %v; want %s", c.v, b, err, c.want)
		}
	}
	b, _ := json.Marshal([]Reminder{{Name: "expiry", Schedule: "@every 1m0s", Method: "touch", Payload: []byte("x")}, {Name: "tick", Schedule: "0 * * * * *", TimeZone: "UTC"}})
	if want := `[{"name":"expiry","schedule":"@every 1m0s","method":"touch","payload":"eA=="},{"name":"tick","schedule":"0 * * * * *","time_zone":"UTC"}]`; string(b) != want {
		t.Errorf("reminder list: %s, want %s", b, want)
	}
}
