package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// testSource emits n batches of size points, then ends (or runs until ctx when n < 0).
type testSource struct {
	batches, size int
	acks          atomic.Int64
	ackErrs       atomic.Int64
	emitted       atomic.Int64
}

func (s *testSource) Run(ctx context.Context, out Output) error {
	for i := 0; s.batches < 0 || i < s.batches; i++ {
		if ctx.Err() != nil {
			return nil
		}
		pts := GetPoints(s.size)
		for j := 0; j < s.size; j++ {
			pts = append(pts, Point{Asset: "a", Tag: "t", Value: Int(int64(i*s.size + j)), TS: time.Now().UnixNano()})
		}
		if err := out.Emit(ctx, pts, func(err error) {
			if err != nil {
				s.ackErrs.Add(1)
			} else {
				s.acks.Add(1)
			}
		}); err != nil {
			return err
		}
		s.emitted.Add(int64(s.size))
	}
	return nil
}

// countSink counts what it is given; delay slows it down; fail makes the first writes fail.
type countSink struct {
	mu     sync.Mutex
	points int64
	values map[int64]int
	delay  time.Duration
	fail   atomic.Int32
}

func (s *countSink) Write(ctx context.Context, pts []Point) error {
	if s.fail.Load() > 0 {
		s.fail.Add(-1)
		return errors.New("temporarily unavailable")
	}
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.points += int64(len(pts))
	if s.values != nil {
		for _, p := range pts {
			v, _ := p.Value.Int64()
			s.values[v]++
		}
	}
	return nil
}

type passTransform struct{ keepEven bool }

func (t passTransform) Process(_ context.Context, in []Point) []Point {
	if !t.keepEven {
		return in
	}
	out := in[:0]
	for _, p := range in {
		if v, _ := p.Value.Int64(); v%2 == 0 {
			out = append(out, p)
		}
	}
	return out
}

func nodeCfg(kind ComponentKind, name string, c any, inputs ...string) *NodeConfig {
	return &NodeConfig{Kind: kind, Type: "test", Name: name, Component: c, Inputs: inputs, Env: &Env{},
		Buffer: BufferConfig{Type: "memory", MaxPoints: 10000, WhenFull: "block"}}
}

func run(t *testing.T, pc *PipelineConfig, ctx context.Context, drain time.Duration) (*Runtime, error) {
	t.Helper()
	rt, err := New([]*PipelineConfig{pc}, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	return rt, rt.Run(ctx, drain)
}

func TestFanOutAckWaitsForEverySink(t *testing.T) {
	src := &testSource{batches: 50, size: 100}
	a, b := &countSink{values: map[int64]int{}}, &countSink{values: map[int64]int{}}
	b.fail.Store(3) // b fails at first and is retried
	pc := &PipelineConfig{Name: "p", Nodes: []*NodeConfig{
		nodeCfg(KindSource, "s", src),
		nodeCfg(KindTransform, "even", passTransform{keepEven: true}, "source.s"),
		nodeCfg(KindSink, "a", a, "source.s"),
		nodeCfg(KindSink, "b", b, "transform.even"),
	}}
	rt, err := run(t, pc, context.Background(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := src.acks.Load(); got != 50 {
		t.Fatalf("acked batches = %d, want 50 (errors %d)", got, src.ackErrs.Load())
	}
	if a.points != 5000 || b.points != 2500 {
		t.Fatalf("sink a got %d (want 5000), b got %d (want 2500)", a.points, b.points)
	}
	for v := int64(0); v < 5000; v++ {
		if a.values[v] != 1 {
			t.Fatalf("sink a saw value %d %d times", v, a.values[v])
		}
		if want := 1 - int(v%2); b.values[v] != want {
			t.Fatalf("sink b saw value %d %d times, want %d", v, b.values[v], want)
		}
	}
	st := rt.Status()
	for _, c := range st.Pipelines[0].Components {
		if c.ID == "sink.b" && c.Delivered != 2500 {
			t.Fatalf("status delivered = %d", c.Delivered)
		}
	}
}

func TestAckMergesFirstError(t *testing.T) {
	var got []error
	b := NewBatch(GetPoints(1), func(err error) { got = append(got, err) })
	b.retain(2)
	c1, c2, c3 := b, b, b
	c1.Points, c2.Points = nil, nil
	boom := errors.New("boom")
	c1.Ack(nil)
	c2.Ack(boom)
	if len(got) != 0 {
		t.Fatal("done ran before the last holder acked")
	}
	c3.Ack(nil)
	if len(got) != 1 || got[0] != boom {
		t.Fatalf("done got %v, want [boom] once", got)
	}
}

func TestMemBufferPolicies(t *testing.T) {
	ctx := context.Background()
	mk := func(n int) Batch {
		p := GetPoints(n)
		for i := 0; i < n; i++ {
			p = append(p, Point{Tag: "t", Value: Int(int64(i))})
		}
		return Batch{Points: p}
	}
	for _, tc := range []struct {
		policy      string
		wantDropped int
		wantQueued  int64
	}{
		{"drop_newest", 10, 20},
		{"drop_oldest", 10, 20},
	} {
		dropped := 0
		m := newMemBuffer(BufferConfig{MaxPoints: 20, WhenFull: tc.policy}, func(n int) { dropped += n })
		for i := 0; i < 3; i++ {
			if err := m.Push(ctx, mk(10)); err != nil {
				t.Fatal(err)
			}
		}
		if dropped != tc.wantDropped || m.Stats().Points != tc.wantQueued {
			t.Fatalf("%s: dropped %d queued %d", tc.policy, dropped, m.Stats().Points)
		}
	}
	// block: the third push waits until a pop makes room, or its context ends.
	m := newMemBuffer(BufferConfig{MaxPoints: 20, WhenFull: "block"}, func(int) { t.Fatal("block must not drop") })
	m.Push(ctx, mk(10))
	m.Push(ctx, mk(10))
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := m.Push(short, mk(10)); err == nil {
		t.Fatal("push into a full blocking buffer returned without waiting")
	}
	done := make(chan error)
	go func() { done <- m.Push(ctx, mk(10)) }()
	time.Sleep(20 * time.Millisecond)
	if _, ok := m.TryPop(); !ok {
		t.Fatal("pop failed")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	m.CloseInput()
	n := 0
	for {
		if _, ok := m.Pop(ctx); !ok {
			break
		}
		n++
	}
	if n != 2 {
		t.Fatalf("popped %d batches after close, want 2", n)
	}
}

func TestLatencyHistogramQuantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.add(int64(i) * int64(time.Millisecond))
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}} {
		got := h.quantile(tc.q)
		if got < tc.want || float64(got) > float64(tc.want)*1.125 {
			t.Fatalf("q%.2f = %s, want within 12.5%% above %s", tc.q, got, tc.want)
		}
	}
	for d := int64(1); d < 1<<40; d = d*3 + 1 {
		i := bucketOf(d)
		if lo := bucketUpper(i - 1); i > 0 && d < lo || d >= bucketUpper(i) {
			t.Fatalf("%d not in bucket %d [%d,%d)", d, i, bucketUpper(i-1), bucketUpper(i))
		}
	}
}

// A sink far slower than its source must not let queued points grow: the
// source is held back instead. Runs 30 s by default.
func TestSlowSinkKeepsMemoryBounded(t *testing.T) {
	t.Parallel()
	dur := 30 * time.Second
	if testing.Short() {
		dur = 5 * time.Second
	}
	const size, queue, maxPoints = 500, 4, 5000
	src := &testSource{batches: -1, size: size}
	sink := &countSink{delay: 20 * time.Millisecond}
	pc := &PipelineConfig{Name: "slow", QueueSize: queue, Nodes: []*NodeConfig{
		nodeCfg(KindSource, "s", src),
		nodeCfg(KindTransform, "t", passTransform{}, "source.s"),
		nodeCfg(KindSink, "slow", sink, "transform.t"),
	}}
	pc.Nodes[2].Buffer.MaxPoints = maxPoints
	rt, err := New([]*PipelineConfig{pc}, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var peak int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			var queued int64
			for _, n := range rt.pipelines[0].nodes {
				if n.in != nil {
					queued += int64(len(n.in)) * size
				}
				if n.buf != nil {
					queued += n.buf.Stats().Points
				}
			}
			peak = max(peak, queued)
		}
	}()
	if err := rt.Run(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	// Two channels of `queue` batches, the buffer, and one batch in flight at
	// each stage.
	bound := int64(2*queue*size + maxPoints + 3*size)
	if peak > bound {
		t.Fatalf("peak queued points %d exceed the bound %d", peak, bound)
	}
	if src.emitted.Load() > sink.points+bound {
		t.Fatalf("source emitted %d but the sink took only %d: more queued than the bound %d", src.emitted.Load(), sink.points, bound)
	}
	if sink.points == 0 {
		t.Fatal("the sink received nothing")
	}
	t.Logf("emitted %d, delivered %d, peak queued %d (bound %d)", src.emitted.Load(), sink.points, peak, bound)
}

// When the drain deadline cuts delivery short, every point is either
// delivered or counted as dropped, and the source hears an error.
func TestDrainDeadlineCountsEveryPoint(t *testing.T) {
	src := &testSource{batches: -1, size: 100}
	sink := &countSink{delay: 50 * time.Millisecond}
	pc := &PipelineConfig{Name: "p", QueueSize: 4, Nodes: []*NodeConfig{
		nodeCfg(KindSource, "s", src),
		nodeCfg(KindSink, "k", sink, "source.s"),
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	rt, err := run(t, pc, ctx, 100*time.Millisecond)
	if err == nil {
		t.Log("drained within the deadline")
	}
	tot := rt.Totals()
	if tot.In != tot.Delivered+tot.Dropped {
		t.Fatalf("in %d != delivered %d + dropped %d", tot.In, tot.Delivered, tot.Dropped)
	}
	if int64(src.acks.Load()+src.ackErrs.Load())*100 != tot.In {
		t.Fatalf("acks %d + nacks %d batches do not cover %d points", src.acks.Load(), src.ackErrs.Load(), tot.In)
	}
}

// rejectAckSource dead-letters its points with RejectAck and records what
// the dead-letter sink held when done ran.
type rejectAckSource struct {
	env      *Env
	dead     *countSink
	heldAt   int64
	doneErr  error
	doneRuns atomic.Int32
}

func (s *rejectAckSource) Run(ctx context.Context, _ Output) error {
	pts := GetPoints(10)
	for i := range 10 {
		pts = append(pts, Point{Tag: "t", Value: Int(int64(i)), TS: 1})
	}
	ch := make(chan struct{})
	s.env.RejectAck(pts, "decode", errors.New("bad"), func(err error) {
		s.dead.mu.Lock()
		s.heldAt = s.dead.points
		s.dead.mu.Unlock()
		s.doneErr = err
		s.doneRuns.Add(1)
		close(ch)
	})
	select {
	case <-ch:
	case <-ctx.Done():
	}
	return nil
}

// RejectAck's callback runs only once the dead-letter sink has written the
// points (after its retries), not when they are handed over.
func TestRejectAckWaitsForDeadLetterSink(t *testing.T) {
	dead := &countSink{delay: 50 * time.Millisecond}
	dead.fail.Store(2)
	env := &Env{}
	src := &rejectAckSource{env: env, dead: dead}
	sn := nodeCfg(KindSource, "s", src)
	sn.Env = env
	out := &countSink{}
	pc := &PipelineConfig{Name: "p", DeadLetter: "dead", Nodes: []*NodeConfig{
		sn, nodeCfg(KindSink, "out", out, "source.s"), nodeCfg(KindSink, "dead", dead),
	}}
	if _, err := run(t, pc, context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if src.doneRuns.Load() != 1 || src.doneErr != nil {
		t.Fatalf("done ran %d times, err %v", src.doneRuns.Load(), src.doneErr)
	}
	if src.heldAt != 10 {
		t.Fatalf("done ran when the dead-letter sink held %d points, want all 10", src.heldAt)
	}
}
