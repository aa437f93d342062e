package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flowd/flowd/engine"
)

// The points are data: /api/tap answers loopback clients only, unless
// --tap-remote allows everyone.
func TestTapLoopbackOnlyByDefault(t *testing.T) {
	rt, err := engine.New([]*engine.PipelineConfig{{Name: "p"}}, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	current := func() *engine.Runtime { return rt }
	for _, tc := range []struct {
		remote bool
		from   string
		want   int
	}{
		{false, "192.0.2.1:40000", http.StatusForbidden},
		{false, "[2001:db8::1]:40000", http.StatusForbidden},
		{false, "127.0.0.1:40000", http.StatusNotFound}, // allowed; the pipeline has no component
		{false, "[::1]:40000", http.StatusNotFound},
		{true, "192.0.2.1:40000", http.StatusNotFound},
	} {
		h := withTap(current, tc.remote, http.NotFoundHandler())
		req := httptest.NewRequest("GET", "/api/tap?component=sink.x", nil)
		req.RemoteAddr = tc.from
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want || (rec.Code == http.StatusNotFound && !strings.Contains(rec.Body.String(), "no component matches sink.x")) {
			t.Errorf("remote=%v from %s: %d %q, want %d", tc.remote, tc.from, rec.Code, rec.Body.String(), tc.want)
		}
	}
}
