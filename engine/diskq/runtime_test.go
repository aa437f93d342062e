package diskq_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/diskq"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// ackSource emits batches of 100 points and counts their acknowledgements.
type ackSource struct {
	batches int
	acked   atomic.Int64
}

func (s *ackSource) Run(ctx context.Context, out engine.Output) error {
	for i := 0; i < s.batches; i++ {
		pts := engine.GetPoints(100)
		for j := 0; j < 100; j++ {
			pts = append(pts, engine.Point{Tag: "t", Value: engine.Int(int64(i*100 + j)), TS: time.Now().UnixNano()})
		}
		if err := out.Emit(ctx, pts, func(err error) {
			if err == nil {
				s.acked.Add(1)
			}
		}); err != nil {
			return err
		}
	}
	<-ctx.Done() // stay up until stopped
	return nil
}

// sink fails every write while down and records what it takes.
type sink struct {
	down bool
	got  []int64
}

func (s *sink) Write(_ context.Context, pts []engine.Point) error {
	if s.down {
		return errors.New("unavailable")
	}
	for _, p := range pts {
		v, _ := p.Value.Int64()
		s.got = append(s.got, v)
	}
	return nil
}

func runtime(t *testing.T, src engine.Source, snk engine.Sink, dir string) *engine.Runtime {
	t.Helper()
	buf := engine.BufferConfig{Type: "disk", MaxSize: 1 << 30, WhenFull: "block", Fsync: "batch", Dir: dir}
	pc := &engine.PipelineConfig{Name: "p", Nodes: []*engine.NodeConfig{
		{Kind: engine.KindSource, Name: "src", Component: src, Env: &engine.Env{}},
		{Kind: engine.KindSink, Name: "out", Component: snk, Inputs: []string{"source.src"}, Env: &engine.Env{Logger: quiet}, Buffer: buf},
	}}
	rt, err := engine.New([]*engine.PipelineConfig{pc}, engine.Options{Logger: quiet, NewDiskBuffer: diskq.NewBuffer})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// A source's data is acknowledged once it is in the sink's disk buffer, not
// when delivered; what the buffer holds at shutdown is neither dropped nor
// lost, and the next run delivers it.
func TestSourceAckedOnceOnDiskAndBacklogSurvivesShutdown(t *testing.T) {
	dir := t.TempDir()
	src := &ackSource{batches: 50}
	rt := runtime(t, src, &sink{down: true}, dir)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx, 300*time.Millisecond) }()
	deadline := time.Now().Add(20 * time.Second)
	for src.acked.Load() < 50 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := src.acked.Load(); n != 50 {
		t.Fatalf("%d of 50 batches acknowledged while the sink is down", n)
	}
	if tot := rt.Totals(); tot.Delivered != 0 || tot.Backlog != 5000 {
		t.Fatalf("totals during the outage: %+v", tot)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown with the backlog on disk: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown waited on a sink that is down although its backlog is on disk")
	}
	if tot := rt.Totals(); tot.Dropped != 0 {
		t.Fatalf("shutdown counted %d buffered points as dropped", tot.Dropped)
	}

	up := &sink{}
	rt = runtime(t, &ackSource{}, up, dir)
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go func() { done <- rt.Run(ctx, 5*time.Second) }()
	deadline = time.Now().Add(20 * time.Second)
	for rt.Totals().Delivered < 5000 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(up.got) != 5000 {
		t.Fatalf("next run delivered %d of 5000", len(up.got))
	}
	for i, v := range up.got {
		if v != int64(i) {
			t.Fatalf("point %d is %d: out of order", i, v)
		}
	}
}

// A configuration that fails to build releases the disk buffers it opened.
func TestFailedBuildReleasesDiskBuffers(t *testing.T) {
	dir := t.TempDir()
	buf := engine.BufferConfig{Type: "disk", MaxSize: 1 << 20, WhenFull: "block", Fsync: "batch", Dir: dir}
	pc := &engine.PipelineConfig{Name: "p", Nodes: []*engine.NodeConfig{
		{Kind: engine.KindSource, Name: "src", Component: &ackSource{}, Env: &engine.Env{}},
		{Kind: engine.KindSink, Name: "out", Component: &sink{}, Inputs: []string{"source.src"}, Env: &engine.Env{Logger: quiet}, Buffer: buf},
		{Kind: engine.KindSink, Name: "bad", Component: &sink{}, Inputs: []string{"source.missing"}, Env: &engine.Env{Logger: quiet}},
	}}
	if _, err := engine.New([]*engine.PipelineConfig{pc}, engine.Options{Logger: quiet, NewDiskBuffer: diskq.NewBuffer}); err == nil {
		t.Fatal("a pipeline with an unknown input was built")
	}
	q, err := diskq.Open(diskq.Options{Dir: dir, Logger: quiet})
	if err != nil {
		t.Fatalf("the failed build kept the buffer locked: %v", err)
	}
	q.Close()
}
