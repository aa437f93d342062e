package mqtt

import (
	"testing"

	"github.com/flowd/flowd/engine"
)

// BenchmarkMessages encodes 999 points into messages in each format.
func BenchmarkMessages(b *testing.B) {
	for _, format := range []string{"json", "json_batch", "asset_json"} {
		b.Run(format, func(b *testing.B) {
			s := sink(b, Config{TopicExpr: engine.Expr{Src: "'plant/' + asset"}, Format: format})
			pts := make([]engine.Point, 0, 1000)
			for range 333 {
				pts = append(pts, points()...)
			}
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				_, buf = s.Messages(buf[:0], pts, nil)
			}
			b.ReportMetric(float64(b.N*len(pts))/b.Elapsed().Seconds(), "points/s")
		})
	}
}
