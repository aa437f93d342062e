package engine

import (
	"context"
	"errors"
	"fmt"
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

// gatedFilter filters out the whole first batch, but only once gate opens;
// it passes the later batches whole.
type gatedFilter struct {
	started, gate chan struct{}
	calls         int
}

func (t *gatedFilter) Process(_ context.Context, in []Point) []Point {
	t.calls++
	if t.calls > 1 {
		return in
	}
	close(t.started)
	<-t.gate
	return nil
}

// impatientOnce emits three batches; the third finds the transform's queue
// full and is given up for backpressure while the transform is still
// processing the first.
type impatientOnce struct{ f *gatedFilter }

func (s *impatientOnce) Run(ctx context.Context, out Output) error {
	batch := func(i int) []Point {
		pts := GetPoints(10)
		for j := 0; j < 10; j++ {
			pts = append(pts, Point{Asset: "a", Tag: "t", Value: Int(int64(i*10 + j)), TS: time.Now().UnixNano()})
		}
		return pts
	}
	if err := out.Emit(ctx, batch(0), nil); err != nil {
		return err
	}
	<-s.f.started
	if err := out.Emit(ctx, batch(1), nil); err != nil {
		return err
	}
	ectx, cancel := context.WithTimeoutCause(ctx, 20*time.Millisecond, ErrBackpressure)
	err := out.Emit(ectx, batch(2), nil)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("third Emit: %v, want it given up", err)
	}
	close(s.f.gate)
	return nil
}

// Points an upstream could not hand to a transform are its drops, not ones
// its Process made: they must not be taken off what the Process filtered,
// however the two overlap in time.
func TestFilteredNotOffsetByUpstreamDrops(t *testing.T) {
	f := &gatedFilter{started: make(chan struct{}), gate: make(chan struct{})}
	sink := &countSink{}
	rt, err := New([]*PipelineConfig{{Name: "p", QueueSize: 1, Nodes: []*NodeConfig{
		nodeCfg(KindSource, "src", &impatientOnce{f}),
		nodeCfg(KindTransform, "t", f, "source.src"),
		nodeCfg(KindSink, "out", sink, "transform.t"),
	}}}, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Run(context.Background(), time.Minute); err != nil {
		t.Fatal(err)
	}
	pc := rt.Status().Pipelines[0].Points
	want := PointCounts{In: 30, Filtered: 10, Dropped: 10, Delivered: 10}
	if pc != want || sink.points != 10 {
		t.Fatalf("points %+v, sink wrote %d; want %+v and 10", pc, sink.points, want)
	}
}
