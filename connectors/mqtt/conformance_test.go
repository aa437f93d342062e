package mqtt

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqttc "github.com/flowd/flowd/common/mqtt"
	"github.com/flowd/flowd/engine/conformance"
)

// The mqtt source passes the source conformance suite against the shared
// Mosquitto broker, with a persistent session (clean_start = false, the
// default) so that what it did not acknowledge is delivered again.
func TestConformance(t *testing.T) {
	conformance.RunSource(t, conformance.Source{
		Spec: Spec,
		Setup: func(t *testing.T, addr string) conformance.SourceSetup {
			broker := conformance.Require(t, "FLOWD_TEST_MQTT")
			url := broker
			if addr != "" {
				url = "mqtt://" + addr
			}
			run := fmt.Sprintf("conformance-%d", time.Now().UnixNano())
			ctx, cancel := context.WithCancel(context.Background())
			pub, err := mqttc.Connect(ctx, &mqttc.Settings{Brokers: []string{broker}, KeepAlive: 30 * time.Second,
				ConnectTimeout: 10 * time.Second, CleanStart: true}, run+"-pub", false, mqttc.Handlers{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer dcancel()
				pub.Disconnect(dctx)
				cancel()
			})
			return conformance.SourceSetup{
				Config: fmt.Sprintf(`broker = %q
client_id = %q
topics = [%q]
session_expiry = "5m"
backoff_min = "100ms"
backoff_max = "1s"
linger = "5ms"`, url, run, run+"/#"),
				Produce: func(ctx context.Context, vals []int64) error {
					if err := pub.AwaitConnection(ctx); err != nil {
						return err
					}
					for _, v := range vals {
						payload := fmt.Sprintf(`{"asset":"a","tag":"t%d","value":%d}`, v, v)
						if _, err := pub.Publish(ctx, &paho.Publish{Topic: run + "/t", QoS: 1, Payload: []byte(payload)}); err != nil {
							return err
						}
					}
					return nil
				},
			}
		},
		Peer: func(t *testing.T) conformance.Peer {
			return conformance.Peer{Upstream: strings.TrimPrefix(conformance.Require(t, "FLOWD_TEST_MQTT"), "mqtt://")}
		},
	})
}
