package kafka

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/conformance"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The kafka sink passes the sink conformance suite against the shared
// broker. The failure checks write through a fault proxy on the broker's
// FAULTS listener, which the broker advertises at the proxy's address.
func TestConformance(t *testing.T) {
	conformance.RunSink(t, conformance.Sink{
		Spec: Spec,
		Setup: func(t *testing.T, addr string) conformance.SinkSetup {
			brokers := conformance.Require(t, "FLOWD_TEST_KAFKA")
			tp := fmt.Sprintf("conformance-sink-%d", time.Now().UnixNano())
			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cl.Close)
			adm := kadm.NewClient(cl)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := adm.CreateTopic(ctx, 1, 1, nil, tp); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				adm.DeleteTopics(ctx, tp)
			})
			if addr == "" {
				addr = brokers
			}
			return conformance.SinkSetup{
				Config: fmt.Sprintf(`brokers = [%q]
topic = %q
max_message_bytes = 1000
delivery_timeout = "5s"
request_timeout = "3s"`, addr, tp),
				Received: func(ctx context.Context) ([]int64, error) { return conformance.ReadTopic(ctx, brokers, tp) },
				Poison: func(v int64) engine.Point {
					p := conformance.Point(v)
					p.Value = engine.String(strings.Repeat("x", 2000)) // over max_message_bytes
					return p
				},
			}
		},
		Peer: func(t *testing.T) conformance.Peer {
			return conformance.Peer{Upstream: conformance.Require(t, "FLOWD_TEST_KAFKA_FAULTS"),
				Listen: conformance.Require(t, "FLOWD_TEST_KAFKA_FAULTS_PROXY")}
		},
	})
}
