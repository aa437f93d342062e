package window

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
)

// stepSource emits one batch per value sent on next, recording each outcome.
type stepSource struct {
	next  chan engine.Point
	acked [8]atomic.Bool
}

func (s *stepSource) Run(ctx context.Context, out engine.Output) error {
	for i := 0; ; i++ {
		select {
		case p := <-s.next:
			pts := append(engine.GetPoints(1), p)
			if err := out.Emit(ctx, pts, func(err error) {
				if err == nil {
					s.acked[i].Store(true)
				}
			}); err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		}
	}
}

type recSink struct {
	mu  sync.Mutex
	got []engine.Point
}

func (s *recSink) Write(_ context.Context, pts []engine.Point) error {
	s.mu.Lock()
	s.got = append(s.got, pts...)
	s.mu.Unlock()
	return nil
}

// runWindow runs stepSource → window (count per minute, max_tags) → recSink;
// stop drains the pipeline and returns how it ended.
func runWindow(t *testing.T, maxTags int) (*stepSource, *recSink, *engine.Runtime, func() error) {
	t.Helper()
	env := &engine.Env{}
	tr, err := New(&Config{Size: time.Minute, Aggregates: []string{"count"}, Late: "drop", IdleTimeout: time.Hour, MaxTags: maxTags}, env)
	if err != nil {
		t.Fatal(err)
	}
	src := &stepSource{next: make(chan engine.Point)}
	sink := &recSink{}
	buf := engine.BufferConfig{Type: "memory", MaxPoints: 1000, WhenFull: "block"}
	pc := &engine.PipelineConfig{Name: "p", Nodes: []*engine.NodeConfig{
		{Kind: engine.KindSource, Name: "s", Component: src, Env: &engine.Env{}},
		{Kind: engine.KindTransform, Name: "w", Component: tr, Inputs: []string{"source.s"}, Env: env},
		{Kind: engine.KindSink, Name: "out", Component: sink, Inputs: []string{"transform.w"}, Env: &engine.Env{}, Buffer: buf},
	}}
	rt, err := engine.New([]*engine.PipelineConfig{pc}, engine.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx, 5*time.Second) }()
	return src, sink, rt, func() error { cancel(); return <-done }
}

// The inputs of an open window are acknowledged upstream only once the
// aggregate that folded them is delivered.
func TestInputsAckedWithTheirAggregate(t *testing.T) {
	src, sink, _, stop := runWindow(t, 10)
	min := int64(time.Minute)
	src.next <- engine.Point{Asset: "a", Tag: "x", Value: engine.Int(1), TS: 10 * min}
	src.next <- engine.Point{Asset: "a", Tag: "x", Value: engine.Int(2), TS: 10*min + 1e9}
	time.Sleep(100 * time.Millisecond)
	if src.acked[0].Load() || src.acked[1].Load() {
		t.Fatal("points of an open window were acknowledged upstream")
	}
	// A point of the next window closes the first: its aggregate is delivered,
	// and with it the two inputs are acknowledged.
	src.next <- engine.Point{Asset: "a", Tag: "x", Value: engine.Int(3), TS: 11 * min}
	deadline := time.Now().Add(5 * time.Second)
	for !(src.acked[0].Load() && src.acked[1].Load()) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !src.acked[0].Load() || !src.acked[1].Load() {
		t.Fatal("inputs not acknowledged after their window's aggregate was delivered")
	}
	if src.acked[2].Load() {
		t.Fatal("the open second window's input was acknowledged")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// The drain closes the second window; its input is then acknowledged.
	if !src.acked[2].Load() {
		t.Fatal("the last window's input was not acknowledged after the drain delivered it")
	}
	if len(sink.got) != 2 {
		t.Fatalf("sink got %d aggregates, want 2", len(sink.got))
	}
}

// A point of a new tag beyond max_tags passes as it is and is acknowledged
// upstream once the sink took it, not held with any window, not lost; the
// tracked tag's input still waits for its aggregate.
func TestUntrackedPointAckedOnDelivery(t *testing.T) {
	src, sink, rt, stop := runWindow(t, 1)
	min := int64(time.Minute)
	src.next <- engine.Point{Asset: "a", Tag: "x", Value: engine.Int(1), TS: 10 * min}
	src.next <- engine.Point{Asset: "a", Tag: "y", Value: engine.Int(2), TS: 10 * min}
	deadline := time.Now().Add(5 * time.Second)
	for !src.acked[1].Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !src.acked[1].Load() {
		t.Fatal("the untracked point was not acknowledged after its delivery")
	}
	if src.acked[0].Load() {
		t.Fatal("the open window's input was acknowledged")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !src.acked[0].Load() {
		t.Fatal("the window's input was not acknowledged after the drain delivered its aggregate")
	}
	got := map[string]int64{}
	for _, p := range sink.got {
		got[p.Tag], _ = p.Value.Int64()
	}
	if len(sink.got) != 2 || got["y"] != 2 || got["x_count"] != 1 {
		t.Fatalf("sink got %+v, want y as it was and x_count", sink.got)
	}
	st := rt.Status().Pipelines[0]
	for _, c := range st.Components {
		if c.ID == "transform.w" && (c.Received != 2 || c.Emitted != 2 || c.Filtered != 1) {
			t.Errorf("window counts: received %d, emitted %d, filtered %d; want 2, 2, 1", c.Received, c.Emitted, c.Filtered)
		}
	}
}
