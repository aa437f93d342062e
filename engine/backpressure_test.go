package engine

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// impatientSource gives up each Emit after wait with ErrBackpressure as the
// cause, as a source that must keep serving its peer does.
type impatientSource struct {
	size         int
	wait         time.Duration
	given, taken atomic.Int64
}

func (s *impatientSource) Run(ctx context.Context, out Output) error {
	for ctx.Err() == nil {
		pts := GetPoints(s.size)
		for j := 0; j < s.size; j++ {
			pts = append(pts, Point{Tag: "t", Value: Int(int64(j)), TS: time.Now().UnixNano()})
		}
		ectx, cancel := context.WithTimeoutCause(ctx, s.wait, ErrBackpressure)
		err := out.Emit(ectx, pts, nil)
		// The cause is fixed once ectx ended, so it says what the engine
		// saw, even when the run ends a moment later (the engine counted a
		// backpressure drop then, not a shutdown).
		cause := context.Cause(ectx)
		cancel()
		switch {
		case err == nil:
			s.taken.Add(int64(s.size))
		case errors.Is(cause, ErrBackpressure):
			s.given.Add(int64(s.size))
		case ctx.Err() != nil:
			return nil
		default:
			return err
		}
	}
	return nil
}

// Points an Emit gave up on for backpressure are counted once, under that
// reason, by the engine, and the totals still add up.
func TestEmitBackpressureCauseCountsDropsOnce(t *testing.T) {
	src := &impatientSource{size: 100, wait: 2 * time.Millisecond}
	sink := &countSink{delay: 20 * time.Millisecond}
	sn := nodeCfg(KindSink, "k", sink, "source.s")
	sn.Buffer.MaxPoints = 300
	pc := &PipelineConfig{Name: "p", QueueSize: 2, Nodes: []*NodeConfig{nodeCfg(KindSource, "s", src), sn}}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	rt, _ := run(t, pc, ctx, 5*time.Second)
	if src.given.Load() == 0 {
		t.Fatal("no Emit gave up: the test did not exercise backpressure")
	}
	var bp, other int64
	for _, p := range rt.Status().Pipelines {
		for _, c := range p.Components {
			for reason, n := range c.Dropped {
				if reason == "backpressure" {
					bp += n
				} else {
					other += n
				}
			}
		}
	}
	if bp != src.given.Load() {
		t.Errorf("dropped for backpressure %d, the source gave up %d", bp, src.given.Load())
	}
	tot := rt.Totals()
	if tot.In != tot.Delivered+tot.Dropped {
		t.Fatalf("in %d != delivered %d + dropped %d (backpressure %d, other %d)", tot.In, tot.Delivered, tot.Dropped, bp, other)
	}
	if tot.Dropped != bp+other {
		t.Errorf("dropped %d, by reason %d", tot.Dropped, bp+other)
	}
	t.Logf("in %d delivered %d dropped for backpressure %d, other %d", tot.In, tot.Delivered, bp, other)
}
