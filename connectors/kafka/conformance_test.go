package kafka

import (
	"context"
	"fmt"
	"testing"

	"github.com/flowd/flowd/engine/conformance"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The kafka source passes the source conformance suite against the shared
// broker, over its plain listener and over its Event Hubs-style one (a
// connection string). The reconnect check reads through a fault proxy on
// the broker's FAULTS listener, which the broker advertises at the proxy's
// address.
func TestConformance(t *testing.T) {
	t.Run("plain", func(t *testing.T) { conformanceRun(t, false) })
	t.Run("eventhubs", func(t *testing.T) { conformanceRun(t, true) })
}

func conformanceRun(t *testing.T, eventHubs bool) {
	h := conformance.Source{
		Spec: Spec,
		Setup: func(t *testing.T, addr string) conformance.SourceSetup {
			brokers := conformance.Require(t, "FLOWD_TEST_KAFKA")
			tp := topic(t, brokers, 1)
			if addr == "" {
				addr = brokers
			}
			endpoint := fmt.Sprintf("brokers = [%q]", addr)
			if eventHubs {
				endpoint = fmt.Sprintf("connection_string = %q\ntls {\n  ca_file = %q\n}",
					conformance.Require(t, "FLOWD_TEST_KAFKA_EH_CONNSTR"), conformance.Require(t, "FLOWD_TEST_KAFKA_EH_CA"))
			}
			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic(tp))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cl.Close)
			return conformance.SourceSetup{
				Config: fmt.Sprintf(`%s
topics = [%q]
group = %q
commit_interval = "200ms"
session_timeout = "10s"
rebalance_timeout = "10s"
drain_timeout = "2s"`, endpoint, tp, tp),
				Produce: func(ctx context.Context, vals []int64) error {
					recs := make([]*kgo.Record, len(vals))
					for i, v := range vals {
						recs[i] = &kgo.Record{Value: fmt.Appendf(nil, `{"asset":"a","tag":"t%d","value":%d}`, v, v)}
					}
					return cl.ProduceSync(ctx, recs...).FirstErr()
				},
			}
		},
	}
	if eventHubs {
		h.NoReconnect = "the Event Hubs-style listener advertises its own address, so a proxy cannot come between the client and it (the plain run checks reconnecting)"
	} else {
		h.Peer = func(t *testing.T) conformance.Peer {
			return conformance.Peer{Upstream: conformance.Require(t, "FLOWD_TEST_KAFKA_FAULTS"),
				Listen: conformance.Require(t, "FLOWD_TEST_KAFKA_FAULTS_PROXY")}
		}
	}
	conformance.RunSource(t, h)
}
