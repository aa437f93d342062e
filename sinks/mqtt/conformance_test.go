package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	mqttc "github.com/flowd/flowd/common/mqtt"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/conformance"
)

// The mqtt sink passes the sink conformance suite against the shared
// Mosquitto broker; a subscriber reads back what it published.
func TestConformance(t *testing.T) {
	conformance.RunSink(t, conformance.Sink{
		Spec: Spec,
		Setup: func(t *testing.T, addr string) conformance.SinkSetup {
			broker := conformance.Require(t, "FLOWD_TEST_MQTT")
			url := broker
			if addr != "" {
				url = "mqtt://" + addr
			}
			run := fmt.Sprintf("conformance-%d", time.Now().UnixNano())
			var mu sync.Mutex
			var got []int64
			var bad error
			subscribed := make(chan error, 1)
			ctx, cancel := context.WithCancel(context.Background())
			sub, err := mqttc.Connect(ctx, &mqttc.Settings{Brokers: []string{broker}, KeepAlive: 30 * time.Second,
				ConnectTimeout: 10 * time.Second, CleanStart: true}, run+"-sub", false, mqttc.Handlers{
				OnPublish: func(pr autopaho.PublishReceived) {
					var p struct{ Value int64 }
					err := json.Unmarshal(pr.Packet.Payload, &p)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						bad = fmt.Errorf("%q: %w", pr.Packet.Payload, err)
						return
					}
					got = append(got, p.Value)
				},
				OnUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
					go func() {
						_, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: run, QoS: 1}}})
						select {
						case subscribed <- err:
						default:
						}
					}()
				},
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer dcancel()
				sub.Disconnect(dctx)
				cancel()
			})
			select {
			case err := <-subscribed:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the subscriber did not subscribe")
			}
			return conformance.SinkSetup{
				Config: fmt.Sprintf(`broker = %q
topic = %q
max_message_bytes = 1000
backoff_min = "100ms"
backoff_max = "1s"
connect_timeout = "2s"`, url, run),
				Received: func(context.Context) ([]int64, error) {
					mu.Lock()
					defer mu.Unlock()
					return append([]int64(nil), got...), bad
				},
				Poison: func(v int64) engine.Point {
					p := conformance.Point(v)
					p.Value = engine.String(strings.Repeat("x", 2000)) // over max_message_bytes
					return p
				},
			}
		},
		Peer: func(t *testing.T) conformance.Peer {
			return conformance.Peer{Upstream: strings.TrimPrefix(conformance.Require(t, "FLOWD_TEST_MQTT"), "mqtt://")}
		},
	})
}
