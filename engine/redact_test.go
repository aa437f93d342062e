package engine

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestRedactHidesURLPasswordsLikeNetURL(t *testing.T) {
	for _, raw := range []string{
		"mqtt://user:secret@127.0.0.1:1",
		"mqtts://user:p%40ss@host:8883/x?y=1",
		"wss://u:secret@host/mqtt",
		"amqps://user:secret@ns.servicebus.windows.net",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		// net/url is the second implementation: the same result inside any text.
		want := strings.Replace(u.Redacted(), ":xxxxx@", ":"+Redacted+"@", 1)
		in := fmt.Sprintf(`failed to connect to %s: dial tcp: refused`, raw)
		if got := Redact(in); got != fmt.Sprintf(`failed to connect to %s: dial tcp: refused`, want) {
			t.Errorf("Redact(%q) = %q, want the URL as %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		`parse "mqtt://user:secret@host:port": invalid port ":port" after host`: `parse "mqtt://user:xxxxx@host:port": invalid port ":port" after host`,
		`mqtt://user:p@ss@host:1883`:        `mqtt://user:xxxxx@host:1883`,
		`https://ghp_token123@github.com/x`: `https://xxxxx@github.com/x`,
		`Endpoint=sb://ns/;SharedAccessKeyName=send;SharedAccessKey=abc123=;EntityPath=x`: `Endpoint=sb://ns/;SharedAccessKeyName=send;SharedAccessKey=xxxxx;EntityPath=x`,
		`http://host/api?password=hunter2&x=1`:                                            `http://host/api?password=xxxxx&x=1`,
		`no url here, a=b`:                                                                `no url here, a=b`,
		`mqtt://127.0.0.1:1883 and mqtt://a:b@c:1`:                                        `mqtt://127.0.0.1:1883 and mqtt://a:xxxxx@c:1`,
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedactHandlerCoversEveryAttribute(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(RedactHandler(slog.NewJSONHandler(&buf, nil))).With("broker", "mqtt://u:secret@h:1")
	log.Error("connect to mqtt://u:secret@h:1 failed", "err", errors.New("dial mqtt://u:secret@h:1"),
		slog.Group("g", "url", "mqtt://u:secret@h:1"), "list", []string{"mqtt://u:secret@h:1"}, "n", 3)
	if strings.Contains(buf.String(), "secret") {
		t.Fatalf("a secret in the log: %s", buf.String())
	}
	if !strings.Contains(buf.String(), `"n":3`) || !strings.Contains(buf.String(), "u:xxxxx@h:1") {
		t.Fatalf("attributes lost: %s", buf.String())
	}
}

func BenchmarkRedact(b *testing.B) {
	b.Run("no url", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			Redact("disk buffer: append failed; retrying")
		}
	})
	b.Run("url", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			Redact("failed to connect to mqtt://user:secret@127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused")
		}
	})
}

func TestAllowHostsStarTurnsTheCheckOff(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})
	for _, tc := range []struct {
		allowed []string
		host    string
		want    int
	}{
		{nil, "evil.example", 403},
		{[]string{"*"}, "evil.example", 200},
		{[]string{"Gateway.Local."}, "gateway.local:9180", 200},
		{[]string{"gateway.local"}, "x.gateway.local", 403},
	} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.Host = tc.host
		AllowHosts(ok, tc.allowed).ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("allowed %v, Host %q: %d, want %d", tc.allowed, tc.host, w.Code, tc.want)
		}
	}
}
