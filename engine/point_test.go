package engine

import (
	"math"
	"testing"
)

// The uint kind holds only what int64 cannot, so each number has one form,
// and it compares exactly.
func TestUintValue(t *testing.T) {
	if v := Uint(5); v.Kind() != KindInt {
		t.Errorf("Uint(5) is %s, want int", v.Kind())
	}
	max := Uint(math.MaxUint64)
	if max.Kind() != KindUint || max.String() != "18446744073709551615" || !max.IsNumeric() || !max.IsInteger() {
		t.Fatalf("Uint(MaxUint64) = %s (%s)", max, max.Kind())
	}
	if u, ok := max.Uint64(); !ok || u != math.MaxUint64 {
		t.Errorf("Uint64() = %d %v", u, ok)
	}
	if _, ok := max.Int64(); ok {
		t.Error("Int64() of a uint above MaxInt64 claims to be exact")
	}
	if max.Equal(Uint(math.MaxUint64-1)) || !max.Equal(Uint(math.MaxUint64)) {
		t.Error("uints must compare exactly")
	}
	if Uint(1 << 63).Equal(Int(math.MaxInt64)) {
		t.Error("2^63 equals 2^63-1 (compared as floats)")
	}
	if !Uint(1 << 63).Equal(Float(1 << 63)) {
		t.Error("a uint and a float of the same number differ")
	}
	if v := ValueOf(uint64(math.MaxUint64)); v.Kind() != KindUint || v.Any() != uint64(math.MaxUint64) {
		t.Errorf("ValueOf(MaxUint64) = %v (%s)", v, v.Kind())
	}
}

// ParseQuality takes the emitted lower case, title and upper case, and ""
// (good); nothing else.
func TestParseQualitySpellings(t *testing.T) {
	for s, want := range map[string]Quality{"good": Good, "Good": Good, "GOOD": Good, "": Good,
		"uncertain": Uncertain, "Uncertain": Uncertain, "UNCERTAIN": Uncertain, "bad": Bad, "Bad": Bad, "BAD": Bad} {
		if q, ok := ParseQuality(s); !ok || q != want {
			t.Errorf("ParseQuality(%q) = %v %v, want %v", s, q, ok, want)
		}
	}
	for _, s := range []string{"gOOd", "BaD", "ok", " good", "0"} {
		if _, ok := ParseQuality(s); ok {
			t.Errorf("ParseQuality(%q) accepted", s)
		}
	}
}
