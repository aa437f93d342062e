package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
	"github.com/flowd/flowd/engine"
)

// Fault tests of the Kafka sink with a disk buffer: the broker stopped, flowd
// SIGKILLed, and latency and resets between flowd and the broker. Each reads
// the topic back and checks that nothing was lost; duplicates are counted.

// kafkaBufSink is a Kafka sink "out" with a disk buffer, one json_batch
// record per batch.
func kafkaBufSink(inputs, brokers, topic, extra string) string {
	return fmt.Sprintf(`
  sink "kafka" "out" {
    inputs      = [%s]
    brokers     = [%q]
    topic       = %q
    format      = "json_batch"
%s
    buffer {
      type     = "disk"
      max_size = "4GiB"
    }
  }
`, inputs, brokers, topic, extra)
}

// pointTracker collects the points read back from a topic: per asset/tag the
// timestamps, so distinct points and duplicates can be told apart.
type pointTracker struct {
	ts map[string][]int64
}

func newPointTracker() *pointTracker { return &pointTracker{ts: map[string][]int64{}} }

func (p *pointTracker) record(t *testing.T, c *consumed) int {
	pts := c.decode(t)
	for i := range pts {
		k := pointKey(&pts[i])
		p.ts[k] = append(p.ts[k], pts[i].TS)
	}
	return len(pts)
}

// result counts distinct (asset, tag, ts) and the duplicates.
func (p *pointTracker) result() (distinct, dups int) {
	for _, ts := range p.ts {
		slices.Sort(ts)
		for i := range ts {
			if i > 0 && ts[i] == ts[i-1] {
				dups++
				continue
			}
			distinct++
		}
	}
	return distinct, dups
}

// TestKafkaOutageDiskBuffer stops the Kafka broker for 30 s while 12,500
// points/s (125 assets × 50 tags at 2 Hz) flow into a disk-buffered Kafka
// sink; after the broker is back every point is in the topic.
func TestKafkaOutageDiskBuffer(t *testing.T) { kafkaOutage(t, 30*time.Second) }

// TestKafkaOutageDiskBufferSoak is the 10-minute broker outage (make soak).
func TestKafkaOutageDiskBufferSoak(t *testing.T) {
	if os.Getenv("FLOWD_SOAK") == "" {
		t.Skip("set FLOWD_SOAK=1 (make soak) for the 10-minute Kafka outage")
	}
	kafkaOutage(t, 10*time.Minute)
}

func kafkaOutage(t *testing.T, outage time.Duration) {
	brokers := harness.Require(t, "FLOWD_TEST_KAFKA")
	topic := kafkaTopic(t, brokers, 3)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	pipeline := func(source string) string {
		return `pipeline "buf" {
  latency_slo   = "48h"
` + source + kafkaBufSink("source.in", brokers, topic, "") + "}\n"
	}
	cfg := harness.WriteFile(t, dir, "p.hcl", pipeline(`  source "sim" "in" {
    assets   = 125
    tags     = 50
    interval = "500ms"
  }`))
	p := harness.Start(t, "--data-dir", dataDir, cfg)
	pid := p.Cmd.Process.Pid
	harness.Eventually(t, 60*time.Second, func() bool {
		_, c := sinkStatus(t, p)
		return c.Delivered > 0
	}, "the sink to deliver before the outage")

	// The broker is shared: whatever happens, it is started again.
	harness.Services(t, "down", "kafka")
	brokerUp := false
	t.Cleanup(func() {
		if !brokerUp {
			harness.Services(t, "up", "kafka")
		}
	})
	_, c := sinkStatus(t, p)
	deliveredBefore := c.Delivered

	var rss []float64
	var peakBytes, peakPoints int64
	start := time.Now()
	for time.Since(start) < outage {
		time.Sleep(time.Second)
		rss = append(rss, rssMB(pid))
		_, c := sinkStatus(t, p)
		peakBytes, peakPoints = max(peakBytes, c.Buffer.Bytes), max(peakPoints, c.Buffer.Points)
	}
	_, c = sinkStatus(t, p)
	rate := float64(c.Received) / time.Since(start).Seconds()
	deliveredDuring := c.Delivered - deliveredBefore
	harness.Services(t, "up", "kafka")
	brokerUp = true
	recoverStart := time.Now()
	harness.Eventually(t, outage+3*time.Minute, func() bool {
		_, c := sinkStatus(t, p)
		return c.Buffer.Points < 20_000 && c.Delivered > deliveredBefore+peakPoints
	}, "the backlog to be delivered after the outage")
	recovery := time.Since(recoverStart)

	// SIGTERM keeps what is still queued on disk; a run whose only source
	// ends at once delivers it and exits.
	if code := p.Stop(time.Minute); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	in, delivered := stoppedTotals(t, p)
	empty := harness.WriteFile(t, dir, "empty.jsonl", "")
	cfg = harness.WriteFile(t, dir, "finish.hcl", pipeline(fileSource(empty)))
	p = harness.Launch(t, "--data-dir", dataDir, cfg)
	if code := p.Wait(5 * time.Minute); code != 0 {
		t.Fatalf("finishing run: exit code %d", code)
	}
	_, rest := stoppedTotals(t, p)
	delivered += rest

	tr := newPointTracker()
	recs := consumeAll(t, brokers, topic, int(in), 3*time.Minute, func(c *consumed) int { return tr.record(t, c) })
	distinct, dups := tr.result()
	if in <= 0 || int64(distinct) != in || delivered < in {
		t.Fatalf("points in %d, delivered %d (%d after the restart), distinct in the topic %d (%d records, %d duplicates)", in, delivered, rest, distinct, len(recs), dups)
	}

	third := len(rss) / 3
	early, late := 0.0, 0.0
	for _, v := range rss[min(3, third):third] {
		early = max(early, v)
	}
	for _, v := range rss[2*third:] {
		late = max(late, v)
	}
	t.Logf("Kafka outage %s at %.0f points/s: buffer peak %d points, %.1f MiB on disk (%d delivered while the broker went down); RSS peak %.0f MB early, %.0f MB late; backlog delivered %s after the broker was back; %d points in, %d distinct in the topic (%d after a SIGTERM and restart), %d duplicates",
		outage, rate, peakPoints, float64(peakBytes)/(1<<20), deliveredDuring, early, late, recovery.Round(time.Second), in, distinct, rest, dups)
	if late > early*1.5+32 {
		t.Errorf("RSS grew during the outage: %.0f MB early, %.0f MB late", early, late)
	}
}

// MQTT QoS 1 → disk-buffered Kafka sink while flowd is SIGKILLed every 20 s
// (a minute here, 2 minutes in the soak version). The MQTT source PUBACKs a
// message once its point is in the disk buffer, so a kill loses nothing that
// the broker considers delivered. For the first half flowd reaches Kafka
// only through a fault proxy that is down (see TestKafkaSinkFaults for the
// FAULTS listener), so what is acked lives only on disk across the kills.
// Every published value must reach the topic at least once; duplicates
// (redelivered MQTT messages and replayed batches) are counted.
func TestKafkaMQTTKillLoop(t *testing.T) { kafkaKillLoop(t, 3) }

// TestKafkaMQTTKillLoopSoak is the full 2 minutes: six kills (make soak).
func TestKafkaMQTTKillLoopSoak(t *testing.T) {
	if os.Getenv("FLOWD_SOAK") == "" {
		t.Skip("set FLOWD_SOAK=1 (make soak) for six kills over 2 minutes")
	}
	kafkaKillLoop(t, 6)
}

func kafkaKillLoop(t *testing.T, kills int) {
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	brokers := harness.Require(t, "FLOWD_TEST_KAFKA")
	proxy := kafkaFaultProxy(t)
	proxy.Down()
	topic := kafkaTopic(t, brokers, 3)
	run := mqttRun(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cfg := harness.WriteFile(t, dir, "p.hcl", `pipeline "buf" {
  latency_slo = "48h"`+sourceHCL(broker, "e2e/"+run, run, `    session_expiry = "10m"`)+
		kafkaBufSink("source.in", proxy.Addr(), topic, "")+"}\n")
	p := harness.Start(t, "--data-dir", dataDir, cfg)
	waitConnected(t, p, "source.in")

	// Publish 1,000 values every 500 ms until told to stop.
	stop := make(chan struct{})
	published := make(chan int, 1)
	go func() {
		n := 0
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				published <- n
				return
			case <-tick.C:
				publishSeq(t, broker, "e2e/"+run, n, n+1000, 2)
				n += 1000
			}
		}
	}()
	for i := 1; i <= kills; i++ {
		time.Sleep(20 * time.Second)
		_, c := sinkStatus(t, p)
		p.Kill()
		t.Logf("kill %d: %d received, %d delivered, %d points in the disk buffer", i, c.Received, c.Delivered, c.Buffer.Points)
		if i == kills/2 {
			proxy.Up()
		}
		p = harness.Start(t, "--data-dir", dataDir, cfg)
	}
	close(stop)
	n := <-published

	seen := newSeqCounts()
	var distinct, dups, missing int
	count := func(c *consumed) int {
		pts := c.decode(t)
		seen.mu.Lock()
		defer seen.mu.Unlock()
		for i := range pts {
			v, ok := pts[i].Value.Int64()
			if !ok {
				t.Fatalf("value %v is not an integer", pts[i].Value)
			}
			seen.seen[v]++
		}
		return len(pts)
	}
	harness.Eventually(t, 2*time.Minute, func() bool {
		_, c := sinkStatus(t, p)
		return c.Buffer.Points == 0
	}, "the disk buffer to drain")
	recs := consumeAll(t, brokers, topic, n, 2*time.Minute, count)
	distinct, dups, missing = seen.result(0, n)
	if missing != 0 {
		t.Fatalf("%d of %d published values missing from the topic (%d records, %d distinct, %d duplicates)", missing, n, len(recs), distinct, dups)
	}
	t.Logf("%d values published over %d SIGKILLs 20 s apart: %d delivered to Kafka in %d records, %d duplicates, 0 missing", n, kills, distinct, len(recs), dups)
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// A disk-buffered Kafka sink produces through toxiproxy: 2 s of latency each
// way, and twice every connection cut and the broker unreachable for 300 ms.
//
// A Kafka client connects to the seed broker only for the first metadata
// request, then to the address each broker advertises; a proxy in front of
// the ordinary listener would be bypassed. The Kafka test service therefore
// has a FAULTS listener (127.0.0.1:19096) advertised as 127.0.0.1:19097, and
// the proxy listens on exactly 19097: the seed connection and every
// connection after the metadata answer go through the proxy, with no option
// in the sink that exists only for tests.
func TestKafkaSinkFaults(t *testing.T) {
	brokers := harness.Require(t, "FLOWD_TEST_KAFKA")
	proxy := kafkaFaultProxy(t)
	topic := kafkaTopic(t, brokers, 3)
	dir := t.TempDir()
	proxy.Latency(2*time.Second, 0)

	// The sink produces one batch at a time and waits for its acks, so with
	// a 4 s round trip big batches keep the run short.
	const n = 10_000
	in := writePointsAt(t, dir, n, time.Now(), time.Microsecond)
	cfg := harness.WriteFile(t, dir, "p.hcl", `pipeline "faults" {
  latency_slo = "1h"
`+fmt.Sprintf(`  source "file" "in" {
    path       = %q
    batch_size = 2500
  }
`, in)+kafkaBufSink("source.in", proxy.Addr(), topic, `    request_timeout  = "20s"
    delivery_timeout = "60s"`)+"}\n")
	final := filepath.Join(dir, "final.json")
	p := harness.Start(t, "--data-dir", filepath.Join(dir, "data"), "--final-status", final, cfg)

	stopCuts := proxy.CutSchedule(300*time.Millisecond, 8*time.Second, 12*time.Second)
	var maxEngineP99, maxP50 float64
	var restarts int64
	states := map[string]bool{}
	deadline := time.Now().Add(3 * time.Minute)
	for i := 0; !p.Exited(); i++ {
		if time.Now().After(deadline) {
			t.Fatal("flowd did not deliver and finish within 3 minutes")
		}
		if st, err := p.Status(); err == nil {
			for _, ps := range st.Pipelines {
				for _, c := range ps.Components {
					if c.ID != "sink.out" {
						continue
					}
					if c.Latency != nil {
						maxEngineP99 = max(maxEngineP99, c.Latency.EngineP99ms)
						maxP50 = max(maxP50, c.Latency.P50ms)
					}
					restarts = max(restarts, c.Restarts)
					states[string(c.State)] = true
					if i%10 == 0 {
						t.Logf("sink %s: received %d, delivered %d, buffer %d points, restarts %d, last error %q",
							c.State, c.Received, c.Delivered, c.Buffer.Points, c.Restarts, c.LastError)
					}
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	resets := stopCuts()
	if code := p.Wait(time.Second); code != 0 {
		t.Fatalf("flowd exited %d\n%s", code, p.Stderr.String())
	}
	// Pipelined writes may deliver the last records and exit between two
	// polls: the final status holds the latency of every write.
	var st engine.Status
	if b, err := os.ReadFile(final); err != nil || json.Unmarshal(b, &st) != nil {
		t.Fatalf("final status: %v", err)
	}
	for _, ps := range st.Pipelines {
		for _, c := range ps.Components {
			if c.ID == "sink.out" && c.Latency != nil {
				maxEngineP99 = max(maxEngineP99, c.Latency.EngineP99ms)
				maxP50 = max(maxP50, c.Latency.P50ms)
			}
		}
	}

	seen := newSeqCounts()
	recs := consumeAll(t, brokers, topic, n, time.Minute, func(c *consumed) int {
		pts := c.decode(t)
		for i := range pts {
			if pts[i].Asset != "a" {
				continue
			}
			v, ok := pts[i].Value.Int64()
			if !ok {
				t.Fatalf("value %v is not an integer", pts[i].Value)
			}
			seen.seen[v]++
		}
		return len(pts)
	})
	distinct, dups, missing := seen.result(0, n)
	if missing != 0 {
		t.Fatalf("%d of %d points missing from the topic (%d records, %d duplicates)", missing, n, len(recs), dups)
	}
	t.Logf("%d points through 2 s latency each way and %d connection cuts (sink restarts %d, states %v): %d in the topic in %d records, %d duplicates; sink latency p50 up to %.0f ms, in-engine p99 up to %.0f ms",
		n, resets, restarts, keysOf(states), distinct, len(recs), dups, maxP50, maxEngineP99)
	if maxEngineP99 < 4000 {
		t.Errorf("in-engine p99 latency %.0f ms does not show the 2 s + 2 s round trip", maxEngineP99)
	}
	if resets == 0 {
		t.Error("no connection was cut")
	}
}

// kafkaFaultProxy is a fault proxy on the Kafka service's FAULTS listener:
// it listens where that listener is advertised, so every connection a client
// makes goes through it.
func kafkaFaultProxy(t *testing.T) *harness.FaultProxy {
	upstream := harness.Require(t, "FLOWD_TEST_KAFKA_FAULTS")
	listen := harness.Require(t, "FLOWD_TEST_KAFKA_FAULTS_PROXY")
	if c, err := net.DialTimeout("tcp", upstream, 5*time.Second); err == nil {
		c.Close()
	} else {
		// A broker started by an older services script has no FAULTS
		// listener; the script restarts it with the current configuration.
		t.Logf("Kafka FAULTS listener %s: %v; restarting the service", upstream, err)
		harness.Services(t, "up", "kafka")
	}
	return harness.NewFaultProxyAt(t, "kafka", listen, upstream)
}

func keysOf(m map[string]bool) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, ",")
}
