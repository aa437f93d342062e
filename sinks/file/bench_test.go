package file

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/flowd/flowd/codecs"
	"github.com/flowd/flowd/engine"
)

func benchPoints(n int) []engine.Point {
	ts := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).UnixNano()
	pts := make([]engine.Point, 0, n)
	for i := range n {
		pts = append(pts, engine.Point{Asset: fmt.Sprintf("line%d", i%10), Tag: fmt.Sprintf("tag%03d", i%100), Value: engine.Float(float64(i) * 0.25), TS: ts + int64(i)*1e6})
	}
	return pts
}

// BenchmarkWrite writes 1,000-point batches to /dev/null in each format:
// the encoding and framing of a batch plus one write call.
func BenchmarkWrite(b *testing.B) {
	for _, format := range []string{"json", "json_batch", "asset_json"} {
		b.Run(format, func(b *testing.B) {
			sk, err := New(&Config{Path: os.DevNull, Format: format, Mode: "append"}, &engine.Env{Codecs: codecs.All()})
			if err != nil {
				b.Fatal(err)
			}
			s := sk.(*Sink)
			if err := s.Connect(context.Background()); err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			pts := benchPoints(1000)
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Write(context.Background(), pts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(pts))/b.Elapsed().Seconds(), "points/s")
		})
	}
}
