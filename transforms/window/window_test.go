package window

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/transforms/internal/benchcpu"
	"github.com/flowd/flowd/transforms/internal/golden"
)

func build(t testing.TB, c Config) *Transform {
	t.Helper()
	if c.Late == "" {
		c.Late = "drop"
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
	for _, c := range []Config{
		{Size: 0},
		{Size: time.Second, Aggregates: []string{"median"}},
		{Size: time.Second, Aggregates: []string{"avg", "avg"}},
		{Size: time.Second, Aggregates: []string{"avg", "max"}, KeepTag: true},
	} {
		if _, err := New(&c, &engine.Env{}); err == nil {
			t.Errorf("%+v: want an error", c)
		}
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
