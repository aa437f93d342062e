package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/connectors/sim"
	"github.com/flowd/flowd/e2e/harness"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaTopic creates a fresh topic for one test and deletes it afterwards.
func kafkaTopic(t *testing.T, brokers string, partitions int32, opts ...kgo.Opt) string {
	return kafkaTopicB(t, brokers, partitions, opts...)
}

func kafkaTopicB(t testing.TB, brokers string, partitions int32, opts ...kgo.Opt) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, strings.ToLower(t.Name()))
	topic := fmt.Sprintf("e2e-%s-%d", name, time.Now().UnixNano())
	createTopic(t, brokers, topic, partitions, opts...)
	deleteTopicAtEnd(t, brokers, topic, opts...)
	return topic
}

// createTopic creates topic with one replica per partition.
func createTopic(t testing.TB, brokers, topic string, partitions int32, opts ...kgo.Opt) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// deleteTopicAtEnd deletes topic when the test ends (if it exists by then).
func deleteTopicAtEnd(t testing.TB, brokers, topic string, opts ...kgo.Opt) {
	t.Cleanup(func() {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers)}, opts...)...)
		if err != nil {
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		kadm.NewClient(cl).DeleteTopics(ctx, topic)
	})
}

// consumed is one record read back.
type consumed struct {
	key       string
	partition int32
	headers   []kgo.RecordHeader
	value     []byte
}

// header is the value of the named header ("" when absent).
func (c *consumed) header(name string) string {
	for _, h := range c.headers {
		if h.Key == name {
			return string(h.Value)
		}
	}
	return ""
}

func (c *consumed) decode(t *testing.T) []engine.Point {
	t.Helper()
	pts, err := codec.DecodePoints(nil, c.value)
	if err != nil {
		t.Fatalf("record does not decode: %v: %.200s", err, c.value)
	}
	return pts
}

// consumeAll reads the topic from the start until want points have arrived
// and nothing more comes for a short while, or the timeout passes.
// count tells how many points a record holds.
func consumeAll(t *testing.T, brokers, topic string, want int, timeout time.Duration, count func(*consumed) int, opts ...kgo.Opt) []consumed {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(32 << 20),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []consumed
	n := 0
	quietUntil := time.Time{}
	for ctx.Err() == nil {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		pcancel()
		fs.EachError(func(topic string, p int32, err error) {
			if ctx.Err() == nil && pctx.Err() == nil {
				t.Logf("fetch %s/%d: %v", topic, p, err)
			}
		})
		got := 0
		fs.EachRecord(func(r *kgo.Record) {
			c := consumed{key: string(r.Key), partition: r.Partition, headers: r.Headers, value: r.Value}
			n += count(&c)
			got++
			out = append(out, c)
		})
		if n >= want {
			// Keep reading a little: duplicates would show up here.
			if quietUntil.IsZero() {
				quietUntil = time.Now().Add(3 * time.Second)
			}
			if got == 0 && time.Now().After(quietUntil) {
				break
			}
		}
	}
	return out
}

func pointKey(p *engine.Point) string { return p.Asset + "/" + p.Tag }

// runToEnd runs a pipeline file until flowd exits on its own (the source ended).
func runToEnd(t *testing.T, pipeline string, timeout time.Duration) *harness.Proc {
	t.Helper()
	p := harness.Launch(t, pipeline)
	if code := p.Wait(timeout); code != 0 {
		t.Fatalf("flowd exit code %d (-1: still running after %s)\n%s", code, timeout, p.Stderr.String())
	}
	return p
}

// TestKafkaMillionPoints sends 1,000,000 sim points to Kafka, one record per
// point keyed by asset/tag, reads them all back and checks each point once:
// count, content (regenerated from the same sim seed) and per-key order.
func TestKafkaMillionPoints(t *testing.T) {
	brokers := harness.Require(t, "FLOWD_TEST_KAFKA")
	const assets, tags, count = 20, 10, 1_000_000
	topic := kafkaTopic(t, brokers, 6)
	dir := t.TempDir()
	cfg := harness.WriteFile(t, dir, "kafka.hcl", fmt.Sprintf(`
pipeline "million" {
  source "sim" "plant" {
    assets     = %d
    tags       = %d
    interval   = "1s"
    count      = %d
    fast       = true
    batch_size = 2000
    seed       = 7
  }
  sink "kafka" "out" {
    inputs  = [source.plant]
    brokers = [%q]
    topic   = %q
    format  = "json"
    key_by  = "asset_tag"
  }
}
`, assets, tags, count, brokers, topic))
	start := time.Now()
	runToEnd(t, cfg, 4*time.Minute)
	t.Logf("flowd delivered %d points in %s", count, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	recs := consumeAll(t, brokers, topic, count, 3*time.Minute, func(*consumed) int { return 1 })
	t.Logf("consumed %d records in %s", len(recs), time.Since(start).Round(time.Millisecond))

	// The expected points, regenerated from the same seed: per key, the
	// sequence of samples.
	gen := sim.NewGenerator(sim.Config{Assets: assets, Tags: tags, ChangeRatio: 1, Seed: 7, AssetPrefix: "asset", Interval: time.Second})
	per := gen.PointsPerStep()
	want := map[string][]engine.Point{}
	for made := 0; made < count; made += per {
		pts := gen.Fill(nil, 0, min(per, count-made), 0)
		for i := range pts {
			k := pointKey(&pts[i])
			want[k] = append(want[k], pts[i])
		}
		gen.Advance()
	}

	total := 0
	seq := map[string]int{}
	first := map[string]int64{}
	partOf := map[string]int32{}
	var t0 int64
	var buf []byte
	for ri := range recs {
		r := &recs[ri]
		k := r.key
		total++
		i := seq[k]
		if i == 0 {
			// The first record of a key fixes the start time (the sim's clock).
			pts := r.decode(t)
			if len(pts) != 1 || pointKey(&pts[0]) != k {
				t.Fatalf("record keyed %q holds %d points, the first %s", k, len(pts), pointKey(&pts[0]))
			}
			first[k] = pts[0].TS
			if t0 == 0 {
				t0 = pts[0].TS
			}
			if pts[0].TS != t0 {
				t.Fatalf("key %s starts at ts %d, others at %d", k, pts[0].TS, t0)
			}
		}
		if i >= len(want[k]) {
			t.Fatalf("key %q: more records than generated (%d)", k, len(want[k]))
		}
		// Per-key order and content: the i-th record of a key is sample i of
		// that tag, one interval after the previous one, byte for byte.
		exp := want[k][i]
		exp.TS = first[k] + int64(i)*int64(time.Second)
		buf = codec.AppendPoint(buf[:0], &exp)
		if !bytes.Equal(r.value, buf) {
			t.Fatalf("key %s record %d:\n got  %s\n want %s\n(changed, out of order, lost or duplicated)", k, i, r.value, buf)
		}
		if r.header("asset") != exp.Asset || r.header("tag") != exp.Tag || r.header("ts") != time.Unix(0, exp.TS).UTC().Format(time.RFC3339Nano) {
			t.Fatalf("headers %v for point %s at %d", r.headers, k, exp.TS)
		}
		if pp, ok := partOf[k]; ok && pp != r.partition {
			t.Fatalf("key %s in partitions %d and %d", k, pp, r.partition)
		}
		partOf[k] = r.partition
		seq[k] = i + 1
	}
	if total != count {
		t.Fatalf("read back %d points, want %d", total, count)
	}
	for k, vs := range want {
		if seq[k] != len(vs) {
			t.Errorf("key %s: read %d points, generated %d", k, seq[k], len(vs))
		}
	}
	t.Logf("read back %d points over %d keys: each once, in order, contents as generated", total, len(want))
}

// TestKafkaBrokerOutage stops the broker mid-run and starts it again: every
// point still arrives (duplicates allowed: at-least-once).
func TestKafkaBrokerOutage(t *testing.T) {
	testKafkaOutage(t, 8*time.Second)
}

// TestKafkaBrokerOutageSoak is the 30 s outage of the issue.
func TestKafkaBrokerOutageSoak(t *testing.T) {
	if os.Getenv("FLOWD_SOAK") == "" {
		t.Skip("FLOWD_SOAK is not set: the 30 s broker outage runs with make soak")
	}
	testKafkaOutage(t, 30*time.Second)
}

func testKafkaOutage(t *testing.T, outage time.Duration) {
	brokers := harness.Require(t, "FLOWD_TEST_KAFKA")
	if os.Getenv("FLOWD_TEST_KAFKA_NO_RESTART") != "" {
		t.Skip("FLOWD_TEST_KAFKA_NO_RESTART is set: this test stops and restarts the broker")
	}
	const assets, tags = 10, 10
	// 10 ms per sample of 100 tags: 10,000 points/s; samples the sim skips
	// while the pipeline is blocked do not count, so the run outlasts the outage.
	count := int((outage + 5*time.Second) / (10 * time.Millisecond) * assets * tags)
	topic := kafkaTopic(t, brokers, 3)
	t.Cleanup(func() { harness.Services(t, "up", "kafka") }) // whatever happens, leave the broker running
	dir := t.TempDir()
	cfg := harness.WriteFile(t, dir, "kafka.hcl", fmt.Sprintf(`
pipeline "outage" {
  source "sim" "plant" {
    assets   = %d
    tags     = %d
    interval = "10ms"
    count    = %d
  }
  sink "kafka" "out" {
    inputs           = [source.plant]
    brokers          = [%q]
    topic            = %q
    format           = "json"
    key_by           = "asset_tag"
    delivery_timeout = "5s"
    # Strict per-key order across an outage needs one write in flight: with
    # more, a batch retried after delivery_timeout lands after later ones.
    buffer {
      max_in_flight = 1
    }
  }
}
`, assets, tags, count, brokers, topic))
	p := harness.Start(t, cfg)
	delivered := func() float64 {
		m, err := p.Metrics()
		if err != nil {
			return -1
		}
		return harness.Sum(m, "flowd_points_delivered_total")
	}
	harness.Eventually(t, time.Minute, func() bool { return delivered() > 20_000 }, "no delivery before the outage")
	stopAt := time.Now()
	harness.Services(t, "down", "kafka")
	before := delivered()
	t.Logf("broker stopped after %.0f points (stopping took %s); down for %s", before, time.Since(stopAt).Round(time.Millisecond), outage)
	time.Sleep(outage)
	during := delivered()
	startAt := time.Now()
	harness.Services(t, "up", "kafka")
	t.Logf("broker started again in %s; %.0f points delivered while it was down", time.Since(startAt).Round(time.Millisecond), during-before)
	if code := p.Wait(4 * time.Minute); code != 0 {
		t.Fatalf("flowd exit code %d\n%s", code, p.Stderr.String())
	}
	t.Logf("flowd logged %d failed writes that the engine retried", strings.Count(p.Stderr.String(), "write failed; retrying"))

	recs := consumeAll(t, brokers, topic, count, 3*time.Minute, func(*consumed) int { return 1 })
	seen := map[string]map[int64]bool{}
	last := map[string]int64{}
	total, dups := 0, 0
	for ri := range recs {
		pts := recs[ri].decode(t)
		for i := range pts {
			pt := &pts[i]
			k := pointKey(pt)
			if seen[k] == nil {
				seen[k] = map[int64]bool{}
			}
			if seen[k][pt.TS] {
				dups++
				continue
			}
			if pt.TS <= last[k] {
				t.Fatalf("key %s: ts %d after %d (order broken beyond a retried batch)", k, pt.TS, last[k])
			}
			seen[k][pt.TS] = true
			last[k] = pt.TS
			total++
		}
	}
	t.Logf("read back %d distinct points (%d duplicates from retried batches); sent %d", total, dups, count)
	if total != count {
		t.Fatalf("lost %d points across the outage", count-total)
	}
}

// TestKafkaSinkAuth runs the Kafka sink over TLS with SASL PLAIN (the
// SASL_SSL listener) and over SASL SCRAM-SHA-256 and -512 (a SCRAM user made
// for the test), and checks every point arrives.
func TestKafkaSinkAuth(t *testing.T) {
	concurrent(t)
	brokers := harness.Require(t, "FLOWD_TEST_KAFKA")
	ehBroker := harness.Require(t, "FLOWD_TEST_KAFKA_EH")
	conn := harness.Require(t, "FLOWD_TEST_KAFKA_EH_CONNSTR")
	ca := harness.Require(t, "FLOWD_TEST_KAFKA_EH_CA")
	scramBroker := harness.Require(t, "FLOWD_TEST_KAFKA_SCRAM")

	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	user := fmt.Sprintf("flowd-e2e-%d", time.Now().UnixNano())
	const password = "scram-e2e-secret"
	res, err := kadm.NewClient(admin).AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
		{User: user, Mechanism: kadm.ScramSha256, Iterations: 4096, Password: password},
		{User: user + "-512", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: password},
	})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("create SCRAM users: %v", err)
	}

	for _, tc := range []struct {
		name, broker, extra string
	}{
		{"plain_tls", ehBroker, fmt.Sprintf(`
    tls {
      ca_file = %q
    }
    sasl {
      mechanism = "PLAIN"
      username  = "$ConnectionString"
      password  = %q
    }`, ca, conn)},
		{"scram_sha_256", scramBroker, fmt.Sprintf(`
    sasl {
      mechanism = "SCRAM-SHA-256"
      username  = %q
      password  = %q
    }`, user, password)},
		{"scram_sha_512", scramBroker, fmt.Sprintf(`
    sasl {
      mechanism = "SCRAM-SHA-512"
      username  = %q
      password  = %q
    }`, user+"-512", password)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const count = 5000
			topic := kafkaTopic(t, brokers, 2)
			cfg := harness.WriteFile(t, t.TempDir(), "auth.hcl", fmt.Sprintf(`
pipeline "auth" {
  source "sim" "plant" {
    count = %d
    fast  = true
  }
  sink "kafka" "out" {
    inputs      = [source.plant]
    brokers     = [%q]
    topic       = %q
    format      = "json_batch"
    compression = "zstd"%s
  }
}
`, count, tc.broker, topic, tc.extra))
			runToEnd(t, cfg, 2*time.Minute)
			total := 0
			for _, r := range consumeAll(t, brokers, topic, count, time.Minute, func(c *consumed) int { return len(c.decode(t)) }) {
				total += len(r.decode(t))
			}
			if total != count {
				t.Fatalf("%d points arrived, want %d", total, count)
			}
		})
	}
}
