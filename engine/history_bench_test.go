package engine

import (
	"net/http/httptest"
	"testing"
	"time"
)

func benchRuntime(b *testing.B, sinks int) *Runtime {
	b.Helper()
	nodes := []*NodeConfig{{Kind: KindSource, Type: "tick", Name: "s", Component: tickSource{}}}
	for i := range sinks {
		nodes = append(nodes, &NodeConfig{Kind: KindSink, Type: "nop", Name: string(rune('a' + i)), Inputs: []string{"source.s"}, Component: nopSink{}})
	}
	rt, err := New([]*PipelineConfig{{Name: "p", LatencySLO: time.Second, Nodes: nodes}}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	pts := make([]Point, 1000)
	for i := range pts {
		pts[i].TS = now.Add(-time.Duration(i) * time.Millisecond).UnixNano()
	}
	for _, n := range rt.pipelines[0].nodes {
		if n.lat != nil {
			n.lat.observeTS(pts, now.UnixNano())
		}
	}
	return rt
}

// BenchmarkRecordHistory is the once-a-second cost of the history sample of
// a pipeline with four sinks.
func BenchmarkRecordHistory(b *testing.B) {
	rt := benchRuntime(b, 4)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		rt.recordHistory(now)
	}
}

// BenchmarkHistoryEndpoint serves a full ring (ten minutes) of one pipeline.
func BenchmarkHistoryEndpoint(b *testing.B) {
	rt := benchRuntime(b, 4)
	now := time.Now()
	for i := range historyLen {
		rt.recordHistory(now.Add(time.Duration(i-historyLen) * time.Second))
	}
	h := rt.Handler()
	b.ReportAllocs()
	var size int
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/api/history", nil))
		size = w.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/response")
}
