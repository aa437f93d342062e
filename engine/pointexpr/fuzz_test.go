package pointexpr

import (
	"math"
	"testing"

	"github.com/flowd/flowd/engine"
)

// FuzzEval compiles arbitrary expressions and evaluates them against
// arbitrary points: compile errors are fine, panics are not, and where both
// the native closures and expr's VM evaluate a program they agree.
func FuzzEval(f *testing.F) {
	for _, s := range []string{"value * 2", "quality == 'good'", "tag == 'temperature' ? c_to_f(value) : value",
		"attrs.unit + asset", "round(value, 2)", "scale(value, 4, 20, 0, 100)", "value % 3", "upper(tag)",
		"value ?? 1", "substr(asset, -3, 2)", "field(tag, '/', -1)", "clamp(value, ts, status)", "-value ** 0.5"} {
		f.Add(s, "line1", "temp", 1.5, int64(3), uint8(0), uint8(0))
	}
	f.Fuzz(func(t *testing.T, src, asset, tag string, fv float64, iv int64, kind, q uint8) {
		p, err := Compile("x", engine.Expr{Src: src}, engine.KindNull)
		if err != nil {
			return
		}
		var v engine.Value
		switch kind % 5 {
		case 0:
			v = engine.Float(fv)
		case 1:
			v = engine.Int(iv)
		case 2:
			v = engine.Bool(iv%2 == 0)
		case 3:
			v = engine.String(asset + tag)
		}
		point := &engine.Point{Asset: asset, Tag: tag, Value: v, Quality: engine.Quality(q % 3), Status: uint32(iv), TS: iv,
			Attrs: map[string]string{"unit": tag}}
		got, err := p.Eval(point)
		if !p.Native() || err != nil {
			return
		}
		// Compare with the VM where results are plain numbers, strings or bools.
		out, verr := p.EvalAny(point)
		if verr != nil {
			t.Fatalf("%q: native %v, VM error %v", src, got, verr)
		}
		want := engine.ValueOf(out)
		if got.IsNumeric() && want.IsNumeric() {
			x, _ := got.Float64()
			y, _ := want.Float64()
			if x != y && !(math.IsNaN(x) && math.IsNaN(y)) && math.Abs(x-y) > 1e-9*math.Max(1, math.Abs(y)) {
				t.Fatalf("%q: native %v, VM %v", src, got, want)
			}
			return
		}
		if !got.Equal(want) {
			t.Fatalf("%q: native %v (%s), VM %v (%s)", src, got, got.Kind(), want, want.Kind())
		}
	})
}
