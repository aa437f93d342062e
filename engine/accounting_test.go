package engine

import (
	"context"
	"errors"
	"testing"
	"time"
)

// droppingSource drops and rejects some of what it reads itself, as a UDP
// source does when its queue is full or a datagram does not decode, and
// emits the rest.
type droppingSource struct {
	env *Env
}

func (s *droppingSource) Run(ctx context.Context, out Output) error {
	for i := range 20 {
		switch i % 4 {
		case 1:
			s.env.Drop(3, "full")
		case 2:
			s.env.Reject([]Point{{Tag: "payload", Value: String("garbage"), TS: 1}}, "decode", errors.New("not json"))
		case 3:
			s.env.RejectAck([]Point{{Tag: "payload", Value: String("{"), TS: 1}}, "decode", errors.New("truncated"), nil)
		}
		pts := append(GetPoints(5), make([]Point, 5)...)
		for j := range pts {
			pts[j] = Point{Tag: "t", Value: Int(int64(i*5 + j)), TS: time.Now().UnixNano()}
		}
		if err := out.Emit(ctx, pts, nil); err != nil {
			return err
		}
	}
	return nil
}

// What a source drops or rejects itself counts as received: the status
// totals, the exit totals and the source's own counters all add up.
func TestSourceOwnDropsAddUp(t *testing.T) {
	env := &Env{}
	sn := nodeCfg(KindSource, "s", &droppingSource{env: env})
	sn.Env = env
	sink := &countSink{}
	pc := &PipelineConfig{Name: "p", Nodes: []*NodeConfig{sn, nodeCfg(KindSink, "k", sink, "source.s")}}
	rt, err := run(t, pc, context.Background(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	const emitted, full, decode = 100, 5 * 3, 10
	pts := rt.Status().Pipelines[0].Points
	if pts.Delivered != emitted || pts.Dropped != full+decode || pts.Pending != 0 {
		t.Fatalf("status points %+v, want delivered %d, dropped %d, pending 0", pts, emitted, full+decode)
	}
	if pts.In != pts.Delivered+pts.Dropped+pts.Pending+pts.Filtered {
		t.Fatalf("status: in %d != delivered %d + dropped %d + pending %d", pts.In, pts.Delivered, pts.Dropped, pts.Pending)
	}
	for _, c := range rt.Status().Pipelines[0].Components {
		if c.ID != "source.s" {
			continue
		}
		if c.Emitted != emitted || c.Received != emitted+full+decode {
			t.Fatalf("source received %d, emitted %d; want %d, %d", c.Received, c.Emitted, emitted+full+decode, emitted)
		}
		if c.Dropped["full"] != full || c.Dropped["decode"] != decode {
			t.Fatalf("source dropped %v", c.Dropped)
		}
	}
	tot := rt.Totals()
	if tot.In != tot.Delivered+tot.Dropped+tot.Backlog {
		t.Fatalf("totals: in %d != delivered %d + dropped %d + backlog %d", tot.In, tot.Delivered, tot.Dropped, tot.Backlog)
	}
}
