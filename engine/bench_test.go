package engine_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/flowd/flowd/connectors/sim"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/sinks/discard"
)

// replaySource emits copies of one pre-generated batch, so the benchmark
// measures the engine, not value generation.
type replaySource struct {
	batch []engine.Point
	total int
}

func (s *replaySource) Run(ctx context.Context, out engine.Output) error {
	for sent := 0; sent < s.total; sent += len(s.batch) {
		pts := append(engine.GetPoints(len(s.batch)), s.batch...)
		if err := out.Emit(ctx, pts, nil); err != nil {
			return err
		}
	}
	return nil
}

type nopTransform struct{}

func (nopTransform) Process(_ context.Context, in []engine.Point) []engine.Point { return in }

// asyncDiscard settles every write at once from its own goroutine, as a
// promise would: the cost of the pipelined write path without a broker.
type asyncDiscard struct{ discard.Sink }

func (asyncDiscard) MaxInFlight() int { return 4 }

func (asyncDiscard) WriteAsync(_ context.Context, _ []engine.Point, settle func(error)) {
	go settle(nil)
}

func benchPipeline(b *testing.B, src engine.Source, withTransform bool) {
	benchPipelineWith(b, src, withTransform, discard.Sink{}, nil)
}

func benchPipelineTo(b *testing.B, src engine.Source, withTransform bool, sink engine.Sink) {
	benchPipelineWith(b, src, withTransform, sink, nil)
}

func benchPipelineTap(b *testing.B, src engine.Source, withTransform bool, tap *engine.TapConfig) {
	benchPipelineWith(b, src, withTransform, discard.Sink{}, tap)
}

func benchPipelineWith(b *testing.B, src engine.Source, withTransform bool, sink engine.Sink, tap *engine.TapConfig) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	buf := engine.BufferConfig{Type: "memory", MaxPoints: 100000, WhenFull: "block"}
	nodes := []*engine.NodeConfig{{Kind: engine.KindSource, Name: "src", Component: src, Env: &engine.Env{}}}
	input := "source.src"
	if withTransform {
		nodes = append(nodes, &engine.NodeConfig{Kind: engine.KindTransform, Name: "t", Component: nopTransform{}, Inputs: []string{input}, Env: &engine.Env{}})
		input = "transform.t"
	}
	nodes = append(nodes, &engine.NodeConfig{Kind: engine.KindSink, Name: "null", Component: sink, Inputs: []string{input}, Env: &engine.Env{}, Buffer: buf})
	rt, err := engine.New([]*engine.PipelineConfig{{Name: "bench", Nodes: nodes}}, engine.Options{Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	if tap != nil {
		h, err := rt.Tap(*tap)
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if err := rt.Run(context.Background(), time.Minute); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if got := rt.Totals().Delivered; got < int64(b.N) {
		b.Fatalf("delivered %d of %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "points/s")
}

func template(n int) []engine.Point {
	g := sim.NewGenerator(sim.Config{Assets: 10, Tags: 100, ChangeRatio: 1, Seed: 1, AssetPrefix: "asset"})
	return g.Fill(nil, 0, n, time.Now().UnixNano())
}

// BenchmarkEngineOverhead: one op is one point through source → sink at
// batches of 1,000 (run with -cpu 1 for the one-core figure).
func BenchmarkEngineOverhead(b *testing.B) {
	benchPipeline(b, &replaySource{batch: template(1000), total: b.N}, false)
}

// BenchmarkEngineOverheadTransform adds a pass-through transform stage.
func BenchmarkEngineOverheadTransform(b *testing.B) {
	benchPipeline(b, &replaySource{batch: template(1000), total: b.N}, true)
}

// BenchmarkEngineOverheadAsync: the pipelined write path (max_in_flight 4),
// settled from another goroutine.
func BenchmarkEngineOverheadAsync(b *testing.B) {
	benchPipelineTo(b, &replaySource{batch: template(1000), total: b.N}, false, asyncDiscard{})
}

// BenchmarkSimToDiscard: the sim source generating values, one point per op.
func BenchmarkSimToDiscard(b *testing.B) {
	src, err := sim.New(&sim.Config{Assets: 10, Tags: 100, Interval: time.Millisecond, ChangeRatio: 0.5, Seed: 1,
		AssetPrefix: "asset", BatchSize: 1000, Count: int64(b.N), Fast: true}, &engine.Env{})
	if err != nil {
		b.Fatal(err)
	}
	benchPipeline(b, src, false)
}

// BenchmarkEngineSmallBatches: one point per op at batches of 10, where the
// per-batch cost (and the tap hook, one atomic load per batch and node) shows
// most. Compare with the same benchmark before the tap hook existed.
func BenchmarkEngineSmallBatches(b *testing.B) {
	benchPipeline(b, &replaySource{batch: template(10), total: b.N}, true)
}

// BenchmarkEngineSmallBatchesTapped: the same, with every component tapped
// at the default rate limit (100 points per 500 ms) into a discarding reader.
func BenchmarkEngineSmallBatchesTapped(b *testing.B) {
	benchPipelineTap(b, &replaySource{batch: template(10), total: b.N}, true, &engine.TapConfig{
		Emit: func(string, string, *engine.Point) bool { return true },
	})
}
