package mqtt

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
)

func TestParseBrokers(t *testing.T) {
	urls, err := ParseBrokers([]string{"mqtt://h", "tcp://h:1", "mqtts://h", "ssl://h:9", "ws://h:80/mqtt", "wss://h/mqtt"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range urls {
		got = append(got, u.String())
	}
	want := "mqtt://h:1883 mqtt://h:1 mqtts://h:8883 mqtts://h:9 ws://h:80/mqtt wss://h/mqtt"
	if strings.Join(got, " ") != want {
		t.Errorf("got %s", strings.Join(got, " "))
	}
	for _, bad := range [][]string{nil, {"http://h"}, {"mqtt://"}, {"::"}} {
		if _, err := ParseBrokers(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestReconnectDelay(t *testing.T) {
	b := func(attempt int) time.Duration { return reconnectDelay(100*time.Millisecond, time.Second, attempt) }
	if b(0) != 0 {
		t.Error("no delay before the first attempt")
	}
	for attempt, base := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 10: time.Second} {
		d := b(attempt)
		if d < base*8/10 || d > base*12/10 {
			t.Errorf("attempt %d: %s not within 20%% of %s", attempt, d, base)
		}
	}
}

func TestExplain(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&autopaho.ConnackError{ReasonCode: 0x86}, "bad user name or password"},
		{&autopaho.ConnackError{ReasonCode: 0x87}, "check user name and password"},
		{&autopaho.ConnackError{ReasonCode: 0x9f, Reason: "slow down"}, "0x9f): slow down"},
		{fmt.Errorf("dial: %w", x509.UnknownAuthorityError{}), "not trusted"},
		{fmt.Errorf("dial: %w", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "h"}), "tls.server_name"},
	} {
		if got := Explain(c.err).Error(); !strings.Contains(got, c.want) {
			t.Errorf("Explain(%v) = %q, want it to contain %q", c.err, got, c.want)
		}
	}
	if Explain(nil) != nil {
		t.Error("Explain(nil) != nil")
	}
}

func TestSettingsValidate(t *testing.T) {
	ok := Settings{Brokers: []string{"mqtt://h"}, ClientID: "c", KeepAlive: time.Second}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for field, s := range map[string]Settings{
		"broker":        {ClientID: "c"},
		"client_id":     {Brokers: []string{"mqtt://h"}},
		"keepalive":     {Brokers: []string{"mqtt://h"}, ClientID: "c", KeepAlive: 24 * time.Hour},
		"tls.cert_file": {Brokers: []string{"mqtts://h"}, ClientID: "c", TLS: &TLS{CertFile: "x"}},
		"tls.ca_file":   {Brokers: []string{"mqtts://h"}, ClientID: "c", TLS: &TLS{CAFile: "/nonexistent"}},
	} {
		var fe *FieldError
		if err := s.Validate(); !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: got %v", field, err)
		}
	}
}
