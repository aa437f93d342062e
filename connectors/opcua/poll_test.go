package opcua

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowd/flowd/engine"
	simplc "github.com/flowd/flowd/sim/plc"
)

// slowOut takes each batch after delay, as a full pipeline does, and notes
// when the first came.
type slowOut struct {
	delay time.Duration
	mu    sync.Mutex
	first time.Time
	polls int
}

func (o *slowOut) Emit(ctx context.Context, pts []engine.Point, done func(error)) error {
	o.mu.Lock()
	if o.polls == 0 {
		o.first = time.Now()
	}
	o.polls++
	o.mu.Unlock()
	time.Sleep(o.delay)
	engine.PutPoints(pts)
	return nil
}

func (o *slowOut) count() (int, time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.polls, o.first
}

// TestOverrunSkipsSlotsAndCountsThem checks that a poll cycle slower than
// the interval skips the slots it overran and counts them: the polls made
// and the polls counted as skipped together are the interval's slots in the
// time polled, never more (a late cycle run at once and also counted as
// skipped would be counted twice).
func TestOverrunSkipsSlotsAndCountsThem(t *testing.T) {
	plc := startPLC(t, simplc.Config{Assets: 1, Tags: 1, Interval: time.Hour})
	const every = 10 * time.Millisecond
	src := newSource(t, Config{Endpoint: plc.Endpoint(), Nodes: map[string]string{"x": plc.NodeID(0, 0)}, Interval: every})
	out := &slowOut{delay: 15 * time.Millisecond}
	runFor(t, src, out, func() bool { n, _ := out.count(); return n >= 40 }, 10*time.Second)
	end := time.Now()
	polls, first := out.count()
	skipped := int(testutil.ToFloat64(src.m.skipped))
	// one slot more for the read that came before the first batch
	slots := int(end.Sub(first)/every) + 2
	if polls < 40 || skipped < polls {
		t.Fatalf("%d polls, %d skipped: each 15 ms cycle should skip at least one 10 ms slot", polls, skipped)
	}
	if polls+skipped > slots {
		t.Fatalf("%d polls + %d skipped = %d, but only %d slots of %s passed", polls, skipped, polls+skipped, slots, every)
	}
}
