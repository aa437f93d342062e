package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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

type idleSource struct{}

func (idleSource) Run(ctx context.Context, _ engine.Output) error {
	<-ctx.Done()
	return nil
}

// A reload that drops the tapped component ends the stream with an error
// line; closing the tap that could not be reopened must not panic.
func TestStreamTapReloadDropsComponent(t *testing.T) {
	before, err := engine.New([]*engine.PipelineConfig{{Name: "p", Nodes: []*engine.NodeConfig{
		{Kind: engine.KindSource, Name: "s", Component: idleSource{}, Env: &engine.Env{}},
	}}}, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	after, err := engine.New([]*engine.PipelineConfig{{Name: "p"}}, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan []byte, tapQueue)
	cfg := engine.TapConfig{Patterns: []string{"source.s"}, Sample: 1, Limit: 100, Interval: 10 * time.Millisecond, Emit: queueTapLines(lines)}
	tap, err := before.Tap(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/api/tap?component=source.s&interval=10ms", nil)
	rec := httptest.NewRecorder()
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("streamTap panicked: %v", p)
			}
		}()
		streamTap(rec, rec, req, func() *engine.Runtime { return after }, before, tap, cfg, lines)
	}()
	var first, last tapEvent
	out := strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
	if err := json.Unmarshal([]byte(out[0]), &first); err != nil || len(first.Tapping) != 1 || first.Tapping[0] != "p/source.s" {
		t.Errorf("first line %q, want the tapped component p/source.s", out[0])
	}
	if err := json.Unmarshal([]byte(out[len(out)-1]), &last); err != nil || !strings.HasPrefix(last.Error, "after reload: ") {
		t.Errorf("last line %q, want an after reload error", out[len(out)-1])
	}
	if !strings.Contains(last.Error, "no component matches source.s") {
		t.Errorf("last line %q, want the missing component named", out[len(out)-1])
	}
}
