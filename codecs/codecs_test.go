package codecs

import (
	"fmt"
	"testing"
	"time"

	"github.com/flowd/flowd/engine/codec"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec/codectest"
)

// TestConformance runs the codec conformance suite against every codec of
// the build.
func TestConformance(t *testing.T) {
	all := All().All()
	if len(all) < 4 {
		t.Fatalf("%d codecs registered", len(all))
	}
	for _, c := range all {
		t.Run(c.Name, func(t *testing.T) { codectest.Run(t, c) })
	}
}

// FuzzDecode feeds every decoder arbitrary bytes: a payload is decoded or
// rejected with a reason, never a crash (go test -fuzz FuzzDecode ./codecs).
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"tag":"a","value":1}`, `[{"tag":"a","value":1.5,"ts":1}]`, `{"T":{"Value":1,"StatusCode":{"Code":1}}}`,
		`{"asset":"a","points":{"t":{"value":true,"quality":"bad","ts":"2026-01-01T00:00:00Z"}}}`, `42`, ``} {
		f.Add([]byte(s))
	}
	all := All().All()
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, c := range all {
			if c.Decode == nil {
				continue
			}
			out, err := c.Decode(nil, &engine.Message{Payload: b, Now: 1})
			if err != nil {
				if len(out) != 0 {
					t.Fatalf("%s: error %v with %d points", c.Name, err, len(out))
				}
				if engine.RejectReason(err) == "decode" {
					t.Fatalf("%s: error %v without a reason", c.Name, err)
				}
				continue
			}
			for _, p := range out {
				if p.Tag == "" {
					t.Fatalf("%s: point without a tag from %q", c.Name, b)
				}
			}
		}
	})
}

// BenchmarkEncode frames 1,000 points with each codec (no limit), as a sink
// does per batch.
func BenchmarkEncode(b *testing.B) {
	pts := benchPoints(1000)
	for _, c := range All().All() {
		if c.Encode == nil {
			continue
		}
		b.Run(c.Name, func(b *testing.B) {
			f := codec.Framer{Codec: c, MaxBytes: 1 << 20}
			var buf []byte
			var frames []codec.Frame
			b.ReportAllocs()
			for b.Loop() {
				buf, frames = f.Append(buf[:0], frames[:0], pts, nil)
			}
			b.ReportMetric(float64(b.N*len(pts))/b.Elapsed().Seconds(), "points/s")
		})
	}
}

// BenchmarkDecode decodes each codec's messages of 1,000 points.
func BenchmarkDecode(b *testing.B) {
	pts := benchPoints(1000)
	for _, c := range All().All() {
		if c.Decode == nil || c.Encode == nil {
			continue
		}
		b.Run(c.Name, func(b *testing.B) {
			f := codec.Framer{Codec: c}
			buf, frames := f.Append(nil, nil, append([]engine.Point(nil), pts...), nil)
			out := make([]engine.Point, 0, len(pts))
			m := &engine.Message{Now: 1}
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				out = out[:0]
				for i := range frames {
					m.Payload = frames[i].Payload(buf)
					var err error
					if out, err = c.Decode(out, m); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N*len(pts))/b.Elapsed().Seconds(), "points/s")
		})
	}
}

func benchPoints(n int) []engine.Point {
	ts := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).UnixNano()
	pts := make([]engine.Point, 0, n)
	for i := range n {
		pts = append(pts, engine.Point{Asset: fmt.Sprintf("line%d", i%10), Tag: fmt.Sprintf("tag%03d", i%100), Value: engine.Float(float64(i) * 0.25), TS: ts + int64(i)*1e6})
	}
	return pts
}
