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

func TestParseConcat(t *testing.T) {
	terms, err := ParseConcat(`'plant/' + asset + "/" + topic[2] + attrs.line`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range terms {
		switch {
		case x.IsLit:
			got = append(got, "lit:"+x.Lit)
		case x.Index >= 0:
			got = append(got, fmt.Sprintf("%s[%d]", x.Name, x.Index))
		default:
			got = append(got, x.Name+strings.Join(append([]string{""}, x.Path...), "."))
		}
	}
	if want := "lit:plant/,asset,lit:/,topic[2],attrs.line"; strings.Join(got, ",") != want {
		t.Errorf("got %s, want %s", strings.Join(got, ","), want)
	}
	for src, off := range map[string]int{"": 0, "'open": 0, "asset +": 7, "asset tag": 6, "topic[x]": 6, "a..b": 0, "1abc": 0, "topic[1": 5} {
		_, err := ParseConcat(src)
		var pe *PosError
		if !errors.As(err, &pe) {
			t.Errorf("%q: want a PosError, got %v", src, err)
			continue
		}
		if pe.Offset != off {
			t.Errorf("%q: offset %d, want %d (%v)", src, pe.Offset, off, err)
		}
	}
}

func TestTopicLevel(t *testing.T) {
	for _, c := range []struct {
		topic string
		i     int
		want  string
	}{{"a/b/c", 0, "a"}, {"a/b/c", 1, "b"}, {"a/b/c", 2, "c"}, {"a/b/c", 3, ""}, {"/x", 0, ""}, {"/x", 1, "x"}, {"", 0, ""}} {
		if got := TopicLevel(c.topic, c.i); got != c.want {
			t.Errorf("TopicLevel(%q, %d) = %q, want %q", c.topic, c.i, got, c.want)
		}
	}
}

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

func TestBackoff(t *testing.T) {
	b := Backoff(100*time.Millisecond, time.Second)
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
