package engine

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

func TestHistoryRingKeepsNewestInOrder(t *testing.T) {
	var h historyRing
	for i := 1; i <= historyLen+25; i++ {
		h.add(HistorySample{T: int64(i)})
	}
	all := h.since(0)
	if len(all) != historyLen {
		t.Fatalf("got %d samples, want %d", len(all), historyLen)
	}
	if all[0].T != 26 || all[len(all)-1].T != historyLen+25 {
		t.Fatalf("oldest %d newest %d, want 26 and %d", all[0].T, all[len(all)-1].T, historyLen+25)
	}
	for i := 1; i < len(all); i++ {
		if all[i].T != all[i-1].T+1 {
			t.Fatalf("sample %d out of order: %d after %d", i, all[i].T, all[i-1].T)
		}
	}
	newer := h.since(historyLen + 20)
	if len(newer) != 5 || newer[0].T != historyLen+21 {
		t.Fatalf("since: got %d samples starting %v", len(newer), newer)
	}
}

func TestLatencyWindowCoversRecentSlotsOnly(t *testing.T) {
	var l latency
	now := time.Now()
	old := now.Add(-3 * slotWidth).UnixNano()
	l.observeTS([]Point{{TS: old - int64(time.Second)}}, old)
	l.observeTS([]Point{{TS: now.UnixNano() - int64(5*time.Millisecond)}}, now.UnixNano())
	w := l.window(now, historySlots)
	if w.n != 1 {
		t.Fatalf("window holds %d observations, want the recent one only", w.n)
	}
	if q := w.quantile(0.99); q < 4*time.Millisecond || q > 6*time.Millisecond {
		t.Fatalf("p99 %s, want about 5ms", q)
	}
}

// tickSource emits one timestamped point every 20ms until cancelled.
type tickSource struct{}

func (tickSource) Run(ctx context.Context, out Output) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			pts := append(GetPoints(1), Point{Tag: "x", Value: Float(1), TS: now.Add(-3 * time.Millisecond).UnixNano()})
			if err := out.Emit(ctx, pts, nil); err != nil {
				return nil
			}
		}
	}
}

type nopSink struct{}

func (nopSink) Write(context.Context, []Point) error { return nil }

func TestHistoryRecordedWhileRunning(t *testing.T) {
	cfg := &PipelineConfig{Name: "p", LatencySLO: 2 * time.Second, Nodes: []*NodeConfig{
		{Kind: KindSource, Type: "tick", Name: "s", Component: tickSource{}},
		{Kind: KindSink, Type: "nop", Name: "k", Inputs: []string{"source.s"}, Component: nopSink{}},
	}}
	rt, err := New([]*PipelineConfig{cfg}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx, 5*time.Second) }()
	deadline := time.Now().Add(20 * time.Second)
	var samples []HistorySample
	for time.Now().Before(deadline) {
		samples = rt.History(0).Pipelines[0].Samples
		if len(samples) >= 3 && samples[len(samples)-1].Count > 0 && samples[len(samples)-1].RateOut > 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	srv := httptest.NewServer(rt.Handler())
	defer srv.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(samples) < 3 {
		t.Fatalf("only %d history samples after running", len(samples))
	}
	last := samples[len(samples)-1]
	if last.Count == 0 || last.RateIn <= 0 || last.RateOut <= 0 {
		t.Fatalf("last sample has no traffic: %+v", last)
	}
	if last.P50ms <= 0 || last.P99ms < last.P50ms {
		t.Fatalf("quantiles out of order: %+v", last)
	}

	var h History
	resp, err := http.Get(srv.URL + "/api/history?since=" + strconv.FormatInt(samples[0].T, 10))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	if len(h.Pipelines) != 1 || h.Pipelines[0].Name != "p" || h.Pipelines[0].LatencySLOms != 2000 {
		t.Fatalf("unexpected history: %+v", h)
	}
	for _, s := range h.Pipelines[0].Samples {
		if s.T <= samples[0].T {
			t.Fatalf("since=%d returned an older sample %d", samples[0].T, s.T)
		}
	}
	if got := len(h.Pipelines[0].Samples); got < len(samples)-1 {
		t.Fatalf("since returned %d samples, want at least %d", got, len(samples)-1)
	}

	bad, err := http.Get(srv.URL + "/api/history?since=yesterday")
	if err != nil {
		t.Fatal(err)
	}
	bad.Body.Close()
	if bad.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad since: status %d, want 400", bad.StatusCode)
	}
}
