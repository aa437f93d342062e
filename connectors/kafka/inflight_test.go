package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
)

// heldBytes is the estimate of every batch out holds, acknowledged or not.
func heldBytes(out *heldOutput) int64 {
	var n int64
	for _, b := range out.snapshot() {
		n += engine.EstimateBytes(b.points)
	}
	return n
}

// TestBackpressureBytesStopsPolling: records of one 16 KiB string value
// each, with max_in_flight far away: with nothing acknowledged the source
// stops polling at max_in_flight_bytes (plus one poll), the gauge shows
// the estimated bytes of exactly the points held, and once everything is
// acknowledged both counters are back at zero.
func TestBackpressureBytesStopsPolling(t *testing.T) {
	brokers := broker(t)
	tp := topic(t, brokers, 1)
	const n, size, bound, poll = 120, 16 << 10, 128 << 10, 4
	big := strings.Repeat("x", size)
	produce(t, brokers, tp, n, func(i int) string { return fmt.Sprintf(`{"tag":"t%03d","value":%q}`, i, big) }, func(int) int32 { return 0 })
	src := newSource(t, Config{Brokers: []string{brokers}, Topics: []string{tp}, Group: tp + "-g",
		MaxInFlightBytes: bound, MaxPollRecords: poll, BatchSize: 1})
	out := &heldOutput{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()

	per := engine.EstimateBytes([]engine.Point{{Tag: "t000", Value: engine.String(big)}})
	atBound := int((bound + per - 1) / per) // points whose bytes reach the bound
	waitFor(t, 30*time.Second, func() bool { return out.points() >= atBound }, "the byte bound to be reached")
	time.Sleep(time.Second)
	got, inflight := out.points(), src.inflightBytes.Load()
	t.Logf("held %d points of %d bytes each: %d bytes in flight (bound %d)", got, per, inflight, bound)
	// The last poll started below the bound and took at most poll records.
	if got > atBound-1+poll {
		t.Fatalf("%d points of %d bytes taken with nothing acknowledged: the byte bound %d allows %d + a poll of %d", got, per, bound, atBound, poll)
	}
	if want := heldBytes(out); inflight != want || testutil.ToFloat64(src.inflightBytesGauge) != float64(want) {
		t.Fatalf("in-flight bytes %d, gauge %v, want the estimate of the held points %d", inflight, testutil.ToFloat64(src.inflightBytesGauge), want)
	}
	stop := out.ackAsTheyCome()
	waitFor(t, 30*time.Second, func() bool { return out.points() == n }, "every point")
	waitFor(t, 5*time.Second, func() bool { return src.inflight.Load() == 0 && src.inflightBytes.Load() == 0 }, "nothing in flight")
	stop()
	for _, b := range out.snapshot() {
		if s, _ := b.points[0].Value.Str(); len(s) != size {
			t.Fatalf("value of %d bytes, want %d", len(s), size)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRecordLargerThanByteBound: a record whose points alone exceed
// max_in_flight_bytes still goes through (nothing else in flight), then the
// source waits for its acknowledgement before taking the next one.
func TestRecordLargerThanByteBound(t *testing.T) {
	brokers := broker(t)
	tp := topic(t, brokers, 1)
	const n = 3
	big := strings.Repeat("y", 64<<10)
	produce(t, brokers, tp, n, func(i int) string { return fmt.Sprintf(`{"tag":"t%d","value":%q}`, i, big) }, func(int) int32 { return 0 })
	src := newSource(t, Config{Brokers: []string{brokers}, Topics: []string{tp}, Group: tp + "-g",
		MaxInFlightBytes: minInFlightBytes, MaxPollRecords: 1, BatchSize: 1})
	out := &heldOutput{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	for i := range n {
		waitFor(t, 30*time.Second, func() bool { return out.points() >= i+1 }, fmt.Sprintf("record %d", i))
		time.Sleep(300 * time.Millisecond)
		if got := out.points(); got != i+1 {
			t.Fatalf("%d points taken while a %d-byte record was in flight (bound %d)", got, len(big), minInFlightBytes)
		}
		out.snapshot()[i].done(nil)
	}
	waitFor(t, 5*time.Second, func() bool { return src.inflightBytes.Load() == 0 }, "nothing in flight")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestInFlightReleasedAfterRevokeAndLost: points in flight for a partition
// that is then revoked or lost are still released by their acknowledgement,
// whatever its outcome, so neither counter leaks nor goes negative. The
// batches include a dead letter (an undecodable record) and record attrs.
func TestInFlightReleasedAfterRevokeAndLost(t *testing.T) {
	for _, how := range []string{"revoked", "lost"} {
		t.Run(how, func(t *testing.T) {
			s := newSource(t, Config{Brokers: []string{"127.0.0.1:1"}, Topics: []string{"bench"}, Group: "bench", BatchSize: 25, RecordAttrs: true})
			s.parts[tp{"bench", 0}] = &partState{committed: -1, next: -1, labels: [2]string{"bench", "0"}}
			fp := benchRecords(20, 10)
			fp.Records[7] = &kgo.Record{Topic: "bench", Offset: 7, Value: []byte("{not json"), Timestamp: fp.Records[7].Timestamp}
			out := &heldOutput{}
			bt := batcher{s: s, out: out, dec: s.dec.Clone()}
			ctx := context.Background()
			if err := bt.partition(ctx, fp); err != nil {
				t.Fatal(err)
			}
			bs := out.snapshot()
			if got, want := s.inflightBytes.Load(), heldBytes(out); got != want || want == 0 || s.inflight.Load() != 190 {
				t.Fatalf("%d points, %d bytes in flight; want 190 points (the dead letter was taken at once), %d bytes", s.inflight.Load(), got, want)
			}
			m := map[string][]int32{"bench": {0}}
			if how == "revoked" {
				s.revoked(ctx, nil, m) // nothing acknowledged: nothing to commit
			} else {
				s.lost(ctx, nil, m)
			}
			outcomes := []error{nil, engine.ErrShutdown, fmt.Errorf("%w: bad", engine.ErrRejected), errors.New("sink gave up")}
			for i, b := range bs {
				b.done(outcomes[i%len(outcomes)])
				if s.inflight.Load() < 0 || s.inflightBytes.Load() < 0 {
					t.Fatalf("after %d acks: %d points, %d bytes in flight", i+1, s.inflight.Load(), s.inflightBytes.Load())
				}
			}
			if s.inflight.Load() != 0 || s.inflightBytes.Load() != 0 {
				t.Fatalf("every batch acknowledged: %d points, %d bytes still in flight", s.inflight.Load(), s.inflightBytes.Load())
			}
		})
	}
}
