package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/flowd/flowd/e2e/harness"
)

// uiPipeline fans two simulated sources into three sinks, so the graph has
// fan-in and fan-out edges.
const uiPipeline = `
pipeline "ui" {
  latency_slo = "1s"

  source "sim" "plant" {
    assets   = 3
    tags     = 5
    interval = "100ms"
  }

  source "sim" "line2" {
    assets   = 2
    tags     = 4
    interval = "200ms"
    seed     = 7
  }

  sink "file" "local" {
    inputs = [source.plant, source.line2]
    path   = "OUT"
    mode   = "truncate"
  }

  sink "discard" "null" {
    inputs = [source.plant]
  }

  sink "stdout" "console" {
    inputs = [source.line2]
    sample = 1000
  }
}

# A sink that cannot open its file: the page shows it failing, with its error.
pipeline "broken" {
  source "sim" "gen" {
    interval = "500ms"
  }

  sink "file" "blocked" {
    inputs = [source.gen]
    path   = "BLOCKED"
  }
}
`

// pageView is what the status page shows, read from its DOM.
type pageView struct {
	Nodes []struct {
		ID    string  `json:"id"`
		State string  `json:"state"`
		Rate  float64 `json:"rate"`
	} `json:"nodes"`
	Edges []struct {
		From string  `json:"from"`
		To   string  `json:"to"`
		Rate float64 `json:"rate"`
	} `json:"edges"`
	LatencySamples int  `json:"latency_samples"` // history samples with latency data
	LatencyLines   int  `json:"latency_lines"`   // p50/p99 polylines drawn
	SLOLine        bool `json:"slo_line"`
	TableRows      int  `json:"table_rows"`
	Broken         struct {
		State    string `json:"state"`
		Error    string `json:"error"`    // the table's last error cell
		Problems string `json:"problems"` // the list under the pipeline's name
	} `json:"broken"`
	Overflow bool `json:"overflow"` // wider than the viewport
	Vertical bool `json:"vertical"` // graph laid out top to bottom
}

const readPage = `(() => {
  const num = s => parseFloat(s || '0');
  const ui = document.querySelector('section[data-pipeline="ui"]');
  if (!ui) return JSON.stringify({nodes: []});
  const chart = ui.querySelector('svg.latency-chart');
  const g = ui.querySelector('svg.graph');
  const bn = document.querySelector('section[data-pipeline="broken"] svg.graph .node[data-id="sink.blocked"]');
  const br = document.querySelector('section[data-pipeline="broken"] table.components tr[data-id="sink.blocked"] td.error');
  const bp = document.querySelector('section[data-pipeline="broken"] ul.problems');
  let vertical = false;
  if (g) {
    const ys = [...g.querySelectorAll('.node')].map(n => n.transform.baseVal.consolidate().matrix.f);
    vertical = new Set(ys).size > 1 && [...g.querySelectorAll('.node.source')].every(n => n.transform.baseVal.consolidate().matrix.f === Math.min(...ys));
  }
  return JSON.stringify({
    nodes: [...ui.querySelectorAll('svg.graph .node')].map(n => ({id: n.dataset.id, state: n.dataset.state, rate: num(n.dataset.rate)})),
    edges: [...ui.querySelectorAll('svg.graph .edge')].map(e => ({from: e.dataset.from, to: e.dataset.to, rate: num(e.dataset.rate)})),
    latency_samples: chart ? parseInt(chart.dataset.withLatency || '0') : 0,
    latency_lines: chart ? chart.querySelectorAll('polyline.p50, polyline.p99').length : 0,
    slo_line: !!(chart && chart.querySelector('line.slo')),
    table_rows: ui.querySelectorAll('table.components tr[data-id]').length,
    broken: {state: bn ? bn.dataset.state : '', error: br ? br.textContent : '', problems: bp ? bp.textContent : ''},
    overflow: document.documentElement.scrollWidth > window.innerWidth + 1,
    vertical,
  });
})()`

func TestStatusPageInChromium(t *testing.T) {
	chromium := harness.Require(t, "FLOWD_TEST_CHROMIUM")
	dir := t.TempDir()
	// a regular file where the blocked sink needs a directory
	notDir := harness.WriteFile(t, dir, "not-a-dir", "")
	src := strings.ReplaceAll(uiPipeline, `"OUT"`, strconv.Quote(filepath.Join(dir, "out.jsonl")))
	src = strings.ReplaceAll(src, `"BLOCKED"`, strconv.Quote(filepath.Join(notDir, "out.jsonl")))
	pipe := harness.WriteFile(t, dir, "ui.hcl", src)
	p := harness.Start(t, "--drain-timeout", "1s", pipe)

	// The components flowd runs, from its own API: the page must show each.
	st, err := p.Status()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	inputs := map[string][]string{}
	for _, c := range st.Pipelines[0].Components {
		want = append(want, c.ID)
		inputs[c.ID] = c.Inputs
	}
	if st.Pipelines[0].Name != "ui" {
		t.Fatalf("first pipeline is %q", st.Pipelines[0].Name)
	}
	sort.Strings(want)
	if len(want) != 5 {
		t.Fatalf("flowd runs %d components, want 5: %v", len(want), want)
	}

	ctx := newBrowser(t, chromium, 1280, 1000)
	net := watchNetwork(t, ctx)

	// The first call starts the browser, which lives as long as ctx.
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+p.Addr+"/"), chromedp.WaitVisible("svg.graph")); err != nil {
		t.Fatalf("opening the status page: %v", err)
	}

	// Wait until every component shows traffic and the latency chart has a
	// few samples; the page follows /api/events on its own.
	var v pageView
	ready := func() bool {
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](readPage))
		if err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		v = pageView{}
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			t.Fatalf("page summary %q: %v", raw, err)
		}
		if len(v.Nodes) != len(want) || v.LatencySamples < 3 || v.Broken.Error == "" {
			return false
		}
		for _, n := range v.Nodes {
			if n.Rate <= 0 {
				return false
			}
		}
		for _, e := range v.Edges {
			if e.Rate <= 0 {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(60 * time.Second)
	for !ready() {
		if time.Now().After(deadline) {
			t.Fatalf("after 60s the page shows %+v; want every one of %v with a non-zero rate and latency data", v, want)
		}
		time.Sleep(500 * time.Millisecond)
	}

	var got []string
	for _, n := range v.Nodes {
		got = append(got, n.ID)
		if n.State != "connected" {
			t.Errorf("%s shown as %q, want connected", n.ID, n.State)
		}
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("graph shows %v, flowd runs %v", got, want)
	}
	// one edge per input reference, each with its rate
	wantEdges := map[[2]string]bool{}
	for id, ins := range inputs {
		for _, in := range ins {
			wantEdges[[2]string{in, id}] = true
		}
	}
	if len(v.Edges) != len(wantEdges) {
		t.Errorf("graph has %d edges, want %d", len(v.Edges), len(wantEdges))
	}
	for _, e := range v.Edges {
		if !wantEdges[[2]string{e.From, e.To}] {
			t.Errorf("unexpected edge %s → %s", e.From, e.To)
		}
	}
	if v.LatencyLines < 2 || !v.SLOLine {
		t.Errorf("latency chart: %d lines and SLO line %v; want p50, p99 and the SLO", v.LatencyLines, v.SLOLine)
	}
	if v.TableRows != len(want) {
		t.Errorf("component table has %d rows, want %d", v.TableRows, len(want))
	}
	if v.Overflow {
		t.Errorf("the page is wider than a 1280px window")
	}
	if v.Broken.State != "failing" && v.Broken.State != "reconnecting" {
		t.Errorf("sink.blocked shown as %q, want failing or reconnecting", v.Broken.State)
	}
	if !strings.Contains(v.Broken.Error, "not a directory") {
		t.Errorf("sink.blocked's last error shown as %q, want the mkdir error", v.Broken.Error)
	}
	if !strings.Contains(v.Broken.Problems, "sink.blocked is") || !strings.Contains(v.Broken.Problems, "not a directory") {
		t.Errorf("pipeline problems shown as %q, want sink.blocked with its error", v.Broken.Problems)
	}

	checkLiveOverSSE(t, ctx, net)

	out := t.ArtifactDir()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(out, "status.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))

	// A phone-sized screen: the graph turns vertical and nothing overflows.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844), chromedp.Sleep(1500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	ready()
	if !v.Vertical || v.Overflow {
		t.Errorf("on a 390px screen: vertical graph %v, overflow %v; want vertical and no overflow", v.Vertical, v.Overflow)
	}
	if png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(out, "status-small.png")
	if err := os.WriteFile(small, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", small, len(png))

	// With ?poll (or where the event stream cannot be had) the page polls.
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+p.Addr+"/?poll"), chromedp.WaitVisible("svg.graph")); err != nil {
		t.Fatalf("opening the polling page: %v", err)
	}
	harness.Eventually(t, 15*time.Second, func() bool {
		tr := pageTransport(t, ctx)
		return tr.Transport == "poll" && tr.Updates >= 2 && tr.StatusFetches >= 2
	}, "the page with ?poll does not poll /api/status: %+v", pageTransport(t, ctx))

	// sink.blocked never took its points: the drain times out and says so.
	if code := p.Stop(30 * time.Second); code != 1 || !strings.Contains(p.Stderr.String(), "drain") {
		t.Fatalf("flowd exited %d, want 1 after an incomplete drain:\n%s", code, p.Stderr.String())
	}
}

// newBrowser starts headless Chromium for the test, with the flags this
// machine needs; it is stopped when the test ends.
func newBrowser(t *testing.T, chromium string, width, height int) context.Context {
	t.Helper()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium")),
		chromedp.WindowSize(width, height),
	)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}

// transport is how the page gets its data, as the page itself records it.
type transport struct {
	Transport     string `json:"transport"`
	Updates       int    `json:"updates"`
	StatusFetches int    `json:"status_fetches"`
}

func pageTransport(t *testing.T, ctx context.Context) transport {
	t.Helper()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => JSON.stringify({
  transport: document.body.dataset.transport || '',
  updates: parseInt(document.body.dataset.updates || '0'),
  status_fetches: performance.getEntriesByType('resource').filter(e => new URL(e.name).pathname === '/api/status').length,
}))()`))
	if err != nil {
		t.Fatalf("reading the page: %v", err)
	}
	var tr transport
	if err := json.Unmarshal([]byte(raw), &tr); err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	return tr
}

// netLog counts, from the browser's own network events (DevTools
// protocol), the requests the page made and the server-sent events it got.
type netLog struct {
	mu       sync.Mutex
	requests map[string]int // by path
	events   map[string]int // server-sent events by name
}

func watchNetwork(t *testing.T, ctx context.Context) *netLog {
	t.Helper()
	l := &netLog{requests: map[string]int{}, events: map[string]int{}}
	err := chromedp.Listen(ctx, func(ev any) {
		l.mu.Lock()
		defer l.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			if u, err := url.Parse(ev.Request.URL); err == nil {
				l.requests[u.Path]++
			}
		case *network.EventEventSourceMessageReceived:
			l.events[ev.EventName]++
		}
	})
	if err != nil { // chromedp enables the Network domain of every tab
		t.Fatalf("watching the browser's network events: %v", err)
	}
	return l
}

func (l *netLog) counts() (requests, events map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.requests), maps.Clone(l.events)
}

// checkLiveOverSSE: the page keeps updating from one /api/events stream,
// each update a server-sent event, and never polls /api/status or
// /api/history.
func checkLiveOverSSE(t *testing.T, ctx context.Context, net *netLog) {
	t.Helper()
	before := pageTransport(t, ctx)
	_, ev0 := net.counts()
	if before.Transport != "sse" {
		t.Fatalf("page transport %+v, want server-sent events", before)
	}
	var after transport
	var req, ev map[string]int
	harness.Eventually(t, 15*time.Second, func() bool {
		after = pageTransport(t, ctx)
		req, ev = net.counts()
		return after.Updates >= before.Updates+3 && ev["status"] >= ev0["status"]+3
	}, "the page stopped updating: %+v, then %+v; events %v, then %v", before, after, ev0, ev)
	if req["/api/status"] != 0 || req["/api/history"] != 0 || req["/api/events"] != 1 {
		t.Errorf("requests made by the page: %v; want one /api/events stream and no polling", req)
	}
	if ev["history"] < 3 {
		t.Errorf("server-sent events received: %v; want history events beside the status ones", ev)
	}
	t.Logf("page updated %d times; server-sent events %v; requests %v", after.Updates, ev, req)
}
