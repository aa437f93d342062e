package file

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowd/flowd/codecs"
	"github.com/flowd/flowd/engine"
)

type discardOut struct{}

func (discardOut) Emit(ctx context.Context, pts []engine.Point, done func(error)) error {
	if done != nil {
		done(nil)
	}
	return nil
}

// BenchmarkReadJSON replays 10,000 canonical JSON lines (decode included).
func BenchmarkReadJSON(b *testing.B) {
	var data []byte
	for i := range 10000 {
		data = fmt.Appendf(data, `{"asset":"line%d","tag":"tag%03d","value":%d.25,"quality":"good","ts":"2026-11-22T10:00:00.%03dZ"}`+"\n", i%10, i%100, i, i%1000)
	}
	path := filepath.Join(b.TempDir(), "in.jsonl")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	src, err := New(&Config{Path: path, BatchSize: 1000, MaxLine: 1 << 20, Format: "json"}, &engine.Env{Codecs: codecs.All()})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := src.Run(context.Background(), discardOut{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*10000)/b.Elapsed().Seconds(), "points/s")
}
