package sim

import (
	"context"
	"io"
	"log/slog"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/gopcua/opcua/ua"
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

// bad_ratio and uncertain_ratio make about that share of the samples bad or
// uncertain with their OPC UA status (named as gopcua names them); the
// values of a seed do not change.
func TestQualityRatios(t *testing.T) {
	base := Config{Assets: 4, Tags: 7, Interval: time.Second, ChangeRatio: 1, Seed: 3, AssetPrefix: "asset", BatchSize: 1000, Count: 28000, Fast: true}
	withBad := base
	withBad.BadRatio, withBad.Uncertain = 0.1, 0.05
	plain, mixed := run(t, base, engine.Shard{}), run(t, withBad, engine.Shard{})
	if len(plain) != len(mixed) {
		t.Fatalf("%d and %d points", len(plain), len(mixed))
	}
	counts := map[engine.Quality]int{}
	for i, p := range mixed {
		counts[p.Quality]++
		if p.Tag != plain[i].Tag || p.Asset != plain[i].Asset {
			t.Fatalf("point %d: %s/%s, want %s/%s", i, p.Asset, p.Tag, plain[i].Asset, plain[i].Tag)
		}
		want := map[engine.Quality]string{engine.Bad: "StatusBadSensorFailure", engine.Uncertain: "StatusUncertainLastUsableValue"}[p.Quality]
		if got := ua.StatusCodes[ua.StatusCode(p.Status)].Name; p.Quality != engine.Good && got != want || p.Quality == engine.Good && p.Status != 0 {
			t.Fatalf("point %d: quality %s with status %#x (%s), want %s", i, p.Quality, p.Status, got, want)
		}
		if engine.QualityFromStatus(p.Status) != p.Quality {
			t.Fatalf("point %d: status %#x does not map to quality %s", i, p.Status, p.Quality)
		}
	}
	// Binomial: n = 28000, 4.5 standard deviations either way.
	for q, share := range map[engine.Quality]float64{engine.Bad: 0.1, engine.Uncertain: 0.05} {
		n := float64(len(mixed))
		mean, sd := n*share, math.Sqrt(n*share*(1-share))
		if got := float64(counts[q]); math.Abs(got-mean) > 4.5*sd {
			t.Errorf("%d %s points of %d, want about %.0f", counts[q], q, len(mixed), mean)
		}
	}
	for _, p := range plain {
		if p.Quality != engine.Good || p.Status != 0 {
			t.Fatalf("without ratios, a %s point (status %#x)", p.Quality, p.Status)
		}
	}
	bad := base
	bad.BadRatio, bad.Uncertain = 0.7, 0.4
	if _, err := New(&bad, &engine.Env{}); err == nil {
		t.Error("bad_ratio + uncertain_ratio > 1 accepted")
	}
}
