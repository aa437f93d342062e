package kafka

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/twmb/franz-go/pkg/kgo"
)

// discardOutput acknowledges every batch at once and returns its slice to
// the pool, as the discard sink does.
type discardOutput struct{}

func (discardOutput) Emit(_ context.Context, pts []engine.Point, done func(error)) error {
	engine.PutPoints(pts)
	if done != nil {
		done(nil)
	}
	return nil
}

// benchRecords builds a fetched partition of n records, each a JSON array
// of per points (json_batch, as the kafka sink writes it).
func benchRecords(n, per int) kgo.FetchTopicPartition {
	recs := make([]*kgo.Record, n)
	ts := time.Unix(1_760_000_000, 0)
	for i := range recs {
		var b strings.Builder
		b.WriteByte('[')
		for k := range per {
			if k > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"asset":"tracker-%d","tag":"t%d","value":%d.5,"quality":"good","ts":"2025-10-09T08:00:00.%03dZ"}`, i%1000, k, i+k, k)
		}
		b.WriteByte(']')
		recs[i] = &kgo.Record{Topic: "bench", Partition: 0, Offset: int64(i), Value: []byte(b.String()), Timestamp: ts}
	}
	return kgo.FetchTopicPartition{Topic: "bench", FetchPartition: kgo.FetchPartition{Partition: 0, Records: recs, HighWatermark: int64(n)}}
}

func benchDecode(b *testing.B, format string, per int, attrs bool) {
	s := newSource(b, Config{Brokers: []string{"127.0.0.1:1"}, Topics: []string{"bench"}, Group: "bench", Format: format,
		BatchSize: 5000, RecordAttrs: attrs})
	s.parts[tp{"bench", 0}] = &partState{committed: -1, labels: [2]string{"bench", "0"}}
	fp := benchRecords(1000, per)
	bt := batcher{s: s, out: discardOutput{}, dec: s.dec.Clone()}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := bt.partition(ctx, fp); err != nil {
			b.Fatal(err)
		}
	}
	points := float64(b.N) * 1000 * float64(per)
	b.ReportMetric(points/b.Elapsed().Seconds(), "points/s")
}

// BenchmarkRecordsJSONBatch: records of 100 points each (json_batch) to a
// discarding output; points/s is per core (the loop is one goroutine).
func BenchmarkRecordsJSONBatch(b *testing.B) { benchDecode(b, "json", 100, false) }

// BenchmarkRecordsJSONPoint: one point per record (json).
func BenchmarkRecordsJSONPoint(b *testing.B) { benchDecode(b, "json", 1, false) }

// BenchmarkRecordsJSONBatchAttrs: json_batch with record_attrs.
func BenchmarkRecordsJSONBatchAttrs(b *testing.B) { benchDecode(b, "json", 100, true) }

// BenchmarkRecordsRaw: format raw (the value as a string, no JSON), one
// point per record: the source's own cost per record without the decoder's.
func BenchmarkRecordsRaw(b *testing.B) {
	s := newSource(b, Config{Brokers: []string{"127.0.0.1:1"}, Topics: []string{"bench"}, Group: "bench", Format: "raw", Tag: "v", BatchSize: 5000})
	s.parts[tp{"bench", 0}] = &partState{committed: -1, labels: [2]string{"bench", "0"}}
	fp := benchRecords(1000, 1)
	bt := batcher{s: s, out: discardOutput{}, dec: s.dec.Clone()}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := bt.partition(ctx, fp); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "points/s")
}
