package http

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// The posters count exactly what the server answered: the points of the
// uplinks answered 200, and every 429 retried after Retry-After. Each body
// is a ChirpStack uplink with a device name and three readings.
func TestRunCountsWhatWasAnswered(t *testing.T) {
	var mu sync.Mutex
	var ok, full int64
	var bad []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var up struct {
			DeviceInfo struct{ DeviceName string }
			Object     map[string]float64
		}
		mu.Lock()
		defer mu.Unlock()
		if err := json.Unmarshal(b, &up); err != nil || !strings.HasPrefix(up.DeviceInfo.DeviceName, "meter-") || len(up.Object) != 3 ||
			r.Header.Get("Authorization") != "Bearer secret" {
			bad = append(bad, string(b))
		}
		if (ok+full)%3 == 2 {
			full++
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		ok++
		w.Write([]byte(`{"points":3}`))
	}))
	defer srv.Close()
	o := Options{URL: srv.URL, Token: "secret", Clients: 2, Meters: 10}
	if err := o.Check(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n := Run(ctx, o, io.Discard)
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("%d malformed uplinks, the first: %s", len(bad), bad[0])
	}
	if ok == 0 || full == 0 {
		t.Fatalf("server answered %d ok and %d 429: the run did not get going", ok, full)
	}
	if n.OK != ok || n.Full != full || n.Published != 3*ok || n.Failed != 0 {
		t.Fatalf("counted %+v; the server answered %d ok (%d points) and %d 429", n, ok, 3*ok, full)
	}
}

func TestCheck(t *testing.T) {
	for _, o := range []Options{{Clients: 0, Meters: 1}, {Clients: 1, Meters: 0}, {Clients: 1, Meters: 1, Rate: -1}} {
		if err := o.Check(); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}
