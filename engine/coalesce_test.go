package engine

import (
	"context"
	"testing"
)

type sizedSink struct{ size int }

func (s sizedSink) Write(ctx context.Context, points []Point) error { return nil }
func (s sizedSink) WriteSize() int                                  { return s.size }

func TestCoalesceQueuedBatches(t *testing.T) {
	ctx := context.Background()
	buf := newMemBuffer(BufferConfig{MaxPoints: 1000}, nil)
	acked := make([]error, 0, 4)
	for i := range 4 {
		pts := GetPoints(10)
		for j := range 10 {
			pts = append(pts, Point{Tag: "t", Value: Int(int64(i*10 + j))})
		}
		if err := buf.Push(ctx, NewBatch(pts, func(err error) { acked = append(acked, err) })); err != nil {
			t.Fatal(err)
		}
	}
	n := &node{sink: sizedSink{size: 25}, buf: buf}
	first, _ := buf.Pop(ctx)
	b := n.coalesce(first)
	if len(b.Points) != 30 {
		t.Fatalf("coalesced %d points, want 30 (three batches of 10 reach 25)", len(b.Points))
	}
	for i, p := range b.Points {
		if v, _ := p.Value.Int64(); v != int64(i) {
			t.Fatalf("point %d holds %d: order lost", i, v)
		}
	}
	if len(acked) != 0 {
		t.Fatal("acked before the write")
	}
	b.Ack(nil)
	if len(acked) != 3 {
		t.Fatalf("%d batches acked, want 3", len(acked))
	}
	last, _ := buf.Pop(ctx)
	if got := n.coalesce(last); len(got.Points) != 10 {
		t.Fatalf("nothing queued: got %d points, want the batch alone", len(got.Points))
	}
	plain := &node{sink: nil, buf: buf}
	one := NewBatch([]Point{{Tag: "x"}}, nil)
	if got := plain.coalesce(one); len(got.Points) != 1 {
		t.Fatal("a sink without WriteSize must get batches unchanged")
	}
}
