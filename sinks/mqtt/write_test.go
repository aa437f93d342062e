package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/flowd/flowd/codecs"
	mqttc "github.com/flowd/flowd/common/mqtt"
	"github.com/flowd/flowd/engine"
)

// One Write of many points with a small max_inflight publishes every one of
// them (read back from the broker), over the buffered connection whose
// packets must stay whole with several publishers at once.
func TestWriteAllAgainstBroker(t *testing.T) {
	broker := os.Getenv("FLOWD_TEST_MQTT")
	if broker == "" {
		t.Skip("FLOWD_TEST_MQTT is not set (e2e/services.sh env)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := fmt.Sprintf("sinkwrite-%d", time.Now().UnixNano())
	const n, inflight = 3000, 8

	var mu sync.Mutex
	seen := map[string]bool{}
	all := make(chan struct{})
	subscribed := make(chan struct{}, 1)
	cm, err := mqttc.Connect(ctx, &mqttc.Settings{Brokers: []string{broker}, KeepAlive: 30 * time.Second, ConnectTimeout: 10 * time.Second, CleanStart: true},
		run+"-sub", false, mqttc.Handlers{
			OnPublish: func(pr autopaho.PublishReceived) {
				mu.Lock()
				defer mu.Unlock()
				seen[pr.Packet.Topic] = true
				if len(seen) == n {
					close(all)
				}
			},
			OnUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
				go func() {
					if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: run + "/#", QoS: 1}}}); err == nil {
						subscribed <- struct{}{}
					}
				}()
			},
		}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cm.Disconnect(context.Background())
	select {
	case <-subscribed:
	case <-ctx.Done():
		t.Fatal("not subscribed")
	}

	c := Config{Connection: mqttc.Connection{Broker: broker, ClientID: run + "-pub", KeepAlive: 30 * time.Second, ConnectTimeout: 10 * time.Second},
		TopicExpr: engine.Expr{Src: "'" + run + "/' + tag"}, Format: "json", QoS: 1, MaxInflight: inflight}
	sk, err := New(&c, &engine.Env{Pipeline: "p", Name: "n", Codecs: codecs.All(), Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s := sk.(*Sink)
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	pts := make([]engine.Point, n)
	for i := range pts {
		pts[i] = engine.Point{Asset: "a", Tag: fmt.Sprintf("t%05d", i), Value: engine.Int(int64(i)), TS: time.Now().UnixNano()}
	}
	err = s.Write(ctx, pts)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-all:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("received %d of %d", len(seen), n)
	}
}

// BenchmarkWriteBroker publishes batches of 1,000 points (QoS 1, json, a
// message per point, max_inflight 256) to the shared broker; nobody
// subscribes, so the broker acknowledges and drops them.
func BenchmarkWriteBroker(b *testing.B) {
	broker := os.Getenv("FLOWD_TEST_MQTT")
	if broker == "" {
		b.Skip("FLOWD_TEST_MQTT is not set (e2e/services.sh env)")
	}
	ctx := context.Background()
	run := fmt.Sprintf("sinkbench-%d", time.Now().UnixNano())
	c := Config{Connection: mqttc.Connection{Broker: broker, ClientID: run, KeepAlive: 30 * time.Second, ConnectTimeout: 10 * time.Second},
		TopicExpr: engine.Expr{Src: "'" + run + "/' + asset + '/' + tag"}, Format: "json", QoS: 1, MaxInflight: 256}
	sk, err := New(&c, &engine.Env{Pipeline: "p", Name: "n", Codecs: codecs.All()})
	if err != nil {
		b.Fatal(err)
	}
	s := sk.(*Sink)
	if err := s.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	pts := make([]engine.Point, 1000)
	for i := range pts {
		pts[i] = engine.Point{Asset: "c1", Tag: fmt.Sprintf("tag%d", i%50), Value: engine.Float(float64(i)), TS: time.Now().UnixNano()}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Write(ctx, pts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pts)), "ns/msg")
}

// A publish that fails part-way through a Write (a message over the
// broker's max_packet_size: it drops the connection) hands back only the
// points of the messages not acknowledged; those the broker already has
// are delivered and not published again.
func TestWriteRetriesOnlyUnacknowledged(t *testing.T) {
	broker := os.Getenv("FLOWD_TEST_MQTT")
	if broker == "" {
		t.Skip("FLOWD_TEST_MQTT is not set (e2e/services.sh env)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := fmt.Sprintf("sinkpartial-%d", time.Now().UnixNano())
	c := Config{Connection: mqttc.Connection{Broker: broker, ClientID: run + "-pub", KeepAlive: 30 * time.Second, ConnectTimeout: 10 * time.Second,
		BackoffMin: 200 * time.Millisecond, BackoffMax: time.Second},
		Topic: run, Format: "json", QoS: 1, MaxInflight: 1}
	sk, err := New(&c, &engine.Env{Pipeline: "p", Name: "n", Codecs: codecs.All()})
	if err != nil {
		t.Fatal(err)
	}
	s := sk.(*Sink)
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	pts := make([]engine.Point, 7)
	for i := range pts {
		pts[i] = engine.Point{Asset: "a", Tag: fmt.Sprintf("t%d", i), Value: engine.Int(int64(i)), TS: time.Now().UnixNano()}
	}
	// The shared broker's max_packet_size is 16MiB (e2e/services.d/mosquitto.sh).
	pts[3].Value = engine.String(strings.Repeat("x", 17<<20))
	err = s.Write(ctx, pts)
	var we *engine.WriteError
	if !errors.As(err, &we) || we.Err == nil {
		t.Fatalf("Write: %v, want a WriteError with the publish error", err)
	}
	t.Logf("publish error: %v", we.Err)
	if len(we.Rejections()) != 0 || fmt.Sprint(we.Retries()) != "[3 4 5 6]" {
		t.Fatalf("retries %v, rejections %v; want [3 4 5 6] and none (err %v)", we.Retries(), we.Rejections(), we.Err)
	}
}
