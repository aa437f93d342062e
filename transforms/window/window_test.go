package window

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/transforms/internal/benchcpu"
	"github.com/flowd/flowd/transforms/internal/golden"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func build(t testing.TB, c Config) *Transform {
	t.Helper()
	if c.Late == "" {
		c.Late = "drop"
	}
	if c.MaxTags == 0 {
		c.MaxTags = 1000
	}
	tr, err := New(&c, &engine.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.(*Transform)
}

func TestGolden(t *testing.T) { golden.Run(t) }

func show(pts []engine.Point) string {
	s := ""
	for _, p := range pts {
		s += fmt.Sprintf("%s/%s@%d=%v ", p.Asset, p.Tag, p.TS/1e9, p.Value)
	}
	return s
}

func TestIdleAndFinalFlush(t *testing.T) {
	tr := build(t, Config{Size: 10 * time.Second, Aggregates: []string{"count"}, IdleTimeout: time.Minute})
	clock := int64(0)
	tr.now = func() int64 { return clock }
	ctx := context.Background()
	tr.Process(ctx, []engine.Point{{Tag: "a", Value: engine.Int(1), TS: 1e9}, {Tag: "b", Value: engine.Int(1), TS: 2e9}})
	clock = int64(30 * time.Second)
	tr.Process(ctx, []engine.Point{{Tag: "b", Value: engine.Int(1), TS: 3e9}})
	if out := tr.Flush(ctx, false); len(out) != 0 {
		t.Fatalf("nothing is idle yet: %s", show(out))
	}
	clock = int64(70 * time.Second) // a idle for 70s, b for 40s
	if got := show(tr.Flush(ctx, false)); got != "/a_count@0=1 " {
		t.Fatalf("idle flush: %s", got)
	}
	if got := show(tr.Flush(ctx, true)); got != "/b_count@0=2 " {
		t.Fatalf("final flush: %s", got)
	}
	if got := tr.Flush(ctx, true); len(got) != 0 {
		t.Fatalf("a window was emitted twice: %s", show(got))
	}
	// Closed and idle tags are forgotten: memory follows the active tags.
	clock = int64(200 * time.Second)
	tr.Flush(ctx, false)
	if len(tr.state) != 0 {
		t.Fatalf("%d idle tags kept", len(tr.state))
	}
}

func TestAlignmentAndNegativeTS(t *testing.T) {
	tr := build(t, Config{Size: time.Minute})
	for _, c := range []struct{ ts, start int64 }{
		{0, 0}, {59e9, 0}, {60e9, 60e9}, {-1, -60e9}, {-60e9, -60e9}, {-61e9, -120e9},
	} {
		if got := tr.windowStart(c.ts); got != c.start {
			t.Errorf("windowStart(%d) = %d, want %d", c.ts, got, c.start)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg   Config
		field string
	}{
		{Config{Size: 0}, "size"},
		{Config{Size: time.Second, Aggregates: []string{"median"}}, "aggregates"},
		{Config{Size: time.Second, Aggregates: []string{"avg", "avg"}}, "aggregates"},
		{Config{Size: time.Second, Aggregates: []string{"avg", "max"}, KeepTag: true}, "keep_tag"},
		{Config{Size: time.Second, MaxTags: -1}, "max_tags"},
		{Config{Size: time.Second, MaxTags: maxTags + 1}, "max_tags"},
	} {
		if c.cfg.MaxTags == 0 {
			c.cfg.MaxTags = 1000
		}
		if _, err := New(&c.cfg, &engine.Env{}); err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: %v, want an error about %s", c.cfg, err, c.field)
		}
	}
	if _, err := New(&Config{Size: time.Second, MaxTags: maxTags}, &engine.Env{}); err != nil {
		t.Errorf("max_tags at its limit: %v", err)
	}
}

// At most max_tags (asset, tag) pairs are tracked: a point of a new tag
// beyond them passes as it is, counted in flowd_window_untracked_total, while
// the tracked tags aggregate on; a tag forgotten once its window closed idle
// frees its place.
func TestMaxTagsBoundsTheState(t *testing.T) {
	tr := build(t, Config{Size: 10 * time.Second, Aggregates: []string{"count"}, IdleTimeout: time.Minute, MaxTags: 2})
	clock := int64(0)
	tr.now = func() int64 { return clock }
	ctx := context.Background()
	p := func(tag string, sec int64) engine.Point {
		return engine.Point{Asset: "a", Tag: tag, Value: engine.Int(sec), TS: sec * 1e9}
	}
	if out := tr.Process(ctx, []engine.Point{p("x", 1), p("y", 1), p("new1", 1)}); show(out) != "a/new1@1=1 " {
		t.Fatalf("a new tag beyond max_tags: %s, want it passed as it is", show(out))
	}
	// An ever-new tag name per point (a misbehaving source) keeps the state
	// at max_tags; every such point passes, none is lost.
	in := make([]engine.Point, 10_000)
	for i := range in {
		in[i] = p(fmt.Sprintf("gen%d", i), 2)
	}
	if out := tr.Process(ctx, in); len(out) != len(in) || out[9999].Tag != "gen9999" {
		t.Fatalf("%d of %d points of new tags passed", len(out), len(in))
	}
	if len(tr.state) > 2 || tr.count != 2 {
		t.Fatalf("state holds %d entries (count %d), max_tags 2", len(tr.state), tr.count)
	}
	if got := testutil.ToFloat64(tr.untracked); got != 10_001 {
		t.Fatalf("flowd_window_untracked_total %v, want 10001", got)
	}
	if got := testutil.ToFloat64(tr.tags); got != 2 {
		t.Fatalf("flowd_window_tags %v, want 2", got)
	}
	// The tracked tags aggregate as before.
	if got := show(tr.Process(ctx, []engine.Point{p("x", 3), p("x", 12), p("y", 13)})); got != "a/x_count@0=2 a/y_count@0=1 " {
		t.Fatalf("tracked tags: %s", got)
	}
	// x idle: its window closes, and a later flush forgets it; a new tag
	// then takes its place.
	clock = int64(2 * time.Minute)
	tr.Process(ctx, []engine.Point{p("y", 14)})
	if got := show(tr.Flush(ctx, false)); got != "a/x_count@10=1 " {
		t.Fatalf("idle flush: %s", got)
	}
	tr.Flush(ctx, false)
	if out := tr.Process(ctx, []engine.Point{p("z", 20)}); len(out) != 0 || tr.count != 2 {
		t.Fatalf("a new tag after one was forgotten: passed %s, count %d", show(out), tr.count)
	}
	if got := show(tr.Flush(ctx, true)); got != "a/y_count@10=2 a/z_count@20=1 " {
		t.Fatalf("final flush: %s", got)
	}
}

// batch: 1,000 points of 100 tags, 10 points per tag, all in one 1-minute
// window; every call moves to the next window, so each batch closes 100
// windows.
func batch(round int, tags []string) []engine.Point {
	pts := make([]engine.Point, 1000)
	for i := range pts {
		pts[i] = engine.Point{Asset: "line1", Tag: tags[i%100], Value: engine.Float(float64(i)),
			TS: int64(round)*int64(time.Minute) + int64(i)*int64(time.Millisecond)}
	}
	return pts
}

func tagNames() []string {
	var tags []string
	for i := 0; i < 100; i++ {
		tags = append(tags, fmt.Sprintf("tag%03d", i))
	}
	return tags
}

func TestZeroAllocsPerBatch(t *testing.T) {
	tr := build(t, Config{Size: time.Minute, Aggregates: []string{"avg", "min", "max"}})
	tags := tagNames()
	srcs := make([][]engine.Point, 60)
	for i := range srcs {
		srcs[i] = batch(i, tags)
	}
	tr.Process(context.Background(), srcs[0])
	r := 0
	allocs := testing.AllocsPerRun(50, func() {
		r++
		if out := tr.Process(context.Background(), srcs[r%len(srcs)]); len(out) != 300 {
			t.Fatalf("closed %d aggregates, want 300", len(out))
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch of 1000, want 0", allocs)
	}
}

func BenchmarkWindow(b *testing.B) {
	tr := build(b, Config{Size: time.Minute, Aggregates: []string{"avg", "min", "max", "count"}})
	src := batch(0, tagNames())
	buf := make([]engine.Point, len(src))
	r := 0
	benchcpu.Loop(b, len(buf), func() {
		r++
		shift := int64(r) * int64(time.Minute) // every batch opens the next window
		for i := range buf {
			buf[i] = src[i]
			buf[i].TS += shift
		}
		if out := tr.Process(context.Background(), buf); len(out) != 400 && r > 1 {
			b.Fatalf("closed %d aggregates, want 400", len(out))
		}
	})
}

// BenchmarkStateBytesPerTag measures the heap the state takes per tracked
// (asset, tag), each with an open window of three aggregates: the basis of
// the max_tags bound. Names are 11 and 7 bytes, as in cov's benchmark.
func BenchmarkStateBytesPerTag(b *testing.B) {
	const tags = 1_000_000
	for range b.N {
		tr := build(b, Config{Size: time.Minute, Aggregates: []string{"avg", "min", "max"}, MaxTags: tags})
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		in := make([]engine.Point, 1000)
		for i := 0; i < tags; i += len(in) {
			for j := range in {
				k := i + j
				in[j] = engine.Point{Asset: fmt.Sprintf("asset-%05d", k/100), Tag: fmt.Sprintf("tag-%03d", k%100), Value: engine.Float(float64(k)), TS: int64(k)}
			}
			tr.Process(context.Background(), in)
		}
		clear(in)
		runtime.GC()
		runtime.ReadMemStats(&m1)
		if tr.count != tags {
			b.Fatalf("%d tags tracked, want %d", tr.count, tags)
		}
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/tags, "bytes/tag")
		runtime.KeepAlive(tr)
	}
}

// BenchmarkWindowUntracked is a flood of points of new tags at the bound:
// each passes as it is, without a lookup growing the state.
func BenchmarkWindowUntracked(b *testing.B) {
	tr := build(b, Config{Size: time.Minute, Aggregates: []string{"avg"}, MaxTags: 100})
	tr.Process(context.Background(), batch(0, tagNames())) // the 100 tags fill max_tags
	in := make([]engine.Point, 1000)
	for i := range in {
		in[i] = engine.Point{Asset: "line1", Tag: fmt.Sprintf("new%04d", i), Value: engine.Float(float64(i)), TS: int64(i)}
	}
	benchcpu.Loop(b, len(in), func() {
		if out := tr.Process(context.Background(), in); len(out) != len(in) {
			b.Fatalf("passed %d of %d", len(out), len(in))
		}
	})
}
