package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// rejectOdd passes even values, filters multiples of 3 among the odd ones,
// and rejects the other odd ones (counted as dropped, not filtered).
type rejectOdd struct{ env *Env }

func (t *rejectOdd) Process(_ context.Context, in []Point) []Point {
	out := in[:0]
	var bad []Point
	for _, p := range in {
		v, _ := p.Value.Int64()
		switch {
		case v%2 == 0:
			out = append(out, p)
		case v%3 != 0:
			bad = append(bad, p)
		}
	}
	t.env.Reject(bad, "test", errors.New("odd"))
	return out
}

// Filtered points are counted as such, apart from rejected ones, and the
// pipeline's counts add up: in = filtered + dropped + delivered.
func TestFilteredCountsAddUp(t *testing.T) {
	tr := &rejectOdd{}
	node := nodeCfg(KindTransform, "t", tr, "source.src")
	tr.env = node.Env
	sink := &countSink{}
	rt, err := New([]*PipelineConfig{{Name: "p", Nodes: []*NodeConfig{
		nodeCfg(KindSource, "src", &testSource{batches: 60, size: 10}),
		node,
		nodeCfg(KindSink, "out", sink, "transform.t"),
	}}}, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Run(context.Background(), time.Minute); err != nil {
		t.Fatal(err)
	}
	// values 0..599: 300 even, 100 odd multiples of 3, 200 other odd
	pc := rt.Status().Pipelines[0].Points
	want := PointCounts{In: 600, Filtered: 100, Dropped: 200, Delivered: 300}
	if pc != want || sink.points != 300 {
		t.Fatalf("points %+v, sink wrote %d; want %+v and 300", pc, sink.points, want)
	}
	if tot := rt.Totals(); tot.Filtered != 100 {
		t.Errorf("Totals().Filtered = %d, want 100", tot.Filtered)
	}
	n, err := testutil.GatherAndCount(rt.gatherer(), "flowd_points_filtered_total")
	if err != nil || n != 1 {
		t.Fatalf("flowd_points_filtered_total series: %d, %v", n, err)
	}
	mfs, _ := rt.gatherer().Gather()
	for _, mf := range mfs {
		if mf.GetName() == "flowd_points_filtered_total" {
			if v := mf.GetMetric()[0].GetCounter().GetValue(); v != 100 {
				t.Errorf("flowd_points_filtered_total = %v, want 100", v)
			}
		}
	}
}
