package cov

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
)

// onceSource emits its points as one batch and records the outcome.
type onceSource struct {
	pts     []engine.Point
	outcome atomic.Pointer[error]
}

func (s *onceSource) Run(ctx context.Context, out engine.Output) error {
	pts := append(engine.GetPoints(len(s.pts)), s.pts...)
	if err := out.Emit(ctx, pts, func(err error) { s.outcome.Store(&err) }); err != nil {
		return err
	}
	<-ctx.Done() // a broker source stays connected until shutdown
	return nil
}

// gateSink fails every write while down, and records what it took.
type gateSink struct {
	down atomic.Bool
	mu   sync.Mutex
	got  []engine.Point
}

func (s *gateSink) Write(_ context.Context, pts []engine.Point) error {
	if s.down.Load() {
		return errors.New("down")
	}
	s.mu.Lock()
	s.got = append(s.got, pts...)
	s.mu.Unlock()
	return nil
}

func (s *gateSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// runOnce runs source → cov (state file in dir) → sink until the sink took
// want points or the deadline, then shuts down with a short drain.
func runOnce(t *testing.T, dir string, src *onceSource, sink *gateSink, want int, wait time.Duration) {
	t.Helper()
	env := &engine.Env{DataDir: dir}
	tr, err := New(&Config{Mode: "absolute", MaxTags: 100, StateTTL: time.Hour, StateFile: "cov.jsonl", StateSave: time.Millisecond}, env)
	if err != nil {
		t.Fatal(err)
	}
	buf := engine.BufferConfig{Type: "memory", MaxPoints: 1000, WhenFull: "block"}
	pc := &engine.PipelineConfig{Name: "p", Nodes: []*engine.NodeConfig{
		{Kind: engine.KindSource, Name: "s", Component: src, Env: &engine.Env{}},
		{Kind: engine.KindTransform, Name: "cov", Component: tr, Inputs: []string{"source.s"}, Env: env},
		{Kind: engine.KindSink, Name: "out", Component: sink, Inputs: []string{"transform.cov"}, Env: &engine.Env{}, Buffer: buf},
	}}
	rt, err := engine.New([]*engine.PipelineConfig{pc}, engine.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx, 200*time.Millisecond) }()
	deadline := time.Now().Add(wait)
	for sink.count() < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}

// A change cov passed but no sink acknowledged is not committed: after a
// restart, the source's redelivery of it passes again.
func TestUnacknowledgedChangeIsNotCommitted(t *testing.T) {
	dir := t.TempDir()
	pts := []engine.Point{{Asset: "a", Tag: "x", Value: engine.Float(10), TS: 1e9}}
	sink := &gateSink{}
	sink.down.Store(true)
	src := &onceSource{pts: pts}
	runOnce(t, dir, src, sink, 1, 300*time.Millisecond)
	if p := src.outcome.Load(); p == nil || *p == nil {
		t.Fatal("the source heard success for a point no sink took")
	}
	// The source (a broker) sends the unacknowledged point again.
	sink.down.Store(false)
	src = &onceSource{pts: pts}
	runOnce(t, dir, src, sink, 1, 5*time.Second)
	if sink.count() != 1 {
		t.Fatalf("after the restart the sink got %d points, want the redelivered change", sink.count())
	}
	if p := src.outcome.Load(); p == nil || *p != nil {
		t.Fatalf("outcome %v, want delivered", p)
	}
	// Now it is committed: a third run drops the same value.
	src = &onceSource{pts: pts}
	runOnce(t, dir, src, sink, 2, 300*time.Millisecond)
	if sink.count() != 1 {
		t.Fatalf("an acknowledged, unchanged value passed again after a restart (%d points)", sink.count())
	}
}

// neverSink never connects.
type neverSink struct{ gateSink }

func (*neverSink) Connect(context.Context) error { return errors.New("unreachable") }

// cov waits at close for the sinks to settle what it passed; a sink that
// never connects must not hold the shutdown past the drain deadline.
func TestCloseDoesNotOutwaitTheDrainDeadline(t *testing.T) {
	env := &engine.Env{DataDir: t.TempDir()}
	tr, err := New(&Config{Mode: "absolute", MaxTags: 100, StateTTL: time.Hour, StateFile: "cov.jsonl"}, env)
	if err != nil {
		t.Fatal(err)
	}
	src := &onceSource{pts: []engine.Point{{Asset: "a", Tag: "x", Value: engine.Float(1), TS: 1}}}
	buf := engine.BufferConfig{Type: "memory", MaxPoints: 1000, WhenFull: "block"}
	pc := &engine.PipelineConfig{Name: "p", Nodes: []*engine.NodeConfig{
		{Kind: engine.KindSource, Name: "s", Component: src, Env: &engine.Env{}},
		{Kind: engine.KindTransform, Name: "cov", Component: tr, Inputs: []string{"source.s"}, Env: env},
		{Kind: engine.KindSink, Name: "out", Component: &neverSink{}, Inputs: []string{"transform.cov"}, Env: &engine.Env{}, Buffer: buf},
	}}
	rt, err := engine.New([]*engine.PipelineConfig{pc}, engine.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	rt.Run(ctx, 200*time.Millisecond)
	// Not a timing benchmark: 5 s separates the drain deadline from the
	// 10 s close timeout the transform would otherwise wait out.
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %s", d)
	}
	if p := src.outcome.Load(); p == nil || *p == nil {
		t.Fatal("the undelivered point was not reported as such")
	}
}

// A newer report fails while an older one is still in flight; the older one
// is then delivered. cov must compare the next point with what the sink now
// holds (the older report), not with the value committed before both.
func TestOlderReportDeliveredAfterNewerFailed(t *testing.T) {
	tr, err := New(&Config{Deadband: 0.5, Mode: "absolute", MaxTags: 10, StateTTL: time.Hour}, &engine.Env{})
	if err != nil {
		t.Fatal(err)
	}
	c := tr.(*Transform)
	// send passes one point as Process does in a running pipeline and
	// returns its batch awaiting the sinks (nil when cov held it back).
	send := func(v float64, ts int64) *pending {
		p := engine.Point{Asset: "a", Tag: "x", Value: engine.Float(v), TS: ts}
		e, ok := c.pass(&p)
		if !ok {
			return nil
		}
		pb := c.newPending()
		pb.reps = append(pb.reps, report{e: e, seq: e.seq, v: p.Value, q: p.Quality, ts: p.TS})
		c.outstanding.Add(1)
		return pb
	}
	send(10, 1).settle(nil)
	c.apply()
	older, newer := send(20, 2), send(30, 3)
	newer.settle(errors.New("write failed"))
	c.apply()
	older.settle(nil)
	c.apply()
	if send(10.2, 4) == nil {
		t.Fatal("10.2 was held back, but the sink holds 20")
	}
}
