package payload

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/flowd/flowd/codecs"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
)

// differential decodes payload with the fast path (falling back as in
// production) and with encoding/json alone, and fails unless both give the
// same points or both reject. A tag map's points come out of encoding/json
// in map order, so points are compared sorted by tag (stable: an array's
// order is kept).
func differential(t *testing.T, fast, general *Decoder, topic string, payload []byte) (fastTook bool) {
	t.Helper()
	want, werr := decodeReference(general, nil, topic, payload)
	// The fast path on its own: whatever it accepts, encoding/json accepts
	// with the same points.
	if data := bytes.TrimSpace(payload); len(data) > 0 && (data[0] == '{' || data[0] == '[') {
		fast.ev.reset()
		pts, ok := fast.decodeFast(nil, topic, data, now)
		if ok && werr != nil {
			t.Fatalf("%q: the fast path accepted %+v, encoding/json rejects: %v", payload, pts, werr)
		}
		fastTook = ok
	}
	got, gerr := fast.Decode(nil, topic, payload, now)
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("%q: fast path err %v, encoding/json err %v (points %+v / %+v)", payload, gerr, werr, got, want)
	}
	if gerr != nil {
		// A reject always comes from the general decoder, so its reason is
		// that decoder's (which of a tag map's bad entries it names first
		// follows Go's map order, so the texts are not compared).
		return fastTook
	}
	byTag := func(a, b engine.Point) int { return strings.Compare(a.Tag, b.Tag) }
	slices.SortStableFunc(got, byTag)
	slices.SortStableFunc(want, byTag)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\nfast    %+v\ngeneral %+v", payload, got, want)
	}
	return fastTook
}

// decodeReference decodes with the json codec alone (encoding/json), the
// reference the fast path is checked against.
func decodeReference(d *Decoder, dst []engine.Point, topic string, payload []byte) ([]engine.Point, error) {
	d.ev.reset()
	return d.decodeGeneral(dst, topic, payload, now)
}

// decoderPairs are decoders with and without topic expressions (asset and
// tag from the topic change which payloads are accepted), each with a twin
// for decodeReference.
func decoderPairs(t testing.TB) [][2]*Decoder {
	var pairs [][2]*Decoder
	for _, o := range []Options{
		{Codecs: codecs.All(), Format: "json", Subject: "topic"},
		{Codecs: codecs.All(), Format: "json", Subject: "topic", AssetExpr: engine.Expr{Src: "topic[1]"}, TagExpr: engine.Expr{Src: "topic[2]"}},
		{Codecs: codecs.All(), Format: "json", Subject: "topic", Asset: "fixed"},
	} {
		f, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		g, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, [2]*Decoder{f, g})
	}
	return pairs
}

// The fast path's field indexes name the members they stand for.
func TestFastFieldIndexes(t *testing.T) {
	for i, want := range map[int]string{fAsset: "asset", fTag: "tag", fValue: "value", fQuality: "quality", fStatus: "status", fTS: "ts", fAttrs: "attrs"} {
		if codec.PointFields[i] != want {
			t.Errorf("index %d is %q in codec.PointFields, the fast path reads it as %q", i, codec.PointFields[i], want)
		}
	}
	if nFields != len(codec.PointFields) {
		t.Errorf("the fast path knows %d fields, codec.PointFields has %d", nFields, len(codec.PointFields))
	}
}

var fastSeeds = []string{
	`{"asset":"c1-asset3","tag":"tag17","value":48.123,"quality":"good","ts":"2026-11-22T10:00:00.123Z","attrs":{"pad":"xxxxxxxx"}}`,
	`{"tag":"a","value":1.5,"ts":"2026-11-22T10:00:00Z"}`, `{"tag":"a"}`, `{"value":1}`, `{"tag":"","value":1}`,
	`[{"tag":"a","value":1},{"tag":"b","value":"x","quality":"bad"}]`, `[]`, `[null]`, `[{"tag":"a","value":1},null]`, `[1]`,
	`{"Temp":{"Value":21.5,"SourceTimestamp":"2026-11-22T09:00:00Z","StatusCode":0}}`,
	`{"Temp":21.5,"Pressure":{"Value":1,"StatusCode":{"Code":2150891520,"Symbol":"Bad"}}}`,
	`{"Temp":1,"Temp":2}`, `{"tag":"a","tag":"b","value":1}`, `{"TAG":"a","value":1}`, `{"Tag":"a","Value":2}`,
	`{"tag":"a","value":1,"Status":5}`, `{"Status":5,"Temp":1}`, `{"Status":"x","Temp":1}`, `{"status":5,"Temp":1}`,
	`{"taſ":1}`, `{"aſſet":"x","tag":"a","value":1}`, `{"Kode":1}`, `{"T":{"Value":1,"StatusCode":{"Code":-1}}}`,
	`{"T":{"value":1}}`, `{"T":{"Value":1,"Value":2}}`, `{"T":{"Valu":1}}`, `{"T":{"Value":{"a":1}}}`, `{"T":[1]}`,
	`{"t\u0061g":"a","value":1}`, `{"tag":"\u00e9","value":1}`, `{"tag":"é","value":"\ud800"}`, "{\"tag\":\"\xff\",\"value\":1}",
	"{\"\xff\":1}", `{"":1}`, `{}`, `{"tag":5,"value":1}`, `{"tag":null,"value":null}`, `{"tag":"a","value":null,"quality":null}`,
	`{"tag":"a","value":1,"quality":"Uncertain"}`, `{"tag":"a","value":1,"quality":"meh"}`, `{"tag":"a","value":1,"status":1073741824}`,
	`{"tag":"a","value":1,"status":1073741824,"quality":"good"}`, `{"tag":"a","value":1,"status":-1}`, `{"tag":"a","value":1,"status":1.0}`,
	`{"tag":"a","value":1,"status":4294967296}`, `{"tag":"a","value":1e999}`, `{"tag":"a","value":18446744073709551615}`,
	`{"tag":"a","value":184467440737095516150}`, `{"tag":"a","value":-9223372036854775809}`, `{"tag":"a","value":-0}`,
	`{"tag":"a","value":1,"ts":-9999999999999999999}`, `{"tag":"a","value":1,"ts":1700000000001.5}`, `{"tag":"a","value":1,"ts":1.7e12}`,
	`{"tag":"a","value":1,"ts":0}`, `{"tag":"a","value":1,"ts":"bad"}`, `{"tag":"a","value":1,"ts":true}`, `{"tag":"a","value":1,"ts":"2026-11-22T10:00:00+02:00"}`,
	`{"tag":"a","value":1,"attrs":{}}`, `{"tag":"a","value":1,"attrs":{"k":null}}`, `{"tag":"a","value":1,"attrs":{"k":1}}`,
	`{"tag":"a","value":1,"attrs":{"k":"v","k":"w"}}`, `{"tag":"a","value":1,"attrs":null}`, `{"tag":"a","value":1,"attrs":[]}`,
	`{"tag":"a","value":1,"status_name":"Good","extra":{"deep":[1,{"x":"}"}]}}`, `{"tag":"a","value":1} x`, `{"tag":"a","value":1}` + "\v",
	` [ {"tag" : "a" , "value" : [ ] } ] `, `{"tag":"a","value":{}}`, `{"tag":"a","value":"multi\nline"}`, `{"tag":"a","value":true,"value":false}`,
	`42`, `"s"`, `null`, `nan`, `{`, `[{]`, `{"a":1,}`, `[{"tag":"a","value":1}]]`,
}

func FuzzFastMatchesGeneral(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add("plant/line1/temp", []byte(s))
	}
	pairs := decoderPairs(f)
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		for _, p := range pairs {
			differential(t, p[0], p[1], topic, payload)
		}
	})
}

// TestFastMatchesGeneralRandom runs the differential check over generated
// payloads: byte-level fuzzing seldom produces well-formed point objects, so
// these are built from the shapes' own pieces, with case changes, repeated
// members, wrong types, escapes and truncation mixed in.
func TestFastMatchesGeneralRandom(t *testing.T) {
	pairs := decoderPairs(t)
	r := rand.New(rand.NewPCG(16, 3))
	n := 30000
	if testing.Short() {
		n = 3000
	}
	took := 0
	for range n {
		payload := randomPayload(r)
		for _, p := range pairs {
			if differential(t, p[0], p[1], "plant/line1/temp", payload) {
				took++
			}
		}
	}
	// The check means something only if the fast path accepts a fair share.
	t.Logf("fast path accepted %d of %d decodes", took, n*len(pairs))
	if took < n*len(pairs)/10 {
		t.Errorf("fast path accepted only %d of %d decodes", took, n*len(pairs))
	}
}

var (
	randKeys = []string{"asset", "tag", "value", "quality", "status", "ts", "attrs", "Tag", "VALUE", "status_name", "x", "Temp",
		"Pressure", "t\\u0061g", "é", "ſtatus", "Value", "SourceTimestamp", "StatusCode", "Code", ""}
	randScalars = []string{`1`, `-2`, `0`, `1.5`, `-0.0`, `1e3`, `1E-7`, `18446744073709551615`, `99999999999999999999`, `true`, `false`,
		`null`, `"a"`, `"good"`, `"bad"`, `"Uncertain"`, `"2026-11-22T10:00:00.5Z"`, `"2026-11-22T10:00:00+01:00"`, `"x\"y"`, `"\u00e9"`,
		`1700000000000`, `1700000000000.25`, `4294967295`, `4294967296`, `-1`, `"é"`, `""`, `1073741824`, `2147483648`, `3221225472`}
)

func randomValue(r *rand.Rand, depth int) string {
	switch x := r.IntN(10); {
	case depth < 3 && x == 0:
		return randomObject(r, depth+1)
	case depth < 3 && x == 1:
		var b strings.Builder
		b.WriteByte('[')
		for i := range r.IntN(3) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(randomValue(r, depth+1))
		}
		b.WriteByte(']')
		return b.String()
	}
	return randScalars[r.IntN(len(randScalars))]
}

func randomObject(r *rand.Rand, depth int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range r.IntN(6) {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%s", randKeys[r.IntN(len(randKeys))], randomValue(r, depth))
	}
	b.WriteByte('}')
	return b.String()
}

func randomPayload(r *rand.Rand) []byte {
	var s string
	switch r.IntN(4) {
	case 0: // a well-formed point
		s = fmt.Sprintf(`{"asset":"a%d","tag":"t%d","value":%s,"quality":%s,"ts":%s}`, r.IntN(3), r.IntN(3),
			randScalars[r.IntN(len(randScalars))], []string{`"good"`, `"bad"`, `null`, `""`, `"x"`}[r.IntN(5)],
			[]string{`"2026-11-22T10:00:00Z"`, `1700000000000`, `null`, `"bad"`}[r.IntN(4)])
	case 1: // an array of objects
		var b strings.Builder
		b.WriteByte('[')
		for i := range r.IntN(4) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(randomObject(r, 1))
		}
		b.WriteByte(']')
		s = b.String()
	case 2: // a tag map
		var b strings.Builder
		b.WriteByte('{')
		for i := range 1 + r.IntN(4) {
			if i > 0 {
				b.WriteByte(',')
			}
			v := randScalars[r.IntN(len(randScalars))]
			if r.IntN(2) == 0 {
				v = fmt.Sprintf(`{"Value":%s,"SourceTimestamp":%s,"StatusCode":%s}`, v, randScalars[r.IntN(len(randScalars))],
					[]string{`0`, `2150891520`, `{"Code":1073741824}`, `null`, `"x"`}[r.IntN(5)])
			}
			fmt.Fprintf(&b, `"tag%d":%s`, r.IntN(5), v)
		}
		b.WriteByte('}')
		s = b.String()
	default:
		s = randomObject(r, 0)
	}
	b := []byte(s)
	switch r.IntN(8) {
	case 0:
		if len(b) > 1 {
			b = b[:r.IntN(len(b))] // truncated
		}
	case 1:
		b = bytes.ReplaceAll(b, []byte(`"tag"`), []byte(`"TAG"`))
	}
	return b
}

// The json shapes decode without allocating in steady state (the string
// value of a string point is the one exception: it is the point's data).
func TestFastPathAllocations(t *testing.T) {
	for _, tc := range []struct{ name, payload string }{
		{"point", `{"asset":"c1-asset3","tag":"tag17","value":48.123,"quality":"good","ts":"2026-11-22T10:00:00.123Z","attrs":{"pad":"xxxxxxxxxxxxxxxxxxxx"}}`},
		{"array", `[{"tag":"a","value":1,"ts":1700000000000},{"tag":"b","value":true,"quality":"bad"}]`},
		{"tagmap", `{"Temp":{"Value":21.5,"SourceTimestamp":"2026-11-22T09:00:00Z","StatusCode":0},"Running":true}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := New(Options{Codecs: codecs.All(), Format: "json", Subject: "topic", AssetExpr: engine.Expr{Src: "topic[1]"}})
			if err != nil {
				t.Fatal(err)
			}
			dst := make([]engine.Point, 0, 4)
			// Three variants, as a publisher padding values of different
			// lengths sends them.
			var payloads [][]byte
			for i := range 3 {
				payloads = append(payloads, []byte(strings.Replace(tc.payload, "xxxx", strings.Repeat("y", i), 1)))
			}
			for _, p := range payloads {
				if _, err := d.Decode(dst, "plant/line1", p, now); err != nil {
					t.Fatal(err)
				}
			}
			i := 0
			if a := testing.AllocsPerRun(300, func() {
				i++
				if _, err := d.Decode(dst[:0], "plant/line1", payloads[i%3], now); err != nil {
					t.Fatal(err)
				}
			}); a != 0 {
				t.Errorf("%v allocations per message", a)
			}
		})
	}
}

// BenchmarkDecodeJSON compares the fast path with encoding/json on the json
// shapes; point is `flowd sim mqtt`'s 180-byte message.
func BenchmarkDecodeJSON(b *testing.B) {
	shapes := []struct{ name, payload string }{
		{"point", `{"asset":"c1-asset3","tag":"tag17","value":48.123,"quality":"good","ts":"2026-11-22T10:00:00.123456789Z","attrs":{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}`},
		{"array", `[{"tag":"a","value":1,"ts":1700000000000},{"tag":"b","value":true,"quality":"bad"},{"tag":"c","value":2.5}]`},
		{"tagmap", `{"Temp":{"Value":21.5,"SourceTimestamp":"2026-11-22T09:00:00Z"},"Pressure":{"Value":1.013,"SourceTimestamp":"2026-11-22T09:00:00Z"},"Running":{"Value":true,"SourceTimestamp":"2026-11-22T09:00:00Z"}}`},
	}
	for _, sh := range shapes {
		for _, general := range []bool{false, true} {
			name := sh.name + "/fast"
			if general {
				name = sh.name + "/encoding-json"
			}
			b.Run(name, func(b *testing.B) {
				d, err := New(Options{Codecs: codecs.All(), Format: "json", Subject: "topic", AssetExpr: engine.Expr{Src: "topic[1]"}})
				if err != nil {
					b.Fatal(err)
				}
				payload := []byte(sh.payload)
				dst := make([]engine.Point, 0, 4)
				b.ReportAllocs()
				b.SetBytes(int64(len(payload)))
				for b.Loop() {
					if general {
						dst, err = decodeReference(d, dst[:0], "plant/line1", payload)
					} else {
						dst, err = d.Decode(dst[:0], "plant/line1", payload, now)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(dst)), "ns/point")
			})
		}
	}
}
