package codec

import (
	"errors"
	"math"
	"math/big"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
)

// Millisecond numbers convert with integer arithmetic: checked against
// math/big on the decimal text.
func TestParseMillisExact(t *testing.T) {
	for _, s := range []string{"1700000000001", "1700000000000.001", "1700000000000.000001", "-1.5", "0", "-0",
		"1.7e12", "17000000000001e-1", "9223372036854", "-9223372036854", "1e-7", "0.0000005", "1700000000000.0000009"} {
		got, err := ParseMillis(s)
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		r, _ := new(big.Rat).SetString(s)
		r.Mul(r, big.NewRat(1e6, 1))
		want := new(big.Int).Quo(r.Num(), r.Denom())
		if want.Int64() != got {
			t.Errorf("%s ms = %d ns, want %s", s, got, want)
		}
	}
	got, _ := ParseTS([]byte(`1700000000001`))
	if s := time.Unix(0, got).UTC().Format(time.RFC3339Nano); s != "2023-11-14T22:13:20.001Z" {
		t.Errorf("1700000000001 ms is %s, want 2023-11-14T22:13:20.001Z", s)
	}
}

func TestTimeRangeRejected(t *testing.T) {
	for _, raw := range []string{`"9999-12-31T23:59:59Z"`, `"1500-01-01T00:00:00Z"`, `"2262-04-11T23:47:16.854775808Z"`,
		`1e20`, `-1e20`, `9223372036855`, `-9223372036855`, `99999999999999999999999`, `1e999999999`} {
		if ts, err := ParseTS([]byte(raw)); !errors.Is(err, ErrTimeRange) {
			t.Errorf("%s: %d, %v; want ErrTimeRange", raw, ts, err)
		}
	}
	for _, f := range []float64{1e20, -1e20, 9.3e12} {
		if ts, err := FloatMillisToNanos(f); !errors.Is(err, ErrTimeRange) {
			t.Errorf("%v: %d, %v; want ErrTimeRange", f, ts, err)
		}
	}
	if _, err := FloatMillisToNanos(math.NaN()); err == nil {
		t.Error("NaN accepted as a time")
	}
	// The edges themselves are times.
	for raw, want := range map[string]int64{`"2262-04-11T23:47:16.854775807Z"`: math.MaxInt64,
		`"1677-09-21T00:12:43.145224192Z"`: math.MinInt64, `9223372036854`: 9223372036854000000} {
		if ts, err := ParseTS([]byte(raw)); err != nil || ts != want {
			t.Errorf("%s: %d, %v; want %d", raw, ts, err, want)
		}
	}
	if ns, err := FloatMillisToNanos(1700000000001); err != nil || ns != 1700000000001000000 {
		t.Errorf("float 1700000000001 ms: %d, %v", ns, err)
	}
}

func BenchmarkParseTSMillis(b *testing.B) {
	raw := []byte(`1700000000001`)
	b.ReportAllocs()
	for b.Loop() {
		ParseTS(raw)
	}
}

func BenchmarkDecodePointMillis(b *testing.B) {
	src := []byte(`{"asset":"line1","tag":"temperature","value":21.5,"quality":"good","ts":1700000000001}`)
	dst := make([]engine.Point, 0, 1)
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = DecodePoints(dst[:0], src)
	}
}
