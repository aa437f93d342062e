package mqtt

import (
	"reflect"
	"testing"
	"time"
)

// TestConnectionSettings checks how the shared attributes become client
// settings: broker first, then brokers; the component's client id unless
// client_id is set; every other attribute as written.
func TestConnectionSettings(t *testing.T) {
	c := Connection{Broker: "mqtt://a", Brokers: []string{"mqtt://b", "mqtt://c"}, Username: "u", Password: "p",
		CleanStart: true, SessionExpiry: time.Hour, KeepAlive: 5 * time.Second, ConnectTimeout: 2 * time.Second,
		BackoffMin: time.Millisecond, BackoffMax: time.Minute, TLS: &TLS{ServerName: "s"}}
	got := c.Settings("flowd-p-n")
	want := Settings{Brokers: []string{"mqtt://a", "mqtt://b", "mqtt://c"}, ClientID: "flowd-p-n", Username: "u", Password: "p",
		CleanStart: true, SessionExpiry: time.Hour, KeepAlive: 5 * time.Second, ConnectTimeout: 2 * time.Second,
		BackoffMin: time.Millisecond, BackoffMax: time.Minute, TLS: c.TLS}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	c.ClientID = "mine"
	if got := c.Settings("flowd-p-n"); got.ClientID != "mine" {
		t.Errorf("client_id %q, want mine", got.ClientID)
	}
	// The settings own their broker list: appending to it must not write
	// into the config's.
	c = Connection{Brokers: make([]string, 1, 4)}
	s := c.Settings("x")
	s.Brokers = append(s.Brokers, "mqtt://z")
	if c.Brokers[:2][1] != "" {
		t.Error("settings share the config's broker array")
	}
}
