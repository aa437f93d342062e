package udp

import (
	"context"
	"errors"
	"fmt"
	"github.com/flowd/flowd/codecs"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// output records points; while blocked it holds their acks.
type output struct {
	mu      sync.Mutex
	points  []engine.Point
	held    []func(error)
	blocked bool
}

func (o *output) Emit(_ context.Context, pts []engine.Point, done func(error)) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.points = append(o.points, pts...)
	if o.blocked {
		o.held = append(o.held, done)
		return nil
	}
	done(nil)
	return nil
}

func (o *output) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.points)
}

func config(mod func(*Config)) *Config {
	c := &Config{Listen: "127.0.0.1:0", Format: "json", MaxPayload: 65535, Queue: 100, Batching: engine.Batching{BatchSize: 10, Linger: 5 * time.Millisecond}, ReadBuffer: 4 << 20}
	if mod != nil {
		mod(c)
	}
	return c
}

func start(t *testing.T, c *Config, out engine.Output) (*Source, net.Conn, func()) {
	t.Helper()
	src, err := New(c, &engine.Env{Codecs: codecs.All()})
	if err != nil {
		t.Fatal(err)
	}
	s := src.(*Source)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx, out) }()
	for s.Addr() == "" {
		time.Sleep(time.Millisecond)
	}
	conn, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return s, conn, func() {
		conn.Close()
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDatagrams(t *testing.T) {
	out := &output{}
	s, conn, stop := start(t, config(nil), out)
	defer stop()
	for i := range 50 {
		fmt.Fprintf(conn, `{"asset":"m%d","tag":"energy","value":%d}`, i, i)
	}
	conn.Write([]byte(`{"tag":`))
	conn.Write([]byte(`[{"tag":"a","value":1},{"tag":"b","value":2}]`))
	waitFor(t, func() bool { return out.count() == 52 && testutil.ToFloat64(s.rejected) == 1 }, "52 points and a rejection")
	out.mu.Lock()
	defer out.mu.Unlock()
	for i, p := range out.points[:50] {
		if p.Asset != fmt.Sprintf("m%d", i) || p.Value != engine.Int(int64(i)) {
			t.Fatalf("point %d: %+v (out of order or wrong)", i, p)
		}
	}
}

// With the pipeline blocked the queue fills and the rest is dropped and
// counted: datagrams sent = ok + rejected + dropped, points in = queued.
func TestDropsWhenFull(t *testing.T) {
	out := &output{blocked: true}
	s, conn, stop := start(t, config(func(c *Config) { c.Queue = 20 }), out)
	defer stop()
	const sent = 200
	for i := range sent {
		fmt.Fprintf(conn, `{"tag":"t","value":%d}`, i)
		if i%20 == 0 {
			time.Sleep(time.Millisecond) // stay within the kernel's buffer
		}
	}
	waitFor(t, func() bool {
		return testutil.ToFloat64(s.ok)+testutil.ToFloat64(s.drop) == sent
	}, "every datagram counted")
	if ok := testutil.ToFloat64(s.ok); ok != 20 {
		t.Errorf("taken while blocked: %v, want the queue size 20", ok)
	}
	waitFor(t, func() bool { return out.count() == 20 }, "the queued points emitted")
	// Acked points free the queue again.
	out.mu.Lock()
	held := out.held
	out.held, out.blocked = nil, false
	out.mu.Unlock()
	for _, d := range held {
		d(nil)
	}
	fmt.Fprintf(conn, `{"tag":"t","value":-1}`)
	waitFor(t, func() bool { return out.count() == 21 }, "a point after the release")
}

func TestRawAndMap(t *testing.T) {
	out := &output{}
	_, conn, stop := start(t, config(func(c *Config) {
		c.Format = "map"
		c.Map = map[string]engine.Expr{"asset": {Src: "payload.id"}, "values": {Src: "payload.m"}}
	}), out)
	defer stop()
	conn.Write([]byte(`{"id":"meter-1","m":{"kwh":1.5,"v":230}}`))
	waitFor(t, func() bool { return out.count() == 2 }, "two points")
	out.mu.Lock()
	if p := out.points[0]; p.Asset != "meter-1" || p.Tag != "kwh" || p.Value != engine.Float(1.5) {
		t.Errorf("%+v", p)
	}
	out.mu.Unlock()
	if _, err := New(config(func(c *Config) { c.Format = "raw" }), &engine.Env{Codecs: codecs.All()}); err == nil {
		t.Error("raw without tag accepted")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		mod   func(*Config)
		field string
	}{
		{func(c *Config) { c.Listen = "x" }, "listen"},
		{func(c *Config) { c.MaxPayload = 1 << 20 }, "max_payload"},
		{func(c *Config) { c.Queue = 0 }, "queue"},
		{func(c *Config) { c.Format = "map" }, "map"},
	} {
		_, err := New(config(c.mod), &engine.Env{Codecs: codecs.All()})
		var fe *engine.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("want an error on %s, got %v", c.field, err)
		}
	}
}

// BenchmarkRead is one datagram through a real loopback socket, decoder and
// queue to the pipeline's Emit.
func BenchmarkRead(b *testing.B) {
	src, err := New(config(func(c *Config) { c.Queue = maxQueue; c.BatchSize = 1000; c.Linger = 0 }), &engine.Env{Codecs: codecs.All()})
	if err != nil {
		b.Fatal(err)
	}
	s := src.(*Source)
	var got sync.WaitGroup
	out := countOut{wg: &got}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx, out)
	for s.Addr() == "" {
		time.Sleep(time.Millisecond)
	}
	conn, err := net.Dial("udp", s.Addr())
	if err != nil {
		b.Fatal(err)
	}
	msg := []byte(`{"asset":"meter-000042","tag":"energy_kwh","value":1234.5,"ts":"2026-11-22T10:00:00Z"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		got.Add(1)
		if _, err := conn.Write(msg); err != nil {
			b.Fatal(err)
		}
		if testutil.ToFloat64(s.drop) > 0 {
			b.Fatal("dropped")
		}
		got.Wait() // one at a time: the kernel drops what overflows its buffer
	}
}

type countOut struct{ wg *sync.WaitGroup }

func (o countOut) Emit(_ context.Context, pts []engine.Point, done func(error)) error {
	for range pts {
		o.wg.Done()
	}
	engine.PutPoints(pts)
	done(nil)
	return nil
}

// A rejected datagram wakes the batcher with no points (an empty batch
// carries its dead letter); points taken after it clear the flag.
func TestQueueTakeAfterReject(t *testing.T) {
	q := newQueue(10)
	q.rejected()
	pts, ok := q.take(context.Background(), 10, time.Hour)
	if !ok || len(pts) != 0 {
		t.Fatalf("after a reject: %d points, ok %v; want none, ok", len(pts), ok)
	}
	q.rejected()
	q.push([]engine.Point{{Tag: "a"}})
	if pts, ok := q.take(context.Background(), 1, time.Hour); !ok || len(pts) != 1 {
		t.Fatalf("with a point queued: %d points, ok %v", len(pts), ok)
	}
	q.close()
	if pts, ok := q.take(context.Background(), 10, time.Hour); ok || len(pts) != 0 {
		t.Fatalf("closed: %d points, ok %v; the reject was carried by the last take", len(pts), ok)
	}
}

// shutOutput is a pipeline shutting down: Emit settles the points with the
// context's error and returns it (the engine counts them dropped, reason
// shutdown).
type shutOutput struct{ output }

func (o *shutOutput) Emit(ctx context.Context, pts []engine.Point, done func(error)) error {
	o.mu.Lock()
	o.points = append(o.points, pts...)
	o.mu.Unlock()
	done(ctx.Err())
	return ctx.Err()
}

// At shutdown every queued point is handed to Emit, which counts what it
// cannot take as dropped: none is left in the queue, counted nowhere.
func TestShutdownHandsOnEveryQueuedPoint(t *testing.T) {
	src, err := New(config(nil), &engine.Env{Codecs: codecs.All()})
	if err != nil {
		t.Fatal(err)
	}
	s := src.(*Source)
	q := newQueue(100)
	for i := range 35 {
		q.push([]engine.Point{{Tag: fmt.Sprint(i)}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := &shutOutput{}
	s.batch(ctx, out, q)
	if n := out.count(); n != 35 {
		t.Fatalf("%d of 35 queued points handed to Emit at shutdown", n)
	}
}
