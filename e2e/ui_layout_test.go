package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/flowd/flowd/e2e/harness"
	"github.com/flowd/flowd/engine"
)

// layoutStatus is a pipeline with two levels of transforms, fan-in, fan-out
// and a sink fed straight from a source: shapes the layout must handle.
func layoutStatus() engine.Status {
	src := func(id string, r float64) engine.ComponentStatus {
		return engine.ComponentStatus{ID: id, Kind: engine.KindSource, Type: "sim", State: engine.StateConnected, RateOut: r, RateIn: r}
	}
	tr := func(id string, r float64, in ...string) engine.ComponentStatus {
		return engine.ComponentStatus{ID: id, Kind: engine.KindTransform, Type: "expr", State: engine.StateConnected, Inputs: in, RateIn: r, RateOut: r / 2}
	}
	sink := func(id string, st engine.State, r float64, in ...string) engine.ComponentStatus {
		c := engine.ComponentStatus{ID: id, Kind: engine.KindSink, Type: "kafka", State: st, Inputs: in, RateIn: r, RateOut: r,
			Buffer: &engine.BufferStatus{Type: "disk", Points: 1200, OldestSeconds: 12}, Latency: &engine.LatencyStatus{P50ms: 20, P99ms: 180, Count: 500}}
		if st != engine.StateConnected {
			c.LastError = "dial tcp 127.0.0.1:9092: connect: connection refused"
			c.Restarts = 4
		}
		return c
	}
	return engine.Status{Ready: false, UptimeSeconds: 754, Pipelines: []engine.PipelineStatus{{
		Name: "plant", LatencySLOms: 10000, Ready: false, Problems: []string{"sink.cloud is reconnecting"},
		Components: []engine.ComponentStatus{
			src("source.line1", 6000), src("source.line2", 6500),
			tr("transform.scale", 12500, "source.line1", "source.line2"),
			tr("transform.changes", 6250, "transform.scale"),
			sink("sink.cloud", engine.StateConnecting, 3125, "transform.changes"),
			sink("sink.archive", engine.StateConnected, 6250, "transform.scale"),
			sink("sink.local", engine.StateConnected, 6500, "source.line2"),
		},
	}}}
}

func layoutHistory() engine.History {
	var s []engine.HistorySample
	now := time.Now().UnixMilli()
	for i := range 300 {
		p99 := 150.0 + float64(i%40)
		if i > 200 && i < 230 {
			p99 = 14000 // an outage above the SLO
		}
		s = append(s, engine.HistorySample{T: now - int64(300-i)*1000, RateIn: 12500, RateOut: 15000, P50ms: 40, P99ms: p99, Count: 1000})
	}
	return engine.History{Pipelines: []engine.PipelineHistory{{Name: "plant", LatencySLOms: 10000, IntervalSeconds: 1, Samples: s}}}
}

// TestStatusPageLayout serves the page with a fixed status (transforms that
// main's components cannot build yet) and checks the graph's columns.
func TestStatusPageLayout(t *testing.T) {
	chromium := harness.Require(t, "FLOWD_TEST_CHROMIUM")
	page, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "engine", "web", "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	// No /api/events here: the page falls back to polling (the 404 closes
	// its event stream), so this test also covers the fallback.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { w.Write(page) })
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, _ *http.Request) { json.NewEncoder(w).Encode(layoutStatus()) })
	var sent atomic.Bool // the first answer has ten minutes of history, later ones nothing new
	mux.HandleFunc("GET /api/history", func(w http.ResponseWriter, _ *http.Request) {
		h := layoutHistory()
		if sent.Swap(true) {
			h.Pipelines[0].Samples = nil
		}
		json.NewEncoder(w).Encode(h)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx := newBrowser(t, chromium, 1280, 1000)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible("svg.latency-chart polyline.p99")); err != nil {
		t.Fatal(err)
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify([...document.querySelectorAll('svg.graph .node')].map(n => {
		const b = n.getBBox(), m = n.transform.baseVal.consolidate().matrix;
		return {id: n.dataset.id, state: n.dataset.state, x: m.e, y: m.f, w: b.width, h: b.height};
	}))`))
	if err != nil {
		t.Fatal(err)
	}
	var nodes []struct {
		ID         string
		State      string
		X, Y, W, H float64
	}
	if err := json.Unmarshal([]byte(raw), &nodes); err != nil {
		t.Fatal(err)
	}
	col := map[string]float64{}
	for _, n := range nodes {
		col[n.ID] = n.X
	}
	if len(col) != 7 {
		t.Fatalf("graph has %d nodes, want 7: %s", len(col), raw)
	}
	// sources, then each transform level, then every sink in the last column
	order := [][]string{{"source.line1", "source.line2"}, {"transform.scale"}, {"transform.changes"}, {"sink.cloud", "sink.archive", "sink.local"}}
	for i, level := range order {
		for _, id := range level {
			if col[id] != col[level[0]] {
				t.Errorf("%s not in the column of %s", id, level[0])
			}
			if i > 0 && col[id] <= col[order[i-1][0]] {
				t.Errorf("%s (x=%v) not right of %s (x=%v)", id, col[id], order[i-1][0], col[order[i-1][0]])
			}
		}
	}
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			if a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H {
				t.Errorf("%s and %s overlap", a.ID, b.ID)
			}
		}
	}
	edges, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('svg.graph .edge').length`))
	if err != nil || edges != 6 {
		t.Errorf("%d edges (%v), want 6", edges, err)
	}
	// No edge runs through a component it does not connect.
	crossings, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](edgeCrossings))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range crossings {
		t.Errorf("edge crosses a node: %s", c)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.ArtifactDir(), "layout.png")
	os.WriteFile(shot, png, 0o644)
	t.Logf("screenshot: %s", shot)
}

const edgeCrossings = `(() => {
  const out = [];
  for (const g of document.querySelectorAll('svg.graph')) {
    const boxes = [...g.querySelectorAll('.node')].map(n => {
      const m = n.transform.baseVal.consolidate().matrix, r = n.querySelector('rect');
      return {id: n.dataset.id, x: m.e, y: m.f, w: r.width.baseVal.value, h: r.height.baseVal.value};
    });
    for (const e of g.querySelectorAll('.edge')) {
      const path = e.querySelector('path'), len = path.getTotalLength();
      for (let i = 1; i < 60; i++) {
        const p = path.getPointAtLength(len * i / 60);
        for (const b of boxes) {
          if (b.id === e.dataset.from || b.id === e.dataset.to) continue;
          if (p.x > b.x + 2 && p.x < b.x + b.w - 2 && p.y > b.y + 2 && p.y < b.y + b.h - 2) {
            out.push(e.dataset.from + ' → ' + e.dataset.to + ' through ' + b.id);
            i = 60;
            break;
          }
        }
      }
    }
  }
  return out;
})()`
