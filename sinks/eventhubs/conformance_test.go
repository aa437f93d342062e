package eventhubs

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
	"github.com/flowd/flowd/engine/conformance"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The eventhubs sink passes the sink conformance suite over AMQP against
// the shared Event Hubs mock, read back through the mock's control
// endpoint (each check's points carry an asset of their own), and over
// the Event Hubs-style Kafka listener, read back from the topic.
func TestConformance(t *testing.T) {
	t.Run("amqp", testConformanceAMQP)
	t.Run("kafka", testConformanceKafka)
}

func testConformanceAMQP(t *testing.T) {
	conformance.RunSink(t, conformance.Sink{
		Spec: Spec,
		Setup: func(t *testing.T, addr string) conformance.SinkSetup {
			conn := conformance.Require(t, "FLOWD_TEST_EVENTHUBS")
			ca := conformance.Require(t, "FLOWD_TEST_EVENTHUBS_CA")
			control := conformance.Require(t, "FLOWD_TEST_EVENTHUBS_CONTROL")
			if addr != "" {
				cs, err := ParseConnectionString(conn)
				if err != nil {
					t.Fatal(err)
				}
				// The certificate names localhost: keep the name, change the port.
				_, port, _ := strings.Cut(addr, ":")
				conn = strings.Replace(conn, "sb://"+cs.Host+"/", "sb://localhost:"+port+"/", 1)
			}
			asset := conformance.Asset(t)
			return conformance.SinkSetup{
				Config: fmt.Sprintf(`connection_string = %q
max_message_bytes = 1000
delivery_timeout = "5s"
retries = 1
tls {
  ca_file     = %q
  server_name = "localhost"
}`, conn, ca),
				Received: func(ctx context.Context) ([]int64, error) { return mockReceived(ctx, control, asset) },
				Poison: func(v int64) engine.Point {
					p := conformance.Point(v)
					p.Value = engine.String(strings.Repeat("x", 2000)) // over max_message_bytes
					return p
				},
			}
		},
		Peer: func(t *testing.T) conformance.Peer {
			conn := conformance.Require(t, "FLOWD_TEST_EVENTHUBS")
			cs, err := ParseConnectionString(conn)
			if err != nil {
				t.Fatal(err)
			}
			_, port, _ := strings.Cut(cs.Host, ":")
			return conformance.Peer{Upstream: "127.0.0.1:" + port}
		},
	})
}

// mockReceived reads the values of asset's points from the mock hub.
func mockReceived(ctx context.Context, control, asset string) ([]int64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, control+"/messages", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /messages: %s", resp.Status)
	}
	var got struct {
		Messages []struct {
			Events []struct {
				Body string `json:"body"`
			} `json:"events"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		return nil, err
	}
	var out []int64
	for _, m := range got.Messages {
		for _, ev := range m.Events {
			if !strings.Contains(ev.Body, `"asset":"`+asset+`"`) {
				continue // another sender's
			}
			pts, err := codec.DecodePoints(nil, []byte(ev.Body))
			if err != nil {
				return nil, fmt.Errorf("event body %q: %w", ev.Body, err)
			}
			for _, p := range pts {
				v, _ := p.Value.Int64()
				out = append(out, v)
			}
		}
	}
	return out, nil
}

func testConformanceKafka(t *testing.T) {
	conformance.RunSink(t, conformance.Sink{
		Spec: Spec,
		Setup: func(t *testing.T, _ string) conformance.SinkSetup {
			brokers := conformance.Require(t, "FLOWD_TEST_KAFKA")
			conformance.Require(t, "FLOWD_TEST_KAFKA_EH")
			conn := conformance.Require(t, "FLOWD_TEST_KAFKA_EH_CONNSTR")
			ca := conformance.Require(t, "FLOWD_TEST_KAFKA_EH_CA")
			hub := fmt.Sprintf("conformance-eh-%d", time.Now().UnixNano())
			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cl.Close)
			adm := kadm.NewClient(cl)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := adm.CreateTopic(ctx, 1, 1, nil, hub); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				adm.DeleteTopics(ctx, hub)
			})
			return conformance.SinkSetup{
				Config: fmt.Sprintf(`transport = "kafka"
connection_string = %q
event_hub = %q
max_message_bytes = 1000
delivery_timeout = "5s"
tls {
  ca_file = %q
}`, conn, hub, ca),
				Received: func(ctx context.Context) ([]int64, error) { return conformance.ReadTopic(ctx, brokers, hub) },
				Poison: func(v int64) engine.Point {
					p := conformance.Point(v)
					p.Value = engine.String(strings.Repeat("x", 2000)) // over max_message_bytes
					return p
				},
			}
		},
		NoFailure: "the Event Hubs-style Kafka listener advertises its own address, so a proxy cannot come between the client and it (the amqp transport and the kafka sink run the failure checks)",
	})
}
