package codec

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
)

func ts(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixNano()
}

func TestCanonicalJSON(t *testing.T) {
	for _, tc := range []struct {
		p    engine.Point
		want string
	}{
		{engine.Point{Asset: "line1", Tag: "temperature", Value: engine.Float(21.5), TS: ts("2026-11-22T10:00:00.123Z")},
			`{"asset":"line1","tag":"temperature","value":21.5,"quality":"good","ts":"2026-11-22T10:00:00.123Z"}`},
		{engine.Point{Tag: "n", Value: engine.Int(-3), Quality: engine.Bad, Status: 0x80000000, TS: ts("2026-11-22T10:00:00Z")},
			`{"tag":"n","value":-3,"quality":"bad","status":2147483648,"status_name":"Bad","ts":"2026-11-22T10:00:00Z"}`},
		{engine.Point{Tag: "nc", Value: engine.Null(), Quality: engine.Bad, Status: 0x808A0000, TS: ts("2026-11-22T10:00:00Z")},
			`{"tag":"nc","value":null,"quality":"bad","status":2156527616,"status_name":"BadNotConnected","ts":"2026-11-22T10:00:00Z"}`},
		// Info bits (here: limit high) keep the name; an unknown code has none.
		{engine.Point{Tag: "lim", Value: engine.Int(1), Quality: engine.Uncertain, Status: 0x40920200, TS: 0},
			`{"tag":"lim","value":1,"quality":"uncertain","status":1083310592,"status_name":"UncertainInitialValue","ts":"1970-01-01T00:00:00Z"}`},
		{engine.Point{Tag: "unk", Value: engine.Int(1), Quality: engine.Bad, Status: 0x80FF0000, TS: 0},
			`{"tag":"unk","value":1,"quality":"bad","status":2164195328,"ts":"1970-01-01T00:00:00Z"}`},
		{engine.Point{Tag: "f", Value: engine.Float(3), TS: 0},
			`{"tag":"f","value":3.0,"quality":"good","ts":"1970-01-01T00:00:00Z"}`},
		{engine.Point{Tag: "nan", Value: engine.Float(math.NaN()), Quality: engine.Uncertain},
			`{"tag":"nan","value":null,"quality":"uncertain","ts":"1970-01-01T00:00:00Z"}`},
		{engine.Point{Tag: "s\"\\\n\x01", Value: engine.String("ü\x00\xff"), Attrs: map[string]string{"z": "1", "a": "2"}},
			`{"tag":"s\"\\\n\u0001","value":"ü\u0000\ufffd","quality":"good","ts":"1970-01-01T00:00:00Z","attrs":{"a":"2","z":"1"}}`},
		{engine.Point{Tag: "u", Value: engine.Uint(math.MaxUint64)},
			`{"tag":"u","value":18446744073709551615,"quality":"good","ts":"1970-01-01T00:00:00Z"}`},
		{engine.Point{Tag: "b", Value: engine.Bool(true)},
			`{"tag":"b","value":true,"quality":"good","ts":"1970-01-01T00:00:00Z"}`},
	} {
		got := string(AppendPoint(nil, &tc.p))
		if got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("invalid JSON: %s", got)
		}
	}
}

func TestAppendTimeMatchesRFC3339Nano(t *testing.T) {
	for _, v := range []int64{0, 1, 999, 1_000_000_000, 1767225600123000000, 1767225600123456789, -1, -1_500_000_000,
		253402300799999999999 / 1000, time.Date(10000, 1, 1, 0, 0, 0, 5, time.UTC).UnixNano()} {
		want := `"` + time.Unix(0, v).UTC().Format(time.RFC3339Nano) + `"`
		if got := string(AppendTime(nil, v)); got != want {
			t.Errorf("AppendTime(%d) = %s, want %s", v, got, want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	in := []engine.Point{
		{Asset: "a", Tag: "x", Value: engine.Float(1.25), Quality: engine.Uncertain, Status: 0x40000000, TS: ts("2026-01-02T03:04:05.123456789Z")},
		{Tag: "y", Value: engine.Int(1 << 60), TS: ts("2026-01-02T03:04:05Z"), Attrs: map[string]string{"k": "v"}},
		{Asset: "a", Tag: "z", Value: engine.String("text"), Quality: engine.Bad, TS: 1},
		{Asset: "a", Tag: "w", Value: engine.Null(), TS: 2},
		{Asset: "a", Tag: "v", Value: engine.Float(1e300), TS: 3},
		{Asset: "a", Tag: "u", Value: engine.Uint(math.MaxUint64), TS: 4},
		{Asset: "a", Tag: "u", Value: engine.Uint(1 << 63), TS: 5},
		{Asset: "a", Tag: "m", Value: engine.Int(math.MinInt64), TS: 6},
	}
	out, err := DecodePoints(nil, AppendBatch(nil, in))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d points back, want %d", len(out), len(in))
	}
	for i := range in {
		a, b := in[i], out[i]
		if a.Asset != b.Asset || a.Tag != b.Tag || !a.Value.Equal(b.Value) || a.Value.Kind() != b.Value.Kind() ||
			a.Quality != b.Quality || a.Status != b.Status || a.TS != b.TS || len(a.Attrs) != len(b.Attrs) {
			t.Errorf("point %d: sent %+v, got %+v", i, a, b)
		}
	}
}

// Whole numbers keep every digit: int64, then uint64, and only beyond that a float.
func TestParseValueIntegers(t *testing.T) {
	for raw, want := range map[string]engine.Value{
		"9223372036854775807":  engine.Int(math.MaxInt64),
		"9223372036854775808":  engine.Uint(1 << 63),
		"18446744073709551615": engine.Uint(math.MaxUint64),
		"18446744073709551616": engine.Float(18446744073709551616),
		"-9223372036854775808": engine.Int(math.MinInt64),
	} {
		v, err := ParseValue([]byte(raw))
		if err != nil || v.Kind() != want.Kind() || !v.Equal(want) || v.String() != want.String() {
			t.Errorf("%s: %v (%s) %v, want %v (%s)", raw, v, v.Kind(), err, want, want.Kind())
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, bad := range []string{``, `{}`, `{"tag":"x","value":1,"quality":"great"}`, `{"tag":"x","ts":"yesterday"}`,
		`{"tag":"x","value":1e999}`, `[{"tag":"x"},{"value":1}]`, `{"tag":`, `"just a string"`} {
		if _, err := DecodePoints(nil, []byte(bad)); err == nil {
			t.Errorf("%q decoded without error", bad)
		}
	}
	p, err := DecodePoints(nil, []byte(`{"tag":"x","value":{"nested":[1,2]},"ts":1767225600000}`))
	if err != nil || p[0].Value.String() != `{"nested":[1,2]}` || p[0].TS != 1767225600000*int64(time.Millisecond) {
		t.Fatalf("nested value / ms timestamp: %+v %v", p, err)
	}
}

func TestAssetJSON(t *testing.T) {
	pts := []engine.Point{
		{Asset: "b", Tag: "t", Value: engine.Int(1)},
		{Asset: "a", Tag: "t", Value: engine.Int(2)},
		{Asset: "a", Tag: "u", Value: engine.Int(3)},
		{Asset: "a", Tag: "t", Value: engine.Int(4)}, // a later value of a/t wins
	}
	var lines []string
	GroupByAsset(pts, func(asset string, ps []engine.Point) error {
		lines = append(lines, string(AppendAssetJSON(nil, asset, ps)))
		return nil
	})
	want := []string{
		`{"asset":"a","points":{"u":{"value":3,"quality":"good","ts":"1970-01-01T00:00:00Z"},"t":{"value":4,"quality":"good","ts":"1970-01-01T00:00:00Z"}}}`,
		`{"asset":"b","points":{"t":{"value":1,"quality":"good","ts":"1970-01-01T00:00:00Z"}}}`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func BenchmarkAppendPoint(b *testing.B) {
	p := engine.Point{Asset: "line1", Tag: "temperature", Value: engine.Float(21.5), TS: ts("2026-11-22T10:00:00.123Z")}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendPoint(buf[:0], &p)
	}
	b.SetBytes(int64(len(buf)))
}

// A bad point carries its status name: one map lookup, no allocation.
func BenchmarkAppendPointBadStatus(b *testing.B) {
	p := engine.Point{Asset: "line1", Tag: "temperature", Value: engine.Null(), Quality: engine.Bad, Status: 0x808A0000, TS: ts("2026-11-22T10:00:00.123Z")}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendPoint(buf[:0], &p)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecodePoint(b *testing.B) {
	src := []byte(`{"asset":"line1","tag":"temperature","value":21.5,"quality":"good","ts":"2026-11-22T10:00:00.123Z"}`)
	dst := make([]engine.Point, 0, 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		dst, _ = DecodePoints(dst[:0], src)
	}
}

// FuzzDecode: arbitrary payloads never panic, and whatever decodes encodes
// back to valid JSON that decodes to the same points.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"asset":"a","tag":"t","value":1.5,"quality":"good","ts":"2026-11-22T10:00:00Z"}`))
	f.Add([]byte(`[{"tag":"t","value":true},{"tag":"u","value":"x","attrs":{"k":"v"}}]`))
	f.Add([]byte(`{"tag":"t","value":[1,{"a":null}],"ts":12.5}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		pts, err := DecodePoints(nil, data)
		if err != nil {
			return
		}
		enc := AppendBatch(nil, pts)
		if !json.Valid(enc) {
			t.Fatalf("invalid JSON from %q: %s", data, enc)
		}
		back, err := DecodePoints(nil, enc)
		if err != nil || len(back) != len(pts) {
			t.Fatalf("re-decode of %s: %v", enc, err)
		}
		for i := range pts {
			a, b := pts[i], back[i]
			sameValue := a.Value.Equal(b.Value) || (a.Value.Kind() == engine.KindFloat && b.Value.IsNull())
			if a.Tag != b.Tag || a.Asset != b.Asset || !sameValue || a.TS != b.TS {
				t.Fatalf("round trip changed %+v into %+v", a, b)
			}
		}
	})
}

// PointFields is the list readers match keys against: it must name
// wirePoint's members, in order.
func TestPointFieldsAreWirePoint(t *testing.T) {
	typ := reflect.TypeFor[wirePoint]()
	if typ.NumField() != len(PointFields) {
		t.Fatalf("wirePoint has %d fields, PointFields %d", typ.NumField(), len(PointFields))
	}
	for i, name := range PointFields {
		if tag := typ.Field(i).Tag.Get("json"); tag != name {
			t.Errorf("field %d: wirePoint reads %q, PointFields says %q", i, tag, name)
		}
	}
}
