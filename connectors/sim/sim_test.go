package sim

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/flowd/flowd/engine"
)

// collect is an Output that keeps what the source emits.
type collect struct {
	mu  sync.Mutex
	pts []engine.Point
}

func (c *collect) Emit(_ context.Context, points []engine.Point, done func(error)) error {
	c.mu.Lock()
	c.pts = append(c.pts, points...)
	c.mu.Unlock()
	engine.PutPoints(points)
	if done != nil {
		done(nil)
	}
	return nil
}

func run(t *testing.T, cfg Config, shard engine.Shard) []engine.Point {
	t.Helper()
	env := &engine.Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Shard: shard}
	src, err := New(&cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	out := &collect{}
	if err := src.Run(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	return out.pts
}

func baseConfig() Config {
	return Config{Assets: 10, Tags: 3, Interval: 1, ChangeRatio: 1, Seed: 1, AssetPrefix: "line", BatchSize: 7, Count: 300, Fast: true}
}

func TestShardsSplitAssets(t *testing.T) {
	all := map[string]int{}
	for i := 0; i < 3; i++ {
		shard := engine.Shard{Index: i, Count: 3}
		cfg := baseConfig()
		g := NewShardGenerator(cfg, shard)
		cfg.Count = int64(g.PointsPerStep() * 5) // five samples of each owned tag
		pts := run(t, cfg, shard)
		seen := map[string]bool{}
		for _, p := range pts {
			if !shard.Owns(p.Asset) {
				t.Fatalf("shard %v emitted %s, which it does not own", shard, p.Asset)
			}
			seen[p.Asset] = true
		}
		for a := range seen {
			all[a]++
		}
		if len(pts) != int(cfg.Count) {
			t.Fatalf("shard %v: %d points, want %d", shard, len(pts), cfg.Count)
		}
	}
	if len(all) != 10 {
		t.Fatalf("the shards together read %d of 10 assets: %v", len(all), all)
	}
	for a, n := range all {
		if n != 1 {
			t.Fatalf("%s read by %d shards", a, n)
		}
	}
}

func TestUnshardedReadsAll(t *testing.T) {
	pts := run(t, baseConfig(), engine.Shard{})
	seen := map[string]bool{}
	for _, p := range pts {
		seen[p.Asset] = true
	}
	if len(pts) != 300 || len(seen) != 10 {
		t.Fatalf("%d points over %d assets, want 300 over 10", len(pts), len(seen))
	}
}

func BenchmarkGeneratorFill(b *testing.B) {
	g := NewGenerator(baseConfig())
	per := g.PointsPerStep()
	buf := make([]engine.Point, 0, per)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = g.Fill(buf[:0], 0, per, int64(i))
		g.Advance()
	}
	b.ReportMetric(float64(per*b.N)/b.Elapsed().Seconds(), "points/s")
}
