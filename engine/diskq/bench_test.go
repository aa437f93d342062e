package diskq

import (
	"context"
	"log/slog"
	"testing"

	"github.com/flowd/flowd/engine"
)

const benchBatch = 500

// BenchmarkAppend measures Push with each fsync policy: points/s and MB/s
// (record bytes on disk) reach stable storage at.
func BenchmarkAppend(b *testing.B) {
	for _, fsync := range []string{"batch", "interval", "never"} {
		b.Run("fsync="+fsync, func(b *testing.B) {
			q, err := Open(Options{Dir: b.TempDir(), Fsync: fsync, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			src := batch(0, benchBatch)
			b.SetBytes(int64(len((&Queue{}).encode(src))))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pts := append(engine.GetPoints(benchBatch), src...)
				if err := q.Push(context.Background(), engine.NewBatch(pts, nil)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "points/s")
		})
	}
}

// BenchmarkReplay measures reading a backlog back: Pop, decode, Ack.
func BenchmarkReplay(b *testing.B) {
	q, err := Open(Options{Dir: b.TempDir(), Fsync: "never", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	src := batch(0, benchBatch)
	for i := 0; i < b.N; i++ {
		if err := q.Push(context.Background(), engine.NewBatch(append(engine.GetPoints(benchBatch), src...), nil)); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len((&Queue{}).encode(src))))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bt, ok := q.TryPop()
		if !ok {
			b.Fatalf("backlog ended at %d", i)
		}
		bt.Ack(nil)
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "points/s")
}
