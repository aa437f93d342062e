package kafka

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Against the real broker: eight batches produced at once through
// WriteAsync settle each with its own outcome — a too-large point rejected
// by its index, nothing to retry — and every other record lands once.
func TestRealWriteAsyncSettlesEachBatch(t *testing.T) {
	broker := os.Getenv("FLOWD_TEST_KAFKA")
	if broker == "" {
		t.Skip("FLOWD_TEST_KAFKA is not set: run `eval \"$(e2e/services.sh env)\"` first")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := config(broker)
	cfg.Topic = fmt.Sprintf("async-%d", time.Now().UnixNano())
	cfg.CreateTopic, cfg.Partitions, cfg.MaxMessageBytes = true, 3, 1000
	s := connected(ctx, t, cfg)
	const batches, size = 8, 500
	var wg sync.WaitGroup
	outcomes := make([]error, batches)
	for b := range batches {
		pts := make([]engine.Point, size)
		for i := range pts {
			pts[i] = engine.Point{Asset: "a", Tag: fmt.Sprintf("t%d", i%10), Value: engine.Int(int64(b*size + i)), TS: int64(i)}
		}
		pts[b].Value = engine.String(strings.Repeat("x", 2000)) // one too large per batch, at index b
		wg.Add(1)
		s.WriteAsync(ctx, pts, func(err error) { outcomes[b] = err; wg.Done() })
	}
	wg.Wait()
	for b, err := range outcomes {
		var we *engine.WriteError
		if !errors.As(err, &we) || we.Err != nil || len(we.Retries()) != 0 {
			t.Fatalf("batch %d: outcome %v, want one rejection", b, err)
		}
		if r := we.Rejections(); len(r) != 1 || r[0].Index != b || r[0].Reason != "too_large" {
			t.Fatalf("batch %d: rejections %+v", b, r)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(cfg.Topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	n := 0
	for n < batches*(size-1) && ctx.Err() == nil {
		n += cl.PollFetches(ctx).NumRecords()
	}
	if n != batches*(size-1) {
		t.Fatalf("read %d records, want %d", n, batches*(size-1))
	}
}
