package mqtt

import (
	"context"
	"errors"
	"fmt"
	"github.com/flowd/flowd/codecs"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqttc "github.com/flowd/flowd/common/mqtt"
	"github.com/flowd/flowd/engine"
)

// fakeOutput records batches and lets the test finish them.
type fakeOutput struct {
	mu      sync.Mutex
	batches [][]engine.Point
	dones   []func(error)
}

func (o *fakeOutput) Emit(_ context.Context, pts []engine.Point, done func(error)) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.batches = append(o.batches, append([]engine.Point(nil), pts...))
	o.dones = append(o.dones, done)
	return nil
}

func (o *fakeOutput) count() (batches, points int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, b := range o.batches {
		points += len(b)
	}
	return len(o.batches), points
}

func testSource(t *testing.T, batch int, linger time.Duration) *Source {
	c := Config{Connection: mqttc.Connection{Broker: "mqtt://127.0.0.1:1883", KeepAlive: 30 * time.Second, SessionExpiry: time.Hour},
		Topics: []string{"t/#"}, QoS: 1, Connections: 1, ReceiveMaximum: 100,
		Batching: engine.Batching{BatchSize: batch, Linger: linger}, Format: "json", MaxPayload: 1 << 20}
	src, err := New(&c, &engine.Env{Pipeline: "p", Name: "n", Codecs: codecs.All()})
	if err != nil {
		t.Fatal(err)
	}
	return src.(*Source)
}

func TestBatcherSizesLingerAndFailure(t *testing.T) {
	s := testSource(t, 10, 20*time.Millisecond)
	c := &conn{s: s, dec: s.dec.Clone(), in: make(chan message, 100)}
	out := &fakeOutput{}
	pending := &inflight{zero: make(chan struct{}, 1)}
	failed := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.batch(ctx, out, pending, failed) }()
	for i := range 25 {
		payload := fmt.Sprintf(`{"tag":"t","value":%d}`, i)
		if i == 5 {
			payload = `{broken`
		}
		c.in <- message{pub: &paho.Publish{Topic: "t/x", QoS: 1, Payload: []byte(payload)}}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, pts := out.count(); pts == 24 {
			break
		}
		if time.Now().After(deadline) {
			b, p := out.count()
			t.Fatalf("got %d points in %d batches, want 24", p, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
	out.mu.Lock()
	for i, b := range out.batches {
		if len(b) > 10 {
			t.Errorf("batch %d has %d points, batch_size is 10", i, len(b))
		}
	}
	if pending.n.Load() != int64(len(out.dones)) {
		t.Errorf("pending %d, want %d", pending.n.Load(), len(out.dones))
	}
	out.dones[0](nil)
	out.dones[1](errors.New("sink gave up"))
	out.mu.Unlock()
	select {
	case err := <-failed:
		if err == nil {
			t.Error("nil failure")
		}
	case <-time.After(time.Second):
		t.Error("a failed batch did not stop the source")
	}
	cancel()
	<-done
}
