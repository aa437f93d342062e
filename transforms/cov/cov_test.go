package cov

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/transforms/internal/benchcpu"
	"github.com/flowd/flowd/transforms/internal/golden"
)

func build(t testing.TB, c Config) *Transform {
	t.Helper()
	if c.Mode == "" {
		c.Mode = "absolute"
	}
	if c.MaxTags == 0 {
		c.MaxTags = 1000
	}
	if c.StateTTL == 0 {
		c.StateTTL = time.Hour
	}
	for i := range c.Override {
		if c.Override[i].Deadband == 0 {
			c.Override[i].Deadband = -1
		}
	}
	tr, err := New(&c, &engine.Env{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return tr.(*Transform)
}

func TestGolden(t *testing.T) { golden.Run(t) }

type step struct {
	v    engine.Value
	q    engine.Quality
	sec  int64
	pass bool
}

func run(t *testing.T, name string, tr *Transform, steps []step) {
	t.Helper()
	for i, s := range steps {
		in := []engine.Point{{Asset: "a", Tag: "t", Value: s.v, Quality: s.q, TS: s.sec * 1e9}}
		got := len(tr.Process(context.Background(), in)) == 1
		if got != s.pass {
			t.Errorf("%s: step %d (%v, %v, %ds): pass=%v, want %v", name, i, s.v, s.q, s.sec, got, s.pass)
		}
	}
}

func TestDeadbandEdgeCases(t *testing.T) {
	f, i, str := engine.Float, engine.Int, engine.String
	run(t, "absolute: equal to the deadband does not pass", build(t, Config{Deadband: 0.5}), []step{
		{f(10), 0, 0, true}, {f(10.5), 0, 1, false}, {f(9.5), 0, 2, false}, {f(10.6), 0, 3, true},
		// measured from the last reported value (10.6), not the last seen
		{f(10.2), 0, 4, false}, {f(10.0), 0, 5, true},
	})
	run(t, "ints and floats compare as numbers", build(t, Config{Deadband: 1}), []step{
		{i(10), 0, 0, true}, {f(11), 0, 1, false}, {f(11.5), 0, 2, true}, {i(12), 0, 3, false}, {i(13), 0, 4, true},
	})
	run(t, "deadband 0: any change", build(t, Config{}), []step{
		{i(1), 0, 0, true}, {i(1), 0, 1, false}, {f(1), 0, 2, false}, {i(2), 0, 3, true},
	})
	u := engine.Uint
	run(t, "deadband 0: uints beyond float64's precision", build(t, Config{}), []step{
		{u(math.MaxUint64), 0, 0, true}, {u(math.MaxUint64 - 1), 0, 1, true}, {u(math.MaxUint64 - 1), 0, 2, false},
		{i(math.MaxInt64), 0, 3, true},
	})
	run(t, "percent", build(t, Config{Deadband: 10, Mode: "percent"}), []step{
		{f(100), 0, 0, true}, {f(110), 0, 1, false}, {f(89.9), 0, 2, true}, // 10% of 100 is 10: 110 is equal, 89.9 beyond
		{f(-10), 0, 3, true}, {f(-11), 0, 4, false}, {f(-11.5), 0, 5, true},
	})
	run(t, "percent with a last value of zero", build(t, Config{Deadband: 50, Mode: "percent"}), []step{
		{f(0), 0, 0, true}, {f(0), 0, 1, false}, {f(0.0001), 0, 2, true}, {i(0), 0, 3, true}, {i(0), 0, 4, false},
	})
	nan := f(math.NaN())
	run(t, "NaN: entering passes once, leaving passes", build(t, Config{Deadband: 0.5}), []step{
		{f(1), 0, 0, true}, {nan, 0, 1, true}, {nan, 0, 2, false}, {f(1), 0, 3, true}, {f(1.2), 0, 4, false},
	})
	run(t, "NaN in percent mode", build(t, Config{Deadband: 10, Mode: "percent"}), []step{
		{f(100), 0, 0, true}, {nan, 0, 1, true}, {nan, 0, 2, false}, {f(100), 0, 3, true},
	})
	run(t, "quality change always passes", build(t, Config{Deadband: 100}), []step{
		{f(1), engine.Good, 0, true}, {f(1), engine.Bad, 1, true}, {f(1), engine.Bad, 2, false},
		{f(2), engine.Uncertain, 3, true}, {f(2), engine.Good, 4, true},
	})
	run(t, "heartbeat", build(t, Config{Deadband: 100, Heartbeat: 10 * time.Second}), []step{
		{f(1), 0, 0, true}, {f(1), 0, 9, false}, {f(1), 0, 10, true}, {f(1), 0, 15, false}, {f(2), 0, 19, false}, {f(2), 0, 20, true},
	})
	run(t, "non-numeric values pass when different", build(t, Config{Deadband: 5}), []step{
		{str("auto"), 0, 0, true}, {str("auto"), 0, 1, false}, {str("manual"), 0, 2, true},
		{engine.Bool(true), 0, 3, true}, {engine.Bool(true), 0, 4, false}, {engine.Bool(false), 0, 5, true},
		{engine.Null(), 0, 6, true}, {engine.Null(), 0, 7, false}, {i(1), 0, 8, true}, {str("1"), 0, 9, true},
	})
}

func TestOverridesAndKeys(t *testing.T) {
	tr := build(t, Config{Deadband: 10, Override: []Override{
		{Match: "line1/*", Deadband: 0.1},
		{Match: "*/valve", Mode: "percent", Deadband: 50},
	}})
	in := []engine.Point{
		{Asset: "line1", Tag: "temp", Value: engine.Float(1)},
		{Asset: "line2", Tag: "temp", Value: engine.Float(1)},
		{Asset: "line2", Tag: "valve", Value: engine.Float(10)},
		{Asset: "line1", Tag: "temp", Value: engine.Float(1.2), TS: 1},   // line1/*: 0.2 > 0.1
		{Asset: "line2", Tag: "temp", Value: engine.Float(5), TS: 1},     // default: 4 <= 10
		{Asset: "line2", Tag: "valve", Value: engine.Float(14), TS: 1},   // 40% <= 50%
		{Asset: "line2", Tag: "valve", Value: engine.Float(15.1), TS: 2}, // 51% > 50%
	}
	out := tr.Process(context.Background(), in)
	var got []string
	for _, p := range out {
		got = append(got, fmt.Sprintf("%s/%s=%v", p.Asset, p.Tag, p.Value))
	}
	want := "[line1/temp=1 line2/temp=1 line2/valve=10 line1/temp=1.2 line2/valve=15.1]"
	if fmt.Sprint(got) != want {
		t.Fatalf("got %v, want %s", got, want)
	}
}

// TestBoundDoesNotSweepPerPoint: at max_tags, a flood of new tag names with
// the points' clock standing still costs no sweep per point (each visits
// every tag and frees none); once the clock has moved on past state_ttl, a
// sweep frees the stale tags and new ones are tracked again.
func TestBoundDoesNotSweepPerPoint(t *testing.T) {
	tr := build(t, Config{StateTTL: time.Minute, MaxTags: 1000})
	ctx := context.Background()
	fill := func(prefix string, n int, sec int64) (passed int) {
		batch := make([]engine.Point, 100)
		for i := 0; i < n; i += len(batch) {
			for j := range batch {
				batch[j] = engine.Point{Tag: fmt.Sprintf("%s-%d", prefix, i+j), Value: engine.Int(1), TS: sec * 1e9}
			}
			passed += len(tr.Process(ctx, batch))
		}
		return passed
	}
	fill("tracked", 1000, 0)
	before := tr.sweeps
	if n := fill("flood", 10_000, 0); n != 10_000 || tr.count != 1000 {
		t.Fatalf("flood at the bound: passed %d of 10000, state %d", n, tr.count)
	}
	if got := tr.sweeps - before; got > 1 {
		t.Fatalf("%d sweeps for 10,000 points of new tags with the clock standing still, want at most 1", got)
	}
	// Two minutes on: the first batch moves the clock, the next new tag
	// sweeps the stale ones away and is tracked.
	fill("later", 100, 120)
	if n := fill("later2", 100, 121); n != 100 || tr.count > 200 {
		t.Fatalf("after state_ttl: passed %d, state %d (stale tags not freed)", n, tr.count)
	}
}

func TestStateTTLAndBound(t *testing.T) {
	tr := build(t, Config{StateTTL: time.Minute, MaxTags: 2})
	p := func(tag string, sec int64) []engine.Point {
		return []engine.Point{{Tag: tag, Value: engine.Int(1), TS: sec * 1e9}}
	}
	ctx := context.Background()
	tr.Process(ctx, p("a", 0))
	tr.Process(ctx, p("b", 0))
	if n := len(tr.Process(ctx, p("c", 1))); n != 1 || tr.count != 2 {
		t.Fatalf("untracked tag: passed %d, state %d", n, tr.count)
	}
	if n := len(tr.Process(ctx, p("c", 2))); n != 1 {
		t.Fatal("an untracked tag must keep passing")
	}
	if n := len(tr.Process(ctx, p("a", 30))); n != 0 {
		t.Fatal("a repeated value of a tracked tag passed")
	}
	// b unseen for more than a minute: forgotten, so it passes as a first value.
	tr.Process(ctx, p("a", 90))
	if n := len(tr.Process(ctx, p("b", 91))); n != 1 {
		t.Fatal("an expired tag did not pass as new")
	}
}

func TestStateFile(t *testing.T) {
	dir := t.TempDir()
	mk := func() *Transform {
		c := Config{Deadband: 1, Mode: "absolute", MaxTags: 100, StateTTL: time.Hour, StateFile: "cov/state.jsonl"}
		tr, err := New(&c, &engine.Env{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return tr.(*Transform)
	}
	ctx := context.Background()
	in := func() []engine.Point {
		return []engine.Point{
			{Asset: "a", Tag: "x", Value: engine.Float(10), TS: 1e9},
			{Asset: "a", Tag: "mode", Value: engine.String("auto"), Quality: engine.Uncertain, TS: 1e9},
		}
	}
	tr := mk()
	if n := len(tr.Process(ctx, in())); n != 2 {
		t.Fatalf("first run passed %d, want 2", n)
	}
	if err := tr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cov", "state.jsonl")); err != nil {
		t.Fatal(err)
	}
	tr = mk()
	if n := len(tr.Process(ctx, in())); n != 0 {
		t.Fatalf("after a restart %d unchanged points passed, want 0", n)
	}
	if n := len(tr.Process(ctx, []engine.Point{{Asset: "a", Tag: "x", Value: engine.Float(11.5), TS: 2e9}})); n != 1 {
		t.Fatal("a change after restart did not pass")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{Deadband: -1, Mode: "absolute", MaxTags: 1, StateTTL: time.Hour},
		{Mode: "absolute", MaxTags: 0, StateTTL: time.Hour},
		{Mode: "absolute", MaxTags: 1, StateTTL: time.Hour, Override: []Override{{Match: "[", Deadband: -1}}},
	} {
		if _, err := New(&c, &engine.Env{}); err == nil {
			t.Errorf("%+v: want an error", c)
		}
	}
}

// batch is 1,000 points over 1,000 tags (10 assets × 100 tags), a third of
// them changed beyond the deadband since the last batch.
func batch(round int) []engine.Point {
	pts := make([]engine.Point, 1000)
	for i := range pts {
		v := float64(i)
		if (i+round)%3 == 0 {
			v += float64(round%2) * 2
		}
		pts[i] = engine.Point{Asset: assets[i/100], Tag: tags[i%100], Value: engine.Float(v), TS: int64(round) * 1e9}
	}
	return pts
}

var assets, tags = func() ([]string, []string) {
	var a, t []string
	for i := 0; i < 10; i++ {
		a = append(a, fmt.Sprintf("line%d", i))
	}
	for i := 0; i < 100; i++ {
		t = append(t, fmt.Sprintf("tag%03d", i))
	}
	return a, t
}()

func TestZeroAllocsPerBatch(t *testing.T) {
	tr := build(t, Config{Deadband: 1, Heartbeat: time.Hour})
	src := [2][]engine.Point{batch(0), batch(1)}
	buf := make([]engine.Point, 1000)
	copy(buf, src[0])
	tr.Process(context.Background(), buf)
	r := 0
	allocs := testing.AllocsPerRun(50, func() {
		r++
		copy(buf, src[r%2])
		if n := len(tr.Process(context.Background(), buf)); n == 0 || n == 1000 {
			t.Fatalf("passed %d of 1000", n)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch of 1000, want 0", allocs)
	}
}

func BenchmarkCOV(b *testing.B) {
	tr := build(b, Config{Deadband: 1, Heartbeat: time.Hour})
	src := [2][]engine.Point{batch(0), batch(1)}
	buf := make([]engine.Point, 1000)
	r := 0
	benchcpu.Loop(b, len(buf), func() {
		r++
		copy(buf, src[r%2])
		tr.Process(context.Background(), buf)
	})
}

// fillTags passes one point of each of n tags (names of 11 and 7 bytes).
func fillTags(tr *Transform, n int) {
	batch := make([]engine.Point, 1000)
	for i := 0; i < n; i += len(batch) {
		for j := range batch {
			k := i + j
			batch[j] = engine.Point{Asset: fmt.Sprintf("asset-%05d", k/100), Tag: fmt.Sprintf("tag-%03d", k%100), Value: engine.Float(float64(k)), TS: int64(k)}
		}
		tr.Process(context.Background(), batch)
	}
}

// BenchmarkStateBytesPerTag measures the heap the state takes per tracked
// (asset, tag): the basis of the max_tags bound.
func BenchmarkStateBytesPerTag(b *testing.B) {
	const tags = 1_000_000
	for range b.N {
		tr := build(b, Config{MaxTags: tags})
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		fillTags(tr, tags)
		runtime.GC()
		runtime.ReadMemStats(&m1)
		if tr.count != tags {
			b.Fatalf("%d tags tracked, want %d", tr.count, tags)
		}
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/tags, "bytes/tag")
		runtime.KeepAlive(tr)
	}
}

// BenchmarkStateSave1M measures one write of the state file of 1,000,000
// tags; Process does it every state_save_interval while changes commit.
func BenchmarkStateSave1M(b *testing.B) {
	tr := build(b, Config{MaxTags: 1_000_000, StateFile: filepath.Join(b.TempDir(), "state.jsonl")})
	fillTags(tr, 1_000_000)
	b.ResetTimer()
	for range b.N {
		if err := tr.save(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStateFileAcrossRestarts runs flowd twice on the same data directory.
func TestStateFileAcrossRestarts(t *testing.T) {
	bin := harness.Flowd(t)
	dir := t.TempDir()
	input := harness.WriteFile(t, dir, "in.jsonl",
		`{"asset":"a","tag":"x","value":10.0,"quality":"good","ts":"2026-11-22T10:00:00Z"}
{"asset":"a","tag":"mode","value":"auto","quality":"good","ts":"2026-11-22T10:00:00Z"}
`)
	second := harness.WriteFile(t, dir, "in2.jsonl",
		`{"asset":"a","tag":"x","value":10.5,"quality":"good","ts":"2026-11-22T10:01:00Z"}
{"asset":"a","tag":"mode","value":"auto","quality":"good","ts":"2026-11-22T10:01:00Z"}
{"asset":"a","tag":"x","value":11.5,"quality":"good","ts":"2026-11-22T10:01:01Z"}
`)
	run := func(in, out string) []string {
		cmd := exec.Command(bin, "run", "--http", "off", "--quiet", "--data-dir", filepath.Join(dir, "data"),
			"--var", "input="+in, "--var", "output="+out, "testdata/restart.hcl")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("flowd run: %v\n%s", err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return strings.Fields(string(b))
	}
	if got := run(input, filepath.Join(dir, "out1.jsonl")); len(got) != 2 {
		t.Fatalf("first run: %d points, want 2", len(got))
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "cov", "state.jsonl")); err != nil {
		t.Fatalf("no state file after the first run: %v", err)
	}
	got := run(second, filepath.Join(dir, "out2.jsonl"))
	if len(got) != 1 || !strings.Contains(got[0], `"value":11.5`) {
		t.Fatalf("second run: %v, want only x=11.5", got)
	}
}

// BenchmarkUntrackedFlood: points of ever new tags arriving with 100,000
// tags tracked at max_tags, the points' clock standing still: the cost per
// point of a tag cov cannot track.
func BenchmarkUntrackedFlood(b *testing.B) {
	const tags = 100_000
	tr := build(b, Config{MaxTags: tags})
	fillTags(tr, tags)
	// Tags beyond the bound are never tracked, so the same names stay new.
	flood := make([]engine.Point, 1000)
	for j := range flood {
		flood[j] = engine.Point{Asset: "flood", Tag: strconv.Itoa(j), Value: engine.Int(1), TS: tags}
	}
	buf := make([]engine.Point, len(flood))
	benchcpu.Loop(b, len(buf), func() {
		copy(buf, flood)
		tr.Process(context.Background(), buf)
	})
}
