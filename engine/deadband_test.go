package engine

import (
	"math"
	"testing"
)

func TestDeadbandChanged(t *testing.T) {
	nan := Float(math.NaN())
	abs0, abs := Deadband{}, Deadband{Value: 0.5}
	pct := Deadband{Value: 10, Percent: true}
	for _, c := range []struct {
		name    string
		d       Deadband
		last, v Value
		want    bool
	}{
		{"equal to the deadband", abs, Float(10), Float(10.5), false},
		{"beyond the deadband", abs, Float(10), Float(10.6), true},
		{"below, downwards", abs, Float(10), Float(9.5), false},
		{"int and float compare as numbers", Deadband{Value: 1}, Int(10), Float(11), false},
		{"deadband 0: an int and an equal float", abs0, Int(1), Float(1), false},
		{"deadband 0: uints beyond float64's precision", abs0, Uint(math.MaxUint64), Uint(math.MaxUint64 - 1), true},
		{"percent: equal to it", pct, Float(100), Float(110), false},
		{"percent: beyond it", pct, Float(100), Float(89.9), true},
		{"percent of a negative last", pct, Float(-10), Float(-11.5), true},
		{"percent from 0: any change", pct, Float(0), Float(0.0001), true},
		{"percent from 0: none", pct, Int(0), Float(0), false},
		{"infinity unchanged", abs, Float(math.Inf(1)), Float(math.Inf(1)), false},
		{"infinity entered", abs, Float(1e300), Float(math.Inf(1)), true},
		// NaN (OPC UA Part 4: report entering the NaN state once)
		{"NaN after NaN", abs, nan, nan, false},
		{"NaN after NaN, deadband 0", abs0, nan, nan, false},
		{"NaN after a number", abs, Float(1), nan, true},
		{"NaN after an int", abs0, Int(1), nan, true},
		{"a number after NaN", abs, nan, Float(1), true},
		{"NaN after a number, percent", pct, Float(100), nan, true},
		{"a number after NaN, percent", pct, nan, Float(100), true},
		{"NaN after 0, percent", pct, Float(0), nan, true},
		// other kinds: any difference
		{"strings equal", abs, String("a"), String("a"), false},
		{"strings differ", abs, String("a"), String("b"), true},
		{"bool flips", Deadband{Value: 5}, Bool(true), Bool(false), true},
		{"a number after a bool", Deadband{Value: 5}, Bool(true), Float(1.5), true},
		{"a bool after a number", Deadband{Value: 5}, Float(1), Bool(true), true},
		{"null after a number", abs, Float(1), Null(), true},
		{"a numeric string after a number", abs, Int(1), String("1"), true},
	} {
		if got := c.d.Changed(c.last, c.v); got != c.want {
			t.Errorf("%s: Changed(%v, %v) = %v, want %v", c.name, c.last, c.v, got, c.want)
		}
	}
}

func BenchmarkDeadbandChanged(b *testing.B) {
	d := Deadband{Value: 0.5}
	last, v := Float(10), Float(10.3)
	b.ReportAllocs()
	for b.Loop() {
		if d.Changed(last, v) {
			b.Fatal("changed")
		}
	}
}
