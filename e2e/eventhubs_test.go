package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
	"github.com/flowd/flowd/engine/codec"
)

// mockMessages is what the Event Hubs mock's launcher recorded.
type mockMessages struct {
	Hub            string `json:"hub"`
	MaxMessageSize int    `json:"max_message_size"`
	Dropped        int    `json:"dropped"`
	Messages       []struct {
		Size           int     `json:"size"`
		MaxMessageSize int     `json:"max_message_size"`
		PartitionKey   *string `json:"partition_key"`
		Events         []struct {
			Body       string            `json:"body"`
			Properties map[string]string `json:"properties"`
		} `json:"events"`
	} `json:"messages"`
}

func mockControl(t *testing.T, method, path string, into any) {
	t.Helper()
	base := harness.Require(t, "FLOWD_TEST_EVENTHUBS_CONTROL")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, base+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %s", method, path, resp.Status)
	}
	if into != nil {
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEventHubsAMQP sends points over AMQP to the mock hub, keyed by asset,
// in batches that must be split to fit the link: every point arrives once,
// every batch carries the partition key of its points (also the batches
// started after a full one), and no batch exceeds the link's max message size.
func TestEventHubsAMQP(t *testing.T) {
	conn := harness.Require(t, "FLOWD_TEST_EVENTHUBS")
	ca := harness.Require(t, "FLOWD_TEST_EVENTHUBS_CA")
	const assets, tags, count = 3, 1000, 30_000
	// The mock is shared (other pipelines may send to it meanwhile): this
	// run's points have assets of their own, and only those are checked.
	prefix := fmt.Sprintf("ehtest%d-", time.Now().UnixNano())
	dir := t.TempDir()
	cfg := harness.WriteFile(t, dir, "eh.hcl", fmt.Sprintf(`
pipeline "eh" {
  source "sim" "plant" {
    assets     = %d
    tags       = %d
    count      = %d
    fast       = true
    batch_size   = %d
    asset_prefix = %q
  }
  sink "eventhubs" "hub" {
    inputs            = [source.plant]
    connection_string = %q
    partition_key_by  = "asset"
    tls {
      ca_file     = %q
      server_name = "localhost"
    }
  }
}
`, assets, tags, count, assets*tags, prefix, conn, ca))
	runToEnd(t, cfg, 3*time.Minute)

	var got mockMessages
	mockControl(t, "GET", "/messages", &got)
	seen := map[string]bool{}
	perKeyMessages := map[string]int{}
	largest, ours := 0, 0
	for i, m := range got.Messages {
		if len(m.Events) == 0 || !strings.Contains(m.Events[0].Body, `"asset":"`+prefix) {
			continue // another sender's
		}
		ours++
		if m.PartitionKey == nil {
			t.Fatalf("message %d (%d events) has no partition key", i, len(m.Events))
		}
		if m.Size <= 0 || m.MaxMessageSize <= 0 {
			t.Fatalf("message %d: size %d, link max %d not recorded", i, m.Size, m.MaxMessageSize)
		}
		if m.Size > m.MaxMessageSize {
			t.Fatalf("message %d is %d bytes, over the link's max message size %d", i, m.Size, m.MaxMessageSize)
		}
		largest = max(largest, m.Size)
		perKeyMessages[*m.PartitionKey]++
		for _, ev := range m.Events {
			pts, err := codec.DecodePoints(nil, []byte(ev.Body))
			if err != nil || len(pts) != 1 {
				t.Fatalf("event body %q: %v", ev.Body, err)
			}
			p := pts[0]
			if p.Asset != *m.PartitionKey {
				t.Fatalf("point of %s in a batch keyed %q", p.Asset, *m.PartitionKey)
			}
			if ev.Properties["asset"] != p.Asset || ev.Properties["tag"] != p.Tag || ev.Properties["ts"] == "" {
				t.Fatalf("properties %v for %s/%s", ev.Properties, p.Asset, p.Tag)
			}
			id := fmt.Sprintf("%s/%s@%d", p.Asset, p.Tag, p.TS)
			if seen[id] {
				t.Fatalf("point %s arrived twice", id)
			}
			seen[id] = true
		}
	}
	if len(seen) != count {
		t.Fatalf("%d distinct points arrived, want %d (the mock dropped %d old records)", len(seen), count, got.Dropped)
	}
	// Each Write holds 1,000 points per asset, more than one batch fits: the
	// batches were split, and filled close to the link's limit.
	writes := count / (assets * tags)
	for k, n := range perKeyMessages {
		if n <= writes {
			t.Errorf("key %s: %d messages for %d writes: batches were never split", k, n, writes)
		}
	}
	if largest < got.MaxMessageSize/2 {
		t.Errorf("largest batch %d bytes: batches are not filled towards the link's %d", largest, got.MaxMessageSize)
	}
	t.Logf("%d points in %d batches over %d keys; largest batch %d of %d bytes", count, ours, len(perKeyMessages), largest, got.MaxMessageSize)
}

// TestEventHubsKafkaTransport logs in to the Event Hubs-style Kafka listener
// with the connection string (SASL_SSL PLAIN, user $ConnectionString) and
// checks the points arrive, keyed.
func TestEventHubsKafkaTransport(t *testing.T) {
	brokers := harness.Require(t, "FLOWD_TEST_KAFKA")
	harness.Require(t, "FLOWD_TEST_KAFKA_EH")
	conn := harness.Require(t, "FLOWD_TEST_KAFKA_EH_CONNSTR")
	ca := harness.Require(t, "FLOWD_TEST_KAFKA_EH_CA")
	const count = 20_000
	hub := kafkaTopic(t, brokers, 4)
	dir := t.TempDir()
	cfg := harness.WriteFile(t, dir, "ehk.hcl", fmt.Sprintf(`
pipeline "ehk" {
  source "sim" "plant" {
    assets = 4
    tags   = 50
    count  = %d
    fast   = true
  }
  sink "eventhubs" "hub" {
    inputs            = [source.plant]
    transport         = "kafka"
    connection_string = %q
    event_hub         = %q
    partition_key_by  = "asset"
    tls {
      ca_file = %q
    }
  }
}
`, count, conn, hub, ca))
	runToEnd(t, cfg, 3*time.Minute)

	recs := consumeAll(t, brokers, hub, count, 2*time.Minute, func(*consumed) int { return 1 })
	seen := map[string]bool{}
	for i := range recs {
		pts := recs[i].decode(t)
		p := &pts[0]
		if recs[i].key != p.Asset {
			t.Fatalf("record keyed %q holds a point of %s", recs[i].key, p.Asset)
		}
		seen[fmt.Sprintf("%s/%s@%d", p.Asset, p.Tag, p.TS)] = true
	}
	if len(recs) != count || len(seen) != count {
		t.Fatalf("read %d records, %d distinct points; want %d", len(recs), len(seen), count)
	}
	t.Logf("%d points through the SASL_SSL listener, logged in with the connection string", count)
}

// TestEventHubsKafkaTransportBadLogin: a wrong connection string is refused
// at connect, with the reason in the log, and nothing is delivered.
func TestEventHubsKafkaTransportBadLogin(t *testing.T) {
	brokers := harness.Require(t, "FLOWD_TEST_KAFKA")
	harness.Require(t, "FLOWD_TEST_KAFKA_EH")
	conn := harness.Require(t, "FLOWD_TEST_KAFKA_EH_CONNSTR")
	ca := harness.Require(t, "FLOWD_TEST_KAFKA_EH_CA")
	hub := kafkaTopic(t, brokers, 1)
	bad := strings.Replace(conn, "SharedAccessKey=", "SharedAccessKey=wrong", 1)
	dir := t.TempDir()
	cfg := harness.WriteFile(t, dir, "bad.hcl", fmt.Sprintf(`
pipeline "bad" {
  source "sim" "plant" {
    count = 10
    fast  = true
  }
  sink "eventhubs" "hub" {
    inputs            = [source.plant]
    transport         = "kafka"
    connection_string = %q
    event_hub         = %q
    tls {
      ca_file = %q
    }
  }
}
`, bad, hub, ca))
	p := harness.Start(t, cfg)
	harness.Eventually(t, time.Minute, func() bool {
		return strings.Contains(p.Stderr.String(), "connect failed") && strings.Contains(strings.ToLower(p.Stderr.String()), "sasl")
	}, "no SASL authentication failure reported:\n%s", p.Stderr.String())
	m, err := p.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if n := harness.Sum(m, "flowd_points_delivered_total"); n != 0 {
		t.Fatalf("%v points delivered with a wrong connection string", n)
	}
	p.Kill()
}

// TestEventHubsLive runs against a real Event Hubs namespace when
// FLOWD_TEST_EVENTHUBS_LIVE holds a connection string with EntityPath (or
// FLOWD_TEST_EVENTHUBS_LIVE_HUB names the hub), over both transports.
func TestEventHubsLive(t *testing.T) {
	conn := os.Getenv("FLOWD_TEST_EVENTHUBS_LIVE")
	if conn == "" {
		t.Skip("FLOWD_TEST_EVENTHUBS_LIVE is not set: no live Azure Event Hubs test (set it to a connection string to run one)")
	}
	hub := os.Getenv("FLOWD_TEST_EVENTHUBS_LIVE_HUB")
	hubAttr := ""
	if hub != "" {
		hubAttr = fmt.Sprintf("event_hub = %q", hub)
	}
	for _, transport := range []string{"amqp", "kafka"} {
		t.Run(transport, func(t *testing.T) {
			const count = 2000
			dir := t.TempDir()
			cfg := harness.WriteFile(t, dir, "live.hcl", fmt.Sprintf(`
pipeline "live" {
  source "sim" "plant" {
    assets = 4
    tags   = 10
    count  = %d
    fast   = true
  }
  sink "eventhubs" "hub" {
    inputs            = [source.plant]
    transport         = %q
    connection_string = env("FLOWD_TEST_EVENTHUBS_LIVE")
    partition_key_by  = "asset"
    %s
  }
}
`, count, transport, hubAttr))
			p := runToEnd(t, cfg, 3*time.Minute)
			if n := stoppedCount(p.Stderr.String(), "points_delivered"); n != count {
				t.Fatalf("delivered %d points, want %d\n%s", n, count, p.Stderr.String())
			}
		})
	}
}

// stoppedCount reads a count from flowd's final "flowd stopped" log line.
func stoppedCount(log, field string) int {
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `"flowd stopped"`) {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			if v, ok := m[field].(float64); ok {
				return int(v)
			}
		}
	}
	return -1
}

// TestEventHubsAMQPAssetJSONKeyExpr: asset_json events (one per asset per
// batch) keyed by partition_key_expr reach the mock with the computed key.
func TestEventHubsAMQPAssetJSONKeyExpr(t *testing.T) {
	conn := harness.Require(t, "FLOWD_TEST_EVENTHUBS")
	ca := harness.Require(t, "FLOWD_TEST_EVENTHUBS_CA")
	const assets, tags, steps = 4, 6, 50
	prefix := fmt.Sprintf("ehkx%d-", time.Now().UnixNano())
	cfg := harness.WriteFile(t, t.TempDir(), "ehx.hcl", fmt.Sprintf(`
pipeline "ehx" {
  source "sim" "plant" {
    assets       = %d
    tags         = %d
    count        = %d
    fast         = true
    asset_prefix = %q
  }
  sink "eventhubs" "hub" {
    inputs             = [source.plant]
    connection_string  = %q
    format             = "asset_json"
    partition_key_expr = "'site-a/' + asset"
    tls {
      ca_file     = %q
      server_name = "localhost"
    }
  }
}
`, assets, tags, assets*tags*steps, prefix, conn, ca))
	runToEnd(t, cfg, 2*time.Minute)

	var got mockMessages
	mockControl(t, "GET", "/messages", &got)
	events := 0
	for _, m := range got.Messages {
		for _, ev := range m.Events {
			var doc struct {
				Asset  string                     `json:"asset"`
				Points map[string]json.RawMessage `json:"points"`
			}
			if json.Unmarshal([]byte(ev.Body), &doc) != nil || !strings.HasPrefix(doc.Asset, prefix) {
				continue // another sender's
			}
			events++
			if m.PartitionKey == nil || *m.PartitionKey != "site-a/"+doc.Asset {
				t.Fatalf("asset %s in a batch keyed %v", doc.Asset, m.PartitionKey)
			}
			if len(doc.Points) != tags || ev.Properties["asset"] != doc.Asset {
				t.Fatalf("asset_json event of %s: %d tags, properties %v", doc.Asset, len(doc.Points), ev.Properties)
			}
		}
	}
	if events != assets*steps {
		t.Fatalf("%d asset_json events, want %d (one per asset per batch)", events, assets*steps)
	}
}
