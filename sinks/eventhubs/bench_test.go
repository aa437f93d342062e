package eventhubs

import (
	"fmt"
	"testing"
	"time"

	"github.com/flowd/flowd/codecs"
	"github.com/flowd/flowd/engine"
)

// BenchmarkAMQPEncode turns 1,000 points into AMQP events in each format.
func BenchmarkAMQPEncode(b *testing.B) {
	ts := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).UnixNano()
	pts := make([]engine.Point, 0, 1000)
	for i := range 1000 {
		pts = append(pts, engine.Point{Asset: fmt.Sprintf("line%d", i%10), Tag: fmt.Sprintf("tag%03d", i%100), Value: engine.Float(float64(i) * 0.25), TS: ts + int64(i)*1e6})
	}
	for _, format := range []string{"json", "json_batch", "asset_json"} {
		b.Run(format, func(b *testing.B) {
			c := config()
			c.Format, c.PartitionKeyBy = format, "asset"
			if format == "json_batch" {
				c.PartitionKeyBy = "none"
			}
			s, err := New(c, &engine.Env{Codecs: codecs.All()})
			if err != nil {
				b.Fatal(err)
			}
			tr := &amqpTransport{s: s.(*Sink)}
			b.ReportAllocs()
			for b.Loop() {
				tr.encode(pts)
			}
			b.ReportMetric(float64(b.N*len(pts))/b.Elapsed().Seconds(), "points/s")
		})
	}
}
