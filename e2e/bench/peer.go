package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A peerShape is a scenario's work as Telegraf does it: the harness writes
// Telegraf's configuration, runs it on the same generators as flowd and
// measures its process the same way.
type peerShape struct {
	config func(r *benchRun) string
	// count is the points in one of Telegraf's records (nil: one).
	count func([]byte) int64
}

const telegrafAgent = `[agent]
  interval = %q
  flush_interval = "1s"
  metric_batch_size = 5000
  metric_buffer_limit = 200000
  omit_hostname = true
  quiet = true

[[outputs.kafka]]
  brokers = [%q]
  topic = %q
  data_format = "json"
  required_acks = -1
  max_retry = 10
`

// telegrafOPCUA polls every tag of a simulated PLC (assets × tags) each
// interval, as flowd's peer-opcua pipeline does.
func telegrafOPCUA(assets, tags int, interval string) func(r *benchRun) string {
	return func(r *benchRun) string {
		var b strings.Builder
		fmt.Fprintf(&b, telegrafAgent, interval, r.env("FLOWD_TEST_KAFKA"), r.topic)
		fmt.Fprintf(&b, `
[[inputs.opcua]]
  name = "opcua"
  endpoint = %q
  security_policy = "None"
  security_mode = "None"
  auth_method = "Anonymous"
  timestamp = "source"
  request_timeout = "10s"
  nodes = [
`, r.opc(0))
		for a := 1; a <= assets; a++ {
			for t := 1; t <= tags; t++ {
				id := fmt.Sprintf("Asset%d.Tag%d", a, t)
				fmt.Fprintf(&b, "    {name=%q, namespace=\"2\", identifier_type=\"s\", identifier=%q},\n", id, id)
			}
		}
		// The simulated PLC (gopcua's server) has no RegisterNodes service.
		b.WriteString("  ]\n  [inputs.opcua.request_workarounds]\n    use_unregistered_reads = true\n")
		return b.String()
	}
}

// telegrafMQTT consumes the JSON points of the run's publishers, as flowd's
// peer-mqtt pipeline does.
func telegrafMQTT(r *benchRun) string {
	var b strings.Builder
	fmt.Fprintf(&b, telegrafAgent, "1s", r.env("FLOWD_TEST_KAFKA"), r.topic)
	server := strings.Replace(r.env("FLOWD_TEST_MQTT"), "mqtt://", "tcp://", 1)
	fmt.Fprintf(&b, `
[[inputs.mqtt_consumer]]
  servers = [%q]
  topics = [%q]
  qos = 1
  client_id = %q
  persistent_session = false
  max_undelivered_messages = 20000
  data_format = "json_v2"
  [[inputs.mqtt_consumer.json_v2]]
    measurement_name = "points"
    timestamp_path = "ts"
    timestamp_format = "2006-01-02T15:04:05.999999999Z07:00"
    [[inputs.mqtt_consumer.json_v2.tag]]
      path = "asset"
    [[inputs.mqtt_consumer.json_v2.tag]]
      path = "tag"
    [[inputs.mqtt_consumer.json_v2.field]]
      path = "value"
      type = "float"
`, server, r.mqttTopics("peer-mqtt")+"/#", "telegraf-bench-"+r.id)
	return b.String()
}

func createTopic(ctx context.Context, brokers, topic string, partitions int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, -1, nil, topic)
	if err != nil {
		return err
	}
	return resp.Err
}

// runPeer runs the scenario's work on Telegraf and measures it like flowd:
// CPU and peak RSS from /proc, points from the Kafka topic it writes.
func runPeer(ctx context.Context, sc scenario, duration time.Duration, logw io.Writer) (*Result, error) {
	bin := os.Getenv("FLOWD_TEST_TELEGRAF")
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	r, err := newBenchRun(sc)
	if err != nil {
		return nil, err
	}
	r.topic += "-telegraf"
	brokers := r.env("FLOWD_TEST_KAFKA")
	if err := createTopic(ctx, brokers, r.topic, 3); err != nil {
		return nil, fmt.Errorf("create %s: %w", r.topic, err)
	}
	defer deleteTopic(brokers, r.topic)
	servers, err := startServers(ctx, sc, r, self, logw)
	defer func() {
		for _, s := range servers {
			s.stop(10 * time.Second)
		}
	}()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "flowd-bench-telegraf")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	tg, err := startTelegraf(bin, sc.peer.config(r), dir, logw)
	if err != nil {
		return nil, err
	}
	defer tg.stop(time.Minute)
	// Telegraf has no readiness endpoint: give it time to connect and
	// subscribe before anything is published.
	if !sleepCtx(ctx, 5*time.Second) {
		return nil, ctx.Err()
	}
	var pubs []*child
	defer func() {
		for _, p := range pubs {
			p.stop(30 * time.Second)
		}
	}()
	if sc.publishers != nil {
		for _, a := range sc.publishers(r) {
			p, err := startChild(self, a, logw)
			if err != nil {
				return nil, err
			}
			pubs = append(pubs, p)
		}
	}
	res, err := measurePeer(ctx, tg, bin, brokers, r.topic, duration)
	if err != nil {
		return nil, err
	}
	var published int64
	for _, p := range pubs {
		p.stop(30 * time.Second)
		n, _ := p.published()
		published += n
	}
	pubs = nil
	if sc.publishers != nil {
		// Let Telegraf flush what it holds before it is stopped (it flushes on
		// exit too), so the topic can be checked against what was published. A
		// polling peer's topic never settles, and nothing is checked against
		// it: waiting there only ran out the timeout.
		waitStable(ctx, brokers, r.topic, 5*time.Second, time.Minute)
	}
	tg.stop(time.Minute)
	return res, checkPeer(ctx, sc, res, brokers, r.topic, published)
}

// startTelegraf runs Telegraf on conf, written into dir.
func startTelegraf(bin, conf, dir string, logw io.Writer) (*child, error) {
	path := filepath.Join(dir, "telegraf.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	return startChild(bin, []string{"--config", path}, logw)
}

// measurePeer warms up, then measures Telegraf over duration: its rates
// from the topic's end offsets (in records), CPU and peak RSS from /proc.
func measurePeer(ctx context.Context, tg *child, bin, brokers, topic string, duration time.Duration) (*Result, error) {
	pid := tg.cmd.Process.Pid
	if !sleepCtx(ctx, min(10*time.Second, duration/5)) {
		return nil, ctx.Err()
	}
	end0, err := endOffsets(ctx, brokers, topic)
	if err != nil {
		return nil, err
	}
	cpu0, _ := procCPU(pid)
	t0 := time.Now()
	sleepCtx(ctx, duration)
	end1, err := endOffsets(ctx, brokers, topic)
	if err != nil {
		return nil, err
	}
	cpu1, _ := procCPU(pid)
	elapsed := time.Since(t0).Seconds()
	rss, _ := procPeakRSS(pid)
	res := &Result{
		Scenario: "telegraf " + telegrafVersion(bin), DurationS: elapsed,
		PointsInPerS: float64(end1-end0) / elapsed, PointsOutPS: float64(end1-end0) / elapsed,
		CPUCores: (cpu1 - cpu0) / elapsed, RSSPeakMB: float64(rss) / 1e6,
		Truth: &Truth{Topic: topic},
	}
	if cpu1 > cpu0 {
		res.PointsPerCPUSecond = float64(end1-end0) / (cpu1 - cpu0)
	}
	return res, nil
}

// checkPeer reads Telegraf's topic back: its points scale the rates taken
// in records, and they must be what the publishers sent.
func checkPeer(ctx context.Context, sc scenario, res *Result, brokers, topic string, published int64) error {
	count := sc.peer.count
	if count == nil {
		count = countRecords
	}
	records, points, err := countTopic(ctx, brokers, topic, count)
	if err != nil {
		return err
	}
	if records > 0 && points != records {
		// rates were taken from offsets, in records: scale them to points
		f := float64(points) / float64(records)
		res.PointsInPerS, res.PointsOutPS, res.PointsPerCPUSecond = res.PointsInPerS*f, res.PointsOutPS*f, res.PointsPerCPUSecond*f
	}
	records = points
	res.PointsOut, res.PointsIn, res.Truth.InTopic = records, records, records
	if records == 0 {
		return errors.New("telegraf delivered nothing (see its log above)")
	}
	if sc.publishers != nil {
		res.Truth.Published = published
		res.PointsIn = published
		if miss := published - records; miss > 0 {
			res.PointsLost = miss
			res.Problems = append(res.Problems, fmt.Sprintf("publishers sent %d values, the topic holds %d", published, records))
		}
	}
	return nil
}

// waitStable waits until topic's end offsets have not moved for quiet.
func waitStable(ctx context.Context, brokers, topic string, quiet, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	last, since := int64(-1), time.Now()
	for time.Now().Before(deadline) {
		n, err := endOffsets(ctx, brokers, topic)
		if err == nil && n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= quiet {
			return
		}
		if !sleepCtx(ctx, 500*time.Millisecond) {
			return
		}
	}
}

// telegrafVersion asks the binary; a module build says "unknown", so the
// cache file name (telegraf-X.Y.Z) is used then.
func telegrafVersion(bin string) string {
	if v, ok := strings.CutPrefix(filepath.Base(bin), "telegraf-"); ok {
		v, _, _ = strings.Cut(v, "-") // telegraf-VERSION-PLUGINDIGEST
		return v
	}
	return "?"
}

// telegrafModbus polls devices simulated devices (flowd sim modbus on
// consecutive ports) for registers holding registers each from address
// 1000, as flowd's peer-modbus pipeline does: one inputs.modbus per device,
// one request of all its registers.
func telegrafModbus(devices, registers int) func(r *benchRun) string {
	return func(r *benchRun) string {
		var b strings.Builder
		fmt.Fprintf(&b, telegrafAgent, "1s", r.env("FLOWD_TEST_KAFKA"), r.topic)
		for d := 0; d < devices; d++ {
			fmt.Fprintf(&b, `
[[inputs.modbus]]
  name = "dev%03d"
  controller = "tcp://127.0.0.1:%d"
  timeout = "2s"
  configuration_type = "request"
  [[inputs.modbus.request]]
    slave_id = 1
    byte_order = "ABCD"
    register = "holding"
    fields = [
`, d, r.port(0)+d)
			for i := 0; i < registers; i++ {
				fmt.Fprintf(&b, "      { address=%d, name=\"r%d\", type=\"UINT16\" },\n", 1000+i, i)
			}
			b.WriteString("    ]\n")
		}
		return b.String()
	}
}

// countTelegrafFields counts the fields of one of Telegraf's JSON metrics:
// a modbus metric carries every register of a device's poll.
func countTelegrafFields(v []byte) int64 {
	var m struct {
		Fields map[string]json.RawMessage `json:"fields"`
	}
	if json.Unmarshal(v, &m) != nil {
		return 0
	}
	return int64(len(m.Fields))
}
