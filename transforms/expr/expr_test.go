package expr

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/flowd/flowd/e2e/harness"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/transforms/internal/benchcpu"
	"github.com/flowd/flowd/transforms/internal/golden"
)

func build(t testing.TB, c Config) *Transform {
	t.Helper()
	tr, err := New(&c, &engine.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.(*Transform)
}

func x(s string) engine.Expr { return engine.Expr{Src: s} }

func TestGolden(t *testing.T) { golden.Run(t) }

func TestWhereAndSetAreOrderIndependent(t *testing.T) {
	tr := build(t, Config{
		Where: x("quality == 'good'"),
		Set: map[string]engine.Expr{
			"tag":   x("tag + '_f'"),
			"value": x("tag == 'temp' ? c_to_f(value) : value"), // sees the incoming tag
			"asset": x("tag"),
		},
	})
	in := []engine.Point{
		{Asset: "a", Tag: "temp", Value: engine.Float(100)},
		{Asset: "a", Tag: "temp", Value: engine.Float(5), Quality: engine.Bad},
		{Asset: "a", Tag: "rpm", Value: engine.Int(7)},
	}
	out := tr.Process(context.Background(), in)
	if len(out) != 2 {
		t.Fatalf("got %d points, want 2", len(out))
	}
	if out[0].Tag != "temp_f" || out[0].Asset != "temp" || !out[0].Value.Equal(engine.Float(212)) {
		t.Errorf("first point: %+v", out[0])
	}
	if out[1].Tag != "rpm_f" || !out[1].Value.Equal(engine.Int(7)) {
		t.Errorf("second point: %+v", out[1])
	}
}

func TestAttrsAreCopiedNotMutated(t *testing.T) {
	tr := build(t, Config{Set: map[string]engine.Expr{"attrs.unit": x("'F'"), "attrs.old": x("''")}})
	shared := map[string]string{"unit": "C", "old": "x", "site": "n"}
	out := tr.Process(context.Background(), []engine.Point{{Tag: "t", Attrs: shared}})
	if shared["unit"] != "C" || shared["old"] != "x" {
		t.Fatalf("the incoming attrs map was written: %v", shared)
	}
	if got := out[0].Attrs; got["unit"] != "F" || got["site"] != "n" || len(got) != 2 {
		t.Fatalf("attrs = %v", got)
	}
	tr = build(t, Config{Set: map[string]engine.Expr{"attrs": x("{'line': asset, 'n': 1}")}})
	out = tr.Process(context.Background(), []engine.Point{{Asset: "l1", Tag: "t", Attrs: shared}})
	if got := out[0].Attrs; got["line"] != "l1" || got["n"] != "1" || len(got) != 2 {
		t.Fatalf("attrs map = %v", got)
	}
}

func TestRuntimeErrorsDropThePoint(t *testing.T) {
	for _, c := range []Config{
		{Where: x("value > 1"), DropOnError: true},
		{Set: map[string]engine.Expr{"quality": x("'excellent'")}},
		{Set: map[string]engine.Expr{"ts": x("'yesterday'")}},
		{Set: map[string]engine.Expr{"status": x("value")}},
		{Set: map[string]engine.Expr{"tag": x("''")}},
	} {
		tr := build(t, c)
		in := []engine.Point{{Tag: "a", Value: engine.String("x")}, {Tag: "b", Value: engine.Int(5)}}
		out := tr.Process(context.Background(), in)
		for _, p := range out {
			if p.Tag == "a" {
				t.Errorf("%+v: the failing point passed", c)
			}
		}
	}
}

func TestSetFields(t *testing.T) {
	tr := build(t, Config{Set: map[string]engine.Expr{
		"ts": x("'2026-11-22T10:00:00Z'"), "status": x("2147483648"), "quality": x("'bad'"), "value": x("nil"),
	}})
	out := tr.Process(context.Background(), []engine.Point{{Tag: "a", Value: engine.Int(1)}})
	p := out[0]
	if p.Time().Format("15:04:05") != "10:00:00" || p.Status != 1<<31 || p.Quality != engine.Bad || !p.Value.IsNull() {
		t.Fatalf("got %+v", p)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg   Config
		field string
		msg   string
	}{
		{Config{}, "where", "needs where"},
		{Config{Where: x("value +")}, "where", "unexpected"},
		{Config{Where: x("asset + 'x'")}, "where", "bool"},
		{Config{Set: map[string]engine.Expr{"colour": x("1")}}, "set", "cannot set"},
		{Config{Set: map[string]engine.Expr{"tag": x("1 + 2")}}, "set.tag", "not a string"},
		{Config{Set: map[string]engine.Expr{"value": x("nosuch")}}, "set.value", "unknown name"},
	} {
		_, err := New(&c.cfg, &engine.Env{})
		var fe *engine.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%+v: got %v, want a %s error with %q", c.cfg, err, c.field, c.msg)
		}
	}
}

func batch(n int) []engine.Point {
	pts := make([]engine.Point, n)
	for i := range pts {
		tag := "temperature"
		if i%2 == 1 {
			tag = "pressure"
		}
		q := engine.Good
		if i%10 == 9 {
			q = engine.Bad
		}
		pts[i] = engine.Point{Asset: "line1", Tag: tag, Value: engine.Float(float64(i % 100)), Quality: q, TS: int64(i) * 1e6}
	}
	return pts
}

func TestZeroAllocsPerBatch(t *testing.T) {
	tr := build(t, Config{Where: x("quality == 'good'"), Set: map[string]engine.Expr{"value": x("tag == 'temperature' ? (value - 32) / 1.8 : value")}})
	src := batch(1000)
	buf := make([]engine.Point, len(src))
	allocs := testing.AllocsPerRun(50, func() {
		copy(buf, src)
		if out := tr.Process(context.Background(), buf); len(out) != 900 {
			t.Fatalf("kept %d, want 900", len(out))
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch of 1000, want 0", allocs)
	}
}

// BenchmarkWhereSet is the target case: where + one set, batches of 1,000.
func BenchmarkWhereSet(b *testing.B) {
	tr := build(b, Config{Where: x("quality == 'good'"), Set: map[string]engine.Expr{"value": x("tag == 'temperature' ? (value - 32) / 1.8 : value")}})
	src := batch(1000)
	buf := make([]engine.Point, len(src))
	benchcpu.Loop(b, len(buf), func() {
		copy(buf, src)
		tr.Process(context.Background(), buf)
	})
}

func BenchmarkWhere(b *testing.B) {
	tr := build(b, Config{Where: x("quality == 'good' && value > 10")})
	src := batch(1000)
	buf := make([]engine.Point, len(src))
	benchcpu.Loop(b, len(buf), func() {
		copy(buf, src)
		tr.Process(context.Background(), buf)
	})
}

// A compile error is reported by flowd validate at the line and column inside
// the expression string.
func TestValidatePointsInsideTheExpression(t *testing.T) {
	bin := harness.Flowd(t)
	for _, c := range []struct{ file, pos, msg string }{
		{"testdata/invalid_where.hcl", ":6:36:", "where: unknown name nosuch"},
		{"testdata/invalid_set.hcl", ":8:27:", "set.value: unexpected token EOF"},
	} {
		out, err := exec.Command(bin, "validate", c.file).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("%s: want exit status 1, got %v\n%s", c.file, err, out)
		}
		if !strings.Contains(string(out), c.file+c.pos) || !strings.Contains(string(out), c.msg) {
			t.Errorf("%s: want %s%s and %q in:\n%s", c.file, c.file, c.pos, c.msg, out)
		}
	}
}

// FuzzProcess runs arbitrary where and set expressions over arbitrary points:
// compile errors are fine, panics are not, and no point is invented.
func FuzzProcess(f *testing.F) {
	f.Add("quality == 'good'", "value * 2", "line1", "temp", 1.5, "x")
	f.Add("value > 3 || tag contains 'a'", "str(value) + asset", "", "a", -2.0, "")
	f.Add("attrs.k == 'v'", "round(value, 1)", "l", "t", 3.14159, "v")
	f.Fuzz(func(t *testing.T, where, set, asset, tag string, fv float64, attr string) {
		c := Config{Where: x(where), Set: map[string]engine.Expr{"value": x(set), "attrs.k": x("attrs.k + 'x'")}, DropOnError: fv < 0}
		if where == "" {
			c.Where = engine.Expr{}
		}
		tr, err := New(&c, &engine.Env{})
		if err != nil {
			return
		}
		in := []engine.Point{
			{Asset: asset, Tag: tag, Value: engine.Float(fv), Attrs: map[string]string{"k": attr}},
			{Asset: asset, Tag: tag + "2", Value: engine.String(attr), Quality: engine.Bad},
			{Asset: asset, Tag: tag + "3", Value: engine.Int(int64(fv)), Quality: engine.Uncertain},
			{Asset: asset, Tag: tag + "4"},
		}
		out := tr.Process(context.Background(), in)
		if len(out) > 4 {
			t.Fatalf("%d points out of 4", len(out))
		}
	})
}
