package engine

import (
	"context"
	"testing"
	"time"
)

// BenchmarkFanoutHook: one op is one batch of 10 points leaving a node with
// no readers: the counters, the tap hook and the ack. "untapped" is the cost
// every component pays (compare with the same benchmark before the hook);
// "tapped-limited" is a tap whose rate limit is used up, the steady state of
// a tap on a busy component.
func BenchmarkFanoutHook(b *testing.B) {
	for _, tc := range []struct {
		name   string
		tapped bool
	}{{"untapped", false}, {"tapped-limited", true}} {
		b.Run(tc.name, func(b *testing.B) {
			rt, err := New([]*PipelineConfig{{Name: "p", Nodes: []*NodeConfig{
				nodeCfg(KindSource, "src", &testSource{}),
			}}}, Options{Logger: quietLog})
			if err != nil {
				b.Fatal(err)
			}
			p := rt.pipelines[0]
			p.soft, p.hard = context.Background(), context.Background()
			n := p.nodes[0]
			if tc.tapped {
				h, err := rt.Tap(TapConfig{Limit: 1, Interval: time.Hour, Emit: func(string, string, *Point) bool { return true }})
				if err != nil {
					b.Fatal(err)
				}
				defer h.Close()
			}
			tmpl := make([]Point, 10)
			for i := range tmpl {
				tmpl[i] = Point{Asset: "a", Tag: "t", Value: Int(int64(i))}
			}
			b.ReportAllocs()
			for b.Loop() {
				n.fanout(context.Background(), Batch{Points: append(GetPoints(len(tmpl)), tmpl...)})
			}
		})
	}
}
