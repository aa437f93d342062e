package kafka

import (
	"context"
	"fmt"
	"strings"
	"syscall"
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
	return benchRecordsShape(n, per, `{"asset":"tracker-%d","tag":"t%d","value":%d.5,"quality":"good","ts":"2025-10-09T08:00:00.000Z"}`)
}

// benchRecordsShape formats each point with shape(record%1000, k, record+k).
func benchRecordsShape(n, per int, shape string) kgo.FetchTopicPartition {
	recs := make([]*kgo.Record, n)
	ts := time.Unix(1_760_000_000, 0)
	for i := range recs {
		var b strings.Builder
		b.WriteByte('[')
		for k := range per {
			if k > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, shape, i%1000, k, i+k)
		}
		b.WriteByte(']')
		recs[i] = &kgo.Record{Topic: "bench", Partition: 0, Offset: int64(i), Value: []byte(b.String()), Timestamp: ts}
	}
	return kgo.FetchTopicPartition{Topic: "bench", FetchPartition: kgo.FetchPartition{Partition: 0, Records: recs, HighWatermark: int64(n)}}
}

func benchDecode(b *testing.B, format string, per int, attrs bool) {
	benchDecodeRecords(b, format, per, attrs, benchRecords(1000, per))
}

func benchDecodeRecords(b *testing.B, format string, per int, attrs bool, fp kgo.FetchTopicPartition) {
	s := newSource(b, Config{Brokers: []string{"127.0.0.1:1"}, Topics: []string{"bench"}, Group: "bench", Format: format,
		BatchSize: 5000, RecordAttrs: attrs})
	s.parts[tp{"bench", 0}] = &partState{committed: -1, labels: [2]string{"bench", "0"}}
	bt := batcher{s: s, out: discardOutput{}, dec: s.dec.Clone()}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuSeconds()
	for range b.N {
		if err := bt.partition(ctx, fp); err != nil {
			b.Fatal(err)
		}
	}
	points := float64(b.N) * 1000 * float64(per)
	b.ReportMetric(points/b.Elapsed().Seconds(), "points/s")
	// On a shared machine wall time includes time spent descheduled; CPU
	// time (this process, GC included) gives the rate per core.
	b.ReportMetric(points/(cpuSeconds()-cpu0), "points/cpu-s")
}

// BenchmarkRecordsJSONBatch: records of 100 points each (json_batch) to a
// discarding output; points/s is per core (the loop is one goroutine).
func BenchmarkRecordsJSONBatch(b *testing.B) { benchDecode(b, "json", 100, false) }

// BenchmarkRecordsJSONBatchSmall: json_batch of 100 points carrying only
// asset, tag and an integer value (the e2e tests' shape).
func BenchmarkRecordsJSONBatchSmall(b *testing.B) {
	benchDecodeRecords(b, "json", 100, false, benchRecordsShape(1000, 100, `{"asset":"p%d","tag":"s%d","value":%d}`))
}

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

// cpuSeconds is the process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
