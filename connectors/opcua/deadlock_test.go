package opcua

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowd/flowd/engine"
	simplc "github.com/flowd/flowd/sim/plc"
)

// stalledOutput blocks every Emit until released, as the engine does when
// every sink downstream is full.
type stalledOutput struct {
	release chan struct{}
	once    sync.Once
	points  atomic.Int64
}

func (o *stalledOutput) Emit(ctx context.Context, pts []engine.Point, done func(error)) error {
	select {
	case <-o.release:
	case <-ctx.Done():
		engine.PutPoints(pts)
		return ctx.Err()
	}
	o.points.Add(int64(len(pts)))
	engine.PutPoints(pts)
	if done != nil {
		done(nil)
	}
	return nil
}

func (o *stalledOutput) open() { o.once.Do(func() { close(o.release) }) }

// TestSubscribeUnderBackpressure creates many subscriptions while the engine
// refuses every point. The source must still finish creating its monitored
// items, count what it could not hand over, deliver again once the engine
// accepts points, and stop when asked.
func TestSubscribeUnderBackpressure(t *testing.T) {
	plc := startPLC(t, simplc.Config{Assets: 4, Tags: 1000, Interval: 100 * time.Millisecond, Change: 1})
	src := newSource(t, Config{Endpoint: plc.Endpoint(), Mode: "subscribe", Interval: 50 * time.Millisecond,
		MaxItemsPerSub: 250, Browse: &BrowseConfig{MaxDepth: 3}})
	out := &stalledOutput{release: make(chan struct{})}
	defer out.open()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	defer cancel()

	waitFor := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !cond() {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				var ours []string
				for _, g := range strings.Split(string(buf), "\n\n") {
					if strings.Contains(g, "gopcua") || strings.Contains(g, "connectors/opcua") {
						ours = append(ours, g)
					}
				}
				t.Fatalf("%s: not within %s; goroutines:\n%s", what, d, strings.Join(ours, "\n\n"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("all 16 subscriptions created while the engine refuses points", 5*time.Second,
		func() bool { return testutil.ToFloat64(src.m.connected) == 1 })
	waitFor("notifications the engine could not take counted", 5*time.Second,
		func() bool { return testutil.ToFloat64(src.m.lost) > 0 })

	out.open()
	before := out.points.Load()
	waitFor("points delivered once the engine accepts them", 5*time.Second,
		func() bool { return out.points.Load() > before+4000 })

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
