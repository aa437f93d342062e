package pointexpr

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
)

func mustCompile(t testing.TB, src string, want engine.Kind) *Program {
	t.Helper()
	p, err := Compile("x", engine.Expr{Src: src}, want)
	if err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	return p
}

var ts0 = time.Date(2026, 11, 22, 10, 0, 0, 123e6, time.UTC).UnixNano()

func pt(value engine.Value) *engine.Point {
	return &engine.Point{Asset: "line1", Tag: "temperature", Value: value, Quality: engine.Good, Status: 7, TS: ts0,
		Attrs: map[string]string{"unit": "C", "site": "north"}}
}

func TestEval(t *testing.T) {
	cases := []struct {
		src  string
		p    *engine.Point
		want engine.Value
	}{
		{"value", pt(engine.Float(21.5)), engine.Float(21.5)},
		{"value * 2", pt(engine.Int(4)), engine.Int(8)},
		{"value / 2", pt(engine.Int(5)), engine.Float(2.5)},
		{"value % 3", pt(engine.Int(7)), engine.Int(1)},
		{"value + 0.5", pt(engine.Int(1)), engine.Float(1.5)},
		{"-value", pt(engine.Float(2)), engine.Float(-2)},
		{"value ** 2", pt(engine.Int(3)), engine.Float(9)},
		{"quality == 'good'", pt(engine.Null()), engine.Bool(true)},
		{"quality != 'good' || tag == 'temperature'", pt(engine.Null()), engine.Bool(true)},
		{"value == 1", pt(engine.Float(1)), engine.Bool(true)},
		{"value == 'a'", pt(engine.Int(1)), engine.Bool(false)},
		{"value == nil", pt(engine.Null()), engine.Bool(true)},
		{"value ?? 5", pt(engine.Null()), engine.Int(5)},
		{"asset + '/' + tag", pt(engine.Null()), engine.String("line1/temperature")},
		{"tag startsWith 'temp' and asset endsWith '1'", pt(engine.Null()), engine.Bool(true)},
		{"asset contains 'ne'", pt(engine.Null()), engine.Bool(true)},
		{"attrs.unit", pt(engine.Null()), engine.String("C")},
		{"attrs['site']", pt(engine.Null()), engine.String("north")},
		{"attrs.missing", pt(engine.Null()), engine.String("")},
		{"status", pt(engine.Null()), engine.Int(7)},
		{"ts", pt(engine.Null()), engine.Int(ts0 / 1e6)},
		{"tag == 'temperature' ? c_to_f(value) : value", pt(engine.Float(100)), engine.Float(212)},
		{"f_to_c(212)", pt(engine.Null()), engine.Float(100)},
		{"round(bar_to_psi(value), 2)", pt(engine.Float(1)), engine.Float(14.5)},
		{"round(psi_to_bar(14.503773773020923), 3)", pt(engine.Null()), engine.Float(1)},
		{"round(value)", pt(engine.Float(2.6)), engine.Float(3)},
		{"scale(value, 4, 20, 0, 100)", pt(engine.Float(12)), engine.Float(50)},
		{"clamp(value, 0, 10)", pt(engine.Int(42)), engine.Float(10)},
		{"abs(value)", pt(engine.Int(-3)), engine.Int(3)},
		{"floor(value)", pt(engine.Float(2.7)), engine.Float(2)},
		{"c_to_k(0)", pt(engine.Null()), engine.Float(273.15)},
		// VM paths
		{"upper(asset)", pt(engine.Null()), engine.String("LINE1")},
		{"str(value) + ' C'", pt(engine.Float(21.5)), engine.String("21.5 C")},
		{"substr(tag, 0, 4)", pt(engine.Null()), engine.String("temp")},
		{"substr(tag, -4, 10)", pt(engine.Null()), engine.String("ture")},
		{"field('plant/line1/temp', '/', 1)", pt(engine.Null()), engine.String("line1")},
		{"field('a/b', '/', 5)", pt(engine.Null()), engine.String("")},
		{"tag in ['temperature', 'pressure']", pt(engine.Null()), engine.Bool(true)},
		{"asset matches '^line[0-9]+$'", pt(engine.Null()), engine.Bool(true)},
		{"len(attrs)", pt(engine.Null()), engine.Int(2)},
	}
	for _, c := range cases {
		p := mustCompile(t, c.src, engine.KindNull)
		got, err := p.Eval(c.p)
		if err != nil {
			t.Errorf("%q: %v", c.src, err)
			continue
		}
		if !sameValue(got, c.want) {
			t.Errorf("%q = %v (%s), want %v (%s)", c.src, got, got.Kind(), c.want, c.want.Kind())
		}
		// The VM must agree with the native closures.
		if p.Native() {
			vmv, err := vmEval(p, c.p)
			if err != nil || !sameValue(vmv, got) {
				t.Errorf("%q: native %v, VM %v (%v)", c.src, got, vmv, err)
			}
		}
	}
}

func vmEval(p *Program, pt *engine.Point) (engine.Value, error) {
	out, err := p.EvalAny(pt)
	if err != nil {
		return engine.Null(), err
	}
	return engine.ValueOf(out), nil
}

func sameValue(a, b engine.Value) bool {
	if a.IsNumeric() && b.IsNumeric() {
		x, _ := a.Float64()
		y, _ := b.Float64()
		return x == y || math.Abs(x-y) < 1e-9 || (math.IsNaN(x) && math.IsNaN(y))
	}
	return a.Equal(b)
}

func TestNativeCoverage(t *testing.T) {
	for _, src := range []string{"quality == 'good'", "value * 1.8 + 32", "tag == 'temperature' ? c_to_f(value) : value",
		"attrs.unit == 'C' && value > 10", "round(scale(value, 4, 20, 0, 100), 1)", "now() - ts > 1000"} {
		if !mustCompile(t, src, engine.KindNull).Native() {
			t.Errorf("%q runs on the VM, want native", src)
		}
	}
}

func TestRuntimeErrors(t *testing.T) {
	for _, c := range []struct {
		src string
		v   engine.Value
	}{
		{"value > 5", engine.String("x")},
		{"value * 2", engine.Null()},
		{"value % 0", engine.Int(3)},
		{"value ? 1 : 2", engine.Int(3)},
		{"c_to_f(value)", engine.String("hot")},
		{"value or tag == 'x'", engine.Int(1)},
		{"-value", engine.Bool(true)},
		{"upper(value)", engine.Int(1)},
	} {
		p := mustCompile(t, c.src, engine.KindNull)
		if v, err := p.Eval(pt(c.v)); err == nil {
			t.Errorf("%q with %v: got %v, want an error", c.src, c.v, v)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, c := range []struct {
		src    string
		want   engine.Kind
		offset int
		msg    string
	}{
		{"value >", engine.KindNull, 6, "unexpected"},
		{"quality == 'good' && nosuch > 1", engine.KindNull, 21, "unknown name nosuch"},
		{"asset + 1", engine.KindNull, 6, "invalid operation"},
		{"asset + 'x'", engine.KindBool, -2, "bool"},
		{"tag == 'a'", engine.KindString, 0, "not a string"},
		{"", engine.KindNull, -1, "empty"},
		{"c_to_f('x')", engine.KindNull, -2, "c_to_f"},
	} {
		_, err := Compile("where", engine.Expr{Src: c.src}, c.want)
		var fe *engine.FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%q: want a FieldError, got %v", c.src, err)
			continue
		}
		if fe.Field != "where" || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%q: error %q, want field where and %q", c.src, err, c.msg)
		}
		if c.offset != -2 && fe.Offset != c.offset {
			t.Errorf("%q: offset %d, want %d (%v)", c.src, fe.Offset, c.offset, err)
		}
	}
}

func TestEvalStringBool(t *testing.T) {
	p := mustCompile(t, "asset + '/' + tag", engine.KindString)
	if s, err := p.EvalString(pt(engine.Null())); err != nil || s != "line1/temperature" {
		t.Fatalf("EvalString = %q, %v", s, err)
	}
	p = mustCompile(t, "value", engine.KindString)
	if s, err := p.EvalString(pt(engine.Int(42))); err != nil || s != "42" {
		t.Fatalf("EvalString(int) = %q, %v", s, err)
	}
	b := mustCompile(t, "value > 10", engine.KindBool)
	if ok, err := b.EvalBool(pt(engine.Float(11))); err != nil || !ok {
		t.Fatalf("EvalBool = %v, %v", ok, err)
	}
	if _, err := b.EvalBool(pt(engine.Null())); err == nil {
		t.Fatal("EvalBool on null: want an error")
	}
}

func TestZeroAllocs(t *testing.T) {
	where := mustCompile(t, "quality == 'good' && tag != 'x'", engine.KindBool)
	set := mustCompile(t, "tag == 'temperature' ? round(c_to_f(value), 2) : value * 2", engine.KindNull)
	p := pt(engine.Float(21.5))
	n := testing.AllocsPerRun(1000, func() {
		if ok, _ := where.EvalBool(p); !ok {
			t.Fatal("where false")
		}
		if _, err := set.Eval(p); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per evaluation, want 0", n)
	}
}

func BenchmarkNative(b *testing.B) {
	where := mustCompile(b, "quality == 'good'", engine.KindBool)
	set := mustCompile(b, "tag == 'temperature' ? (value - 32) / 1.8 : value", engine.KindNull)
	p := pt(engine.Float(70))
	b.ReportAllocs()
	for b.Loop() {
		where.EvalBool(p)
		set.Eval(p)
	}
}

func BenchmarkVM(b *testing.B) {
	where := mustCompile(b, "quality in ['good']", engine.KindBool)
	set := mustCompile(b, "upper(tag)", engine.KindNull)
	p := pt(engine.Float(70))
	b.ReportAllocs()
	for b.Loop() {
		where.EvalBool(p)
		set.Eval(p)
	}
}

func TestStringFunctionsCheckDynamicArguments(t *testing.T) {
	p := mustCompile(t, "substr(tag, value, 4)", engine.KindString)
	if s, err := p.EvalString(pt(engine.Int(2))); err != nil || s != "mper" {
		t.Fatalf("substr with an int value: %q, %v", s, err)
	}
	if _, err := p.EvalString(pt(engine.Float(1.5))); err == nil {
		t.Fatal("substr with a fractional start: want an error")
	}
	p = mustCompile(t, "field(value, '/', 0)", engine.KindString)
	if _, err := p.EvalString(pt(engine.Int(1))); err == nil || !strings.Contains(err.Error(), "not a string") {
		t.Fatalf("field of an int: %v", err)
	}
}

// A chain of strings joined by + (a topic, a key) is one concatenation: one
// allocation for the result, whatever the number of operands.
func TestConcatOneAlloc(t *testing.T) {
	p := pt(engine.Float(1))
	for src, want := range map[string]string{
		"'plant/' + asset + '/' + tag":                                "plant/line1/temperature",
		"'p/' + asset + '/' + tag + '/' + quality + '/' + attrs.unit": "p/line1/temperature/good/C",
		"asset + '-' + (tag + '-' + attrs.site)":                      "line1-temperature-north",
		"'a' + 'b' + 'c' + 'd' + 'e' + 'f' + 'g' + 'h' + 'i' + asset": "abcdefghiline1",
	} {
		x := mustCompile(t, src, engine.KindString)
		if !x.Native() {
			t.Errorf("%s: not native", src)
		}
		got, err := x.EvalString(p)
		if err != nil || got != want {
			t.Errorf("%s = %q (%v), want %q", src, got, err, want)
		}
		if n := testing.AllocsPerRun(100, func() { x.EvalString(p) }); n > 1 {
			t.Errorf("%s: %v allocations per evaluation, want at most 1", src, n)
		}
	}
}

func BenchmarkConcat(b *testing.B) {
	x := mustCompile(b, "'plant/' + asset + '/' + tag", engine.KindString)
	p := pt(engine.Float(70))
	b.ReportAllocs()
	for b.Loop() {
		x.EvalString(p)
	}
}

// A uint above math.MaxInt64 passes through exactly, compares exactly with
// another uint natively, and computes as a float on both paths (expr's VM
// would wrap a uint64 operand into a negative int).
func TestUintValue(t *testing.T) {
	max := engine.Uint(math.MaxUint64)
	for _, c := range []struct {
		src  string
		want engine.Value
	}{
		{"value", max},
		{"value > 1e19", engine.Bool(true)},
		{"value > 0", engine.Bool(true)},
		{"value == value", engine.Bool(true)},
		{"value + 1", engine.Float(18446744073709551616)},
		{"abs(value)", max},
	} {
		p := mustCompile(t, c.src, engine.KindNull)
		got, err := p.Eval(pt(max))
		if err != nil || got.Kind() != c.want.Kind() || !got.Equal(c.want) {
			t.Errorf("%s: %v (%s) %v, want %v (%s)", c.src, got, got.Kind(), err, c.want, c.want.Kind())
		}
		vm, err := vmEval(p, pt(max))
		if err != nil || !sameValue(vm, c.want) {
			t.Errorf("%s on the VM: %v %v, want %v", c.src, vm, err, c.want)
		}
	}
}

// CompileEnv is the same front end over another environment (the payload
// decoders' topic, path and payload): the plant functions, the result check
// and errors pointing inside the expression.
func TestCompileEnvResults(t *testing.T) {
	type env struct {
		Topic   []string       `expr:"topic"`
		Payload map[string]any `expr:"payload"`
	}
	for _, c := range []struct {
		src  string
		want Result
		err  string // "" when it compiles
	}{
		{"topic[1] + '/' + topic[2]", StringResult, ""},
		{"len(topic)", StringResult, "gives a int, not a string"},
		{"c_to_f(20)", ScalarResult, ""},
		{"len(topic) > 1", ScalarResult, ""},
		{"topic", ScalarResult, "not a value"},
		{"1700000000000", TimeResult, ""},
		{"'2024-01-01T00:00:00Z'", TimeResult, ""},
		{"true", TimeResult, "gives a bool, not a timestamp"},
		{"{'a': 1}", ObjectResult, ""},
		{"'x'", ObjectResult, "not an object of values"},
		{"payload.v", ObjectResult, ""}, // unknown type: checked when evaluated
		{"len(topic) > 1", BoolResult, ""},
		{"topic[0]", BoolResult, "bool"},
		{"  ", StringResult, "empty expression"},
		{"topic[0] +", StringResult, "unexpected"},
	} {
		prog, err := CompileEnv("tag_expr", engine.Expr{Src: c.src}, env{}, c.want)
		if c.err == "" {
			if err != nil || prog == nil {
				t.Errorf("%q as %s: %v", c.src, c.want, err)
			}
			continue
		}
		var fe *engine.FieldError
		if !errors.As(err, &fe) || fe.Field != "tag_expr" || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q as %s: error %v, want a FieldError on tag_expr with %q", c.src, c.want, err, c.err)
		}
	}
}
