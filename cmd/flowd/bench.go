package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/flowd/flowd/engine"
)

// A bench scenario runs flowd on one pipeline file, with load generators in
// separate processes, and measures flowd's own process.
type scenario struct {
	name    string
	summary string
	anchor  string
	// pipeline is a file under pipelines/bench/, or the name gen's text is
	// written under.
	pipeline string
	// gen, when set, makes the pipeline at run time (near-identical
	// pipelines of many generated blocks).
	gen func() string
	// needs lists the service variables (from e2e/services.sh) it requires.
	needs []string
	// vars are --var values for the pipeline.
	vars func(r *benchRun) map[string]string
	// servers are simulators (argv after the flowd binary) started before
	// flowd, listening on r.ports; flowd connects to them.
	servers func(r *benchRun) [][]string
	// plcPorts is how many consecutive loopback ports servers listen on.
	plcPorts int
	// publishers are load generators started once flowd is up; each prints
	// "published N values" when stopped, the ground truth of what was sent.
	publishers func(r *benchRun) [][]string
	// kafkaTopic, when set, is the topic the pipeline writes to: the points
	// found there after the drain are checked against what flowd delivered.
	kafkaTopic bool
	// dropTopic, when set, deletes the run's topic (vars' "topic") after
	// the run without counting it (flat-out scenarios would fill the disk).
	dropTopic bool
	// peer, when set, runs the same work on Telegraf after flowd.
	peer *peerShape
	// parts, when set, makes this scenario the sequence of the named ones.
	parts []string
	// cloud, when set, makes the scenario two tiers: the pipeline is the
	// edge, writing to the run's topic; cloud replicas read it in one group.
	cloud *cloudTier
}

// benchRun is one invocation's environment: service variables, a run id
// that keeps topics and sessions apart from earlier runs, and free ports.
type benchRun struct {
	env   func(string) string
	id    string
	ports []int
	topic string
}

func (r *benchRun) port(i int) int { return r.ports[i] }

func (r *benchRun) opc(i int) string { return fmt.Sprintf("opc.tcp://127.0.0.1:%d", r.ports[i]) }

// mqttTopics is the topic prefix of this run's publishers.
func (r *benchRun) mqttTopics(sc string) string { return "bench/" + sc + "/" + r.id }

func plcArgs(r *benchRun, plcs, assets, tags int, interval string, change float64) []string {
	return []string{"sim", "plc", "--listen", r.opc(0), "--plcs", strconv.Itoa(plcs),
		"--assets", strconv.Itoa(assets), "--tags", strconv.Itoa(tags), "--interval", interval,
		"--change", strconv.FormatFloat(change, 'f', -1, 64)}
}

func mqttArgs(r *benchRun, sc string, clients int, rate float64, change float64, assets, tags int) []string {
	return []string{"sim", "mqtt", "--broker", r.env("FLOWD_TEST_MQTT"), "--clients", strconv.Itoa(clients),
		"--rate", strconv.FormatFloat(rate, 'f', -1, 64), "--change", strconv.FormatFloat(change, 'f', -1, 64),
		"--size", "180", "--assets", strconv.Itoa(assets), "--tags", strconv.Itoa(tags),
		"--topic", r.mqttTopics(sc) + "/{client}/{asset}", "--client-prefix", "flowd-bench-" + r.id}
}

func httpArgs(r *benchRun, rate float64, clients int) []string {
	return []string{"sim", "http", "--url", fmt.Sprintf("http://127.0.0.1:%d/uplink", r.port(0)),
		"--rate", strconv.FormatFloat(rate, 'f', -1, 64), "--clients", strconv.Itoa(clients), "--meters", "1000000"}
}

func smartMeterVars(r *benchRun) map[string]string {
	return map[string]string{"listen": fmt.Sprintf("127.0.0.1:%d", r.port(0)), "cassandra": r.env("FLOWD_TEST_CASSANDRA")}
}

// modbusServers runs 100 simulated Modbus TCP devices of 100 registers each,
// changing every interval.
func modbusServers(interval string) func(r *benchRun) [][]string {
	return func(r *benchRun) [][]string {
		return [][]string{{"sim", "modbus", "--listen", fmt.Sprintf("127.0.0.1:%d", r.port(0)), "--devices", "100", "--registers", "100", "--interval", interval}}
	}
}

func kafkaVars(r *benchRun) map[string]string {
	return map[string]string{"kafka": r.env("FLOWD_TEST_KAFKA"), "topic": r.topic}
}

func scenarios() []scenario {
	return []scenario{
		{
			name: "engine", summary: "sim → discard: the engine alone, no external service",
			anchor: "-", pipeline: "engine.hcl",
		},
		{
			name: "kafka_json", summary: "sim (fast) → kafka, a record per point keyed by asset/tag, into the local broker",
			anchor: "-", pipeline: "kafka_json.hcl", needs: []string{"FLOWD_TEST_KAFKA"},
			vars: func(r *benchRun) map[string]string {
				return map[string]string{"kafka_brokers": r.env("FLOWD_TEST_KAFKA"), "topic": r.topic}
			},
			dropTopic: true,
		},
		{
			name: "kafka_json_batch", summary: "sim (fast) → kafka, a record per batch of 5,000 points, into the local broker",
			anchor: "-", pipeline: "kafka_json_batch.hcl", needs: []string{"FLOWD_TEST_KAFKA"},
			vars: func(r *benchRun) map[string]string {
				return map[string]string{"kafka_brokers": r.env("FLOWD_TEST_KAFKA"), "topic": r.topic}
			},
			dropTopic: true,
		},
		{
			name: "aio-single", summary: "125 assets × 50 tags @ 2 Hz over OPC UA → cov → Event Hubs (AMQP)",
			anchor:   "Azure IoT Operations, one 4-core node: 2.4–2.6 cores, 6–8 GB, < 10 s",
			pipeline: "aio-single.hcl", needs: []string{"FLOWD_TEST_EVENTHUBS", "FLOWD_TEST_EVENTHUBS_CA"},
			plcPorts: 1,
			servers: func(r *benchRun) [][]string {
				return [][]string{plcArgs(r, 1, 125, 50, "500ms", 1)}
			},
			vars: func(r *benchRun) map[string]string {
				return map[string]string{"plc_endpoint": r.opc(0),
					"eventhubs": r.env("FLOWD_TEST_EVENTHUBS"), "eventhubs_ca": r.env("FLOWD_TEST_EVENTHUBS_CA")}
			},
		},
		{
			name: "aio-multi", summary: "5 PLCs, 85 assets × 1,000 tags @ 1 Hz (50 % changing, polled) + 2 MQTT clients × 10,000/s → cov → Kafka",
			anchor:   "Azure IoT Operations, five 8-core nodes: 2.5–3 cores, 25–30 GB, < 10 s",
			pipeline: "aio-multi.hcl", needs: []string{"FLOWD_TEST_KAFKA", "FLOWD_TEST_MQTT"},
			plcPorts: 5, kafkaTopic: true,
			servers: func(r *benchRun) [][]string {
				return [][]string{plcArgs(r, 5, 17, 1000, "1s", 0.5)}
			},
			publishers: func(r *benchRun) [][]string {
				return [][]string{mqttArgs(r, "aio-multi", 2, 10000, 1.0/3, 10, 100)}
			},
			vars: func(r *benchRun) map[string]string {
				v := kafkaVars(r)
				for i := range 5 {
					v[fmt.Sprintf("plc%d", i+1)] = r.opc(i)
				}
				v["mqtt"] = r.env("FLOWD_TEST_MQTT")
				v["mqtt_topics"] = r.mqttTopics("aio-multi")
				return v
			},
		},
		{
			name: "trackers", summary: "1,000,000 trackers, each one MQTT message/min of 5 points (16,667 msg/s, ≈ 83,000 points/s) → edge flowd → Kafka → 3 cloud flowd replicas (one group) → Cassandra",
			anchor:   "ThingsBoard: 15 nodes + 15 Cassandra nodes",
			pipeline: "trackers.hcl", needs: []string{"FLOWD_TEST_MQTT", "FLOWD_TEST_KAFKA", "FLOWD_TEST_CASSANDRA"},
			kafkaTopic: true,
			publishers: func(r *benchRun) [][]string {
				// 8 clients × 125,000 trackers, each a message of its 5
				// values once a minute.
				a := mqttArgs(r, "trackers", 8, 1e6*5/60/8, 1, 125000, 5)
				return [][]string{append(a, "--format", "json_batch")}
			},
			vars: func(r *benchRun) map[string]string {
				v := kafkaVars(r)
				v["mqtt"], v["mqtt_topics"] = r.env("FLOWD_TEST_MQTT"), r.mqttTopics("trackers")
				return v
			},
			cloud: &cloudTier{
				pipeline: "trackers-cloud.hcl", replicas: 3, partitions: 6,
				vars: func(r *benchRun) map[string]string {
					v := kafkaVars(r)
					v["group"], v["cassandra"], v["keyspace"] = r.topic, r.env("FLOWD_TEST_CASSANDRA"), trackersKeyspace(r)
					return v
				},
				keyspace: trackersKeyspace,
			},
		},
		{
			name: "neuron", summary: "100,000 OPC UA points/s (2 PLCs × 50 assets × 1,000 tags @ 1 Hz, polled) → Kafka",
			anchor:   "EMQX Neuron 3.2, 4 cores: 60 % CPU (2.4 cores), 594 MB at 100k points/s",
			pipeline: "neuron.hcl", needs: []string{"FLOWD_TEST_KAFKA"},
			plcPorts: 2, kafkaTopic: true,
			servers: func(r *benchRun) [][]string {
				return [][]string{plcArgs(r, 2, 50, 1000, "1s", 1)}
			},
			vars: func(r *benchRun) map[string]string {
				v := kafkaVars(r)
				v["plc1"], v["plc2"] = r.opc(0), r.opc(1)
				return v
			},
		},
		{
			name: "max", summary: "MQTT → expr → cov → Kafka as fast as the publishers go (backpressure paces them)",
			anchor:   "target: ≥ 1,000,000 points/s with p99 < 1 s",
			pipeline: "max.hcl", needs: []string{"FLOWD_TEST_KAFKA", "FLOWD_TEST_MQTT"},
			kafkaTopic: true,
			publishers: func(r *benchRun) [][]string {
				return [][]string{mqttArgs(r, "max", 8, 0, 1, 10, 100)}
			},
			vars: func(r *benchRun) map[string]string {
				v := kafkaVars(r)
				v["mqtt"] = r.env("FLOWD_TEST_MQTT")
				v["mqtt_topics"] = r.mqttTopics("max")
				return v
			},
		},
		{
			name: "max-engine", summary: "sim (as fast as taken) → expr → cov → discard: the engine's ceiling without a broker",
			anchor: "target: ≥ 1,000,000 points/s", pipeline: "max-engine.hcl",
		},
		{
			name: "peer-opcua", summary: "1,000 OPC UA nodes polled every 200 ms → Kafka, flowd then Telegraf",
			anchor:   "Telegraf 1.37.2 (inputs.opcua → outputs.kafka), same work, same invocation",
			pipeline: "peer-opcua.hcl", needs: []string{"FLOWD_TEST_KAFKA", "FLOWD_TEST_TELEGRAF"},
			plcPorts: 1, kafkaTopic: true,
			servers: func(r *benchRun) [][]string {
				return [][]string{plcArgs(r, 1, 20, 50, "200ms", 1)}
			},
			vars: func(r *benchRun) map[string]string {
				v := kafkaVars(r)
				v["plc_endpoint"] = r.opc(0)
				return v
			},
			peer: &peerShape{config: telegrafOPCUA(20, 50, "200ms")},
		},
		{
			name: "peer-mqtt", summary: "2 MQTT clients × 5,000 JSON values/s → Kafka, flowd then Telegraf",
			anchor:   "Telegraf 1.37.2 (inputs.mqtt_consumer json_v2 → outputs.kafka), same work, same invocation",
			pipeline: "peer-mqtt.hcl", needs: []string{"FLOWD_TEST_KAFKA", "FLOWD_TEST_MQTT", "FLOWD_TEST_TELEGRAF"},
			kafkaTopic: true,
			publishers: func(r *benchRun) [][]string {
				return [][]string{mqttArgs(r, "peer-mqtt", 2, 5000, 1.0/3, 10, 100)}
			},
			vars: func(r *benchRun) map[string]string {
				v := kafkaVars(r)
				v["mqtt"] = r.env("FLOWD_TEST_MQTT")
				v["mqtt_topics"] = r.mqttTopics("peer-mqtt")
				return v
			},
			peer: &peerShape{config: telegrafMQTT},
		},
		{
			name: "smart-meters", summary: "1,000,000 smart meters: 280 LoRaWAN uplinks/s × 3 readings over HTTP → expr → Cassandra",
			anchor:   "ThingsBoard: 1 M smart meters, 840 points/s via HTTP/UDP integration",
			pipeline: "smart-meters.hcl", needs: []string{"FLOWD_TEST_CASSANDRA"},
			plcPorts: 1, publishers: func(r *benchRun) [][]string { return [][]string{httpArgs(r, 280, 16)} },
			vars: smartMeterVars,
		},
		{
			name: "smart-meters-stress", summary: "smart-meters with 64 clients posting as fast as they are answered (429 paces them)",
			anchor:   "-",
			pipeline: "smart-meters.hcl", needs: []string{"FLOWD_TEST_CASSANDRA"},
			plcPorts: 1, publishers: func(r *benchRun) [][]string { return [][]string{httpArgs(r, 0, 64)} },
			vars: smartMeterVars,
		},
		{
			name: "modbus", summary: "100 Modbus TCP devices × 100 registers @ 1 Hz (flowd sim modbus) → discard",
			anchor: "-", pipeline: "modbus.hcl", gen: modbusPipeline("modbus", 100, 100, false), plcPorts: 100,
			servers: modbusServers("1s"),
			vars:    func(r *benchRun) map[string]string { return map[string]string{"base_port": strconv.Itoa(r.port(0))} },
		},
		{
			name: "modbus-10hz", summary: "the modbus scenario polled every 100 ms: 100,000 points/s, 1,000 reads/s",
			anchor: "-", pipeline: "modbus.hcl", gen: modbusPipeline("modbus", 100, 100, false), plcPorts: 100,
			servers: modbusServers("100ms"),
			vars: func(r *benchRun) map[string]string {
				return map[string]string{"base_port": strconv.Itoa(r.port(0)), "interval": "100ms"}
			},
		},
		{
			name: "peer-modbus", summary: "100 Modbus TCP devices × 100 registers @ 1 Hz → Kafka, flowd then Telegraf",
			anchor:   "Telegraf 1.37.2 (inputs.modbus → outputs.kafka), same work, same invocation",
			pipeline: "peer-modbus.hcl", gen: modbusPipeline("peer-modbus", 100, 100, true), needs: []string{"FLOWD_TEST_KAFKA", "FLOWD_TEST_TELEGRAF"},
			plcPorts: 100, kafkaTopic: true,
			servers: modbusServers("1s"),
			vars: func(r *benchRun) map[string]string {
				v := kafkaVars(r)
				v["base_port"] = strconv.Itoa(r.port(0))
				return v
			},
			peer: &peerShape{config: telegrafModbus(100, 100), count: countTelegrafFields},
		},
		{
			name: "sparkplug", summary: "4 Sparkplug B edge nodes × 25,000 metrics/s (10 devices × 100 metrics, DDATA by alias) → discard",
			anchor:   "-",
			pipeline: "sparkplug.hcl", needs: []string{"FLOWD_TEST_MQTT"},
			publishers: func(r *benchRun) [][]string {
				return [][]string{{"sim", "mqtt", "--format", "sparkplug", "--broker", r.env("FLOWD_TEST_MQTT"), "--clients", "4",
					"--rate", "25000", "--change", "1", "--assets", "10", "--tags", "100",
					"--group", "bench-" + r.id, "--client-prefix", "flowd-bench-" + r.id}}
			},
			vars: func(r *benchRun) map[string]string {
				return map[string]string{"mqtt": r.env("FLOWD_TEST_MQTT"), "group": "bench-" + r.id}
			},
		},
		{
			name: "peer", summary: "peer-opcua then peer-mqtt: flowd and Telegraf side by side on both shapes",
			parts: []string{"peer-opcua", "peer-mqtt"},
		},
	}
}

func findScenario(name string) *scenario {
	for _, s := range scenarios() {
		if s.name == name {
			return &s
		}
	}
	return nil
}

// benchResult is the JSON object DESIGN.md fixes.
type benchResult struct {
	Scenario     string  `json:"scenario"`
	DurationS    float64 `json:"duration_s"`
	PointsInPerS float64 `json:"points_in_per_s"`
	PointsOutPS  float64 `json:"points_out_per_s"`
	LatencyP50   float64 `json:"latency_p50_ms"`
	LatencyP99   float64 `json:"latency_p99_ms"`
	LatencyMax   float64 `json:"latency_max_ms"`
	CPUCores     float64 `json:"cpu_cores"`
	RSSPeakMB    float64 `json:"rss_peak_mb"`
	PointsLost   int64   `json:"points_lost"`
	PointsIn     int64   `json:"points_in"`
	PointsOut    int64   `json:"points_out"`
	// PointsPerCPUSecond is points out per second of the process's CPU time.
	PointsPerCPUSecond float64 `json:"points_per_cpu_s"`
	// Truth is what was checked outside the process's own counters.
	Truth  *benchTruth  `json:"truth,omitempty"`
	Anchor string       `json:"anchor,omitempty"`
	Peer   *benchResult `json:"peer,omitempty"`
	// PeerCPURatio is flowd's points per CPU-second over the peer's;
	// PeerRSSRatio is the peer's peak RSS over flowd's.
	PeerCPURatio float64 `json:"peer_points_per_cpu_ratio,omitempty"`
	PeerRSSRatio float64 `json:"peer_rss_ratio,omitempty"`
	// Tiers, for a two-tier scenario, are the edge's and the cloud's
	// shares; the figures above are then the whole: points out and latency
	// of the cloud (end to end), CPU of every flowd process.
	Tiers []*tierResult `json:"tiers,omitempty"`
	// Problems lists what went wrong (a loss, a missing count).
	Problems []string `json:"problems,omitempty"`
}

// benchTruth is the ground truth a run is checked against.
type benchTruth struct {
	// Published is what the publishers say the broker accepted.
	Published int64 `json:"published,omitempty"`
	// Received is what the sources took in (final status).
	Received int64 `json:"received,omitempty"`
	// Delivered is what the sinks report delivered (final status).
	Delivered int64 `json:"delivered"`
	// InTopic is the points read back from the Kafka topic after the drain.
	InTopic int64  `json:"in_topic,omitempty"`
	Topic   string `json:"topic,omitempty"`
}

func cmdBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	duration := fs.Duration("duration", 60*time.Second, "how long to measure")
	asJSON := fs.Bool("json", false, "print one JSON object per scenario instead of a table")
	dir := fs.String("pipelines", "pipelines/bench", "directory of the scenario pipeline files")
	withPeer := fs.Bool("peer", true, "also run the scenario's peer (Telegraf) where it has one")
	pprofOut := fs.String("cpuprofile", "", "write a CPU profile of flowd's measured window to this file (flowd run --pprof); a two-tier scenario also writes the first cloud replica's to FILE.cloud")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: flowd bench [--duration D] [--json] SCENARIO\n\nScenarios:")
		for _, s := range scenarios() {
			fmt.Fprintf(stderr, "  %-12s %s\n", s.name, s.summary)
		}
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	top := findScenario(fs.Arg(0))
	if top == nil {
		fmt.Fprintf(stderr, "flowd bench: unknown scenario %q\n", fs.Arg(0))
		fs.Usage()
		return exitUsage
	}
	list := []scenario{*top}
	if len(top.parts) > 0 {
		list = list[:0]
		for _, n := range top.parts {
			list = append(list, *findScenario(n))
		}
	}
	for _, sc := range list {
		for _, v := range sc.needs {
			if os.Getenv(v) == "" {
				fmt.Fprintf(stderr, "flowd bench %s: needs %s; start the services first: eval \"$(e2e/services.sh up)\"\n", sc.name, v)
				return exitUsage
			}
		}
	}
	tmp, err := os.MkdirTemp("", "flowd-bench-pipelines")
	if err != nil {
		fmt.Fprintf(stderr, "flowd bench: %v\n", err)
		return exitInvalid
	}
	defer os.RemoveAll(tmp)
	files := make([]string, len(list))
	for i, sc := range list {
		path, err := pipelineFile(sc, *dir, tmp)
		files[i] = path
		var missing []string
		if err == nil {
			missing, err = missingComponents(path)
		}
		if err != nil {
			fmt.Fprintf(stderr, "flowd bench %s: %v\n", sc.name, err)
			return exitUsage
		}
		if len(missing) > 0 {
			fmt.Fprintf(stderr, "flowd bench %s: needs %s, which this build does not have\n", sc.name, strings.Join(missing, ", "))
			return exitInvalid
		}
	}
	code := exitOK
	for i, sc := range list {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		if !*withPeer {
			sc.peer = nil
		}
		res, err := runBench(ctx, sc, files[i], *dir, *duration, *pprofOut, stderr)
		stop()
		if err != nil {
			fmt.Fprintf(stderr, "flowd bench %s: %v\n", sc.name, err)
			if res == nil {
				return exitInvalid
			}
			res.Problems = append(res.Problems, err.Error())
			code = exitInvalid
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			enc.Encode(res)
		} else {
			printBench(stdout, res)
		}
		if res.PointsLost != 0 {
			code = exitInvalid
		}
	}
	return code
}

func printBench(w io.Writer, r *benchResult) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\t%s\t", r.Scenario)
	if r.Peer != nil {
		fmt.Fprintf(tw, "%s\t", r.Peer.Scenario)
	}
	fmt.Fprintln(tw)
	row := func(name string, f func(*benchResult) string) {
		fmt.Fprintf(tw, "%s\t%s\t", name, f(r))
		if r.Peer != nil {
			fmt.Fprintf(tw, "%s\t", f(r.Peer))
		}
		fmt.Fprintln(tw)
	}
	row("duration", func(r *benchResult) string { return fmt.Sprintf("%.0f s", r.DurationS) })
	row("points in/s", func(r *benchResult) string { return fmt.Sprintf("%.0f", r.PointsInPerS) })
	row("points out/s", func(r *benchResult) string { return fmt.Sprintf("%.0f", r.PointsOutPS) })
	row("latency p50/p99/max", func(r *benchResult) string {
		return fmt.Sprintf("%.0f / %.0f / %.0f ms", r.LatencyP50, r.LatencyP99, r.LatencyMax)
	})
	row("cpu (cores)", func(r *benchResult) string { return fmt.Sprintf("%.3f", r.CPUCores) })
	row("rss peak", func(r *benchResult) string { return fmt.Sprintf("%.0f MB", r.RSSPeakMB) })
	row("points per cpu-second", func(r *benchResult) string { return fmt.Sprintf("%.0f", r.PointsPerCPUSecond) })
	row("points lost", func(r *benchResult) string { return strconv.FormatInt(r.PointsLost, 10) })
	for _, t := range r.Tiers {
		fmt.Fprintf(tw, "tier %s (%d)\t%.0f → %.0f points/s, %.3f cores, %.1f µs cpu/point (whole run %.1f), p99 %.0f ms, rss peak %.0f MB, in %d, out %d, lost %d, duplicates %d\t\n",
			t.Tier, t.Processes, t.PointsInPerS, t.PointsOutPS, t.CPUCores, t.CPUMicrosPerPoint, t.CPUMicrosPerPointRun, t.LatencyP99, t.RSSPeakMB, t.PointsIn, t.PointsOut, t.PointsLost, t.Duplicates)
	}
	if t := r.Truth; t != nil {
		var parts []string
		if t.Published > 0 {
			parts = append(parts, fmt.Sprintf("published %d", t.Published))
		}
		parts = append(parts, fmt.Sprintf("received %d", t.Received), fmt.Sprintf("delivered %d", t.Delivered))
		if t.Topic != "" {
			parts = append(parts, fmt.Sprintf("read back from Kafka %d", t.InTopic))
		}
		fmt.Fprintf(tw, "counts\t%s\t\n", strings.Join(parts, ", "))
	}
	if r.Peer != nil {
		fmt.Fprintf(tw, "flowd vs peer\t%.1f× points per cpu-second, %.1f× less memory\t\n", r.PeerCPURatio, r.PeerRSSRatio)
	}
	if r.Anchor != "" && r.Anchor != "-" {
		fmt.Fprintf(tw, "anchor\t%s\t\n", r.Anchor)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(tw, "problem\t%s\t\n", p)
	}
	tw.Flush()
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// consecutivePorts finds n free loopback ports in a row.
func consecutivePorts(n int) ([]int, error) {
	for try := 0; try < 50; try++ {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		_, p, _ := net.SplitHostPort(addr)
		base, _ := strconv.Atoi(p)
		ports := []int{base}
		for i := 1; i < n; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				break
			}
			l.Close()
			ports = append(ports, base+i)
		}
		if len(ports) == n {
			return ports, nil
		}
	}
	return nil, errors.New("no consecutive free ports")
}

func waitPorts(ctx context.Context, ports []int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, p := range ports {
		for {
			d := net.Dialer{Timeout: time.Second}
			c, err := d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("simulator did not listen on port %d: %v", p, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

// child is a helper process (simulator, publisher, peer) with its output.
type child struct {
	cmd *exec.Cmd
	out strings.Builder
}

func startChild(name string, argv []string, logw io.Writer) (*child, error) {
	c := &child{cmd: exec.Command(name, argv...)}
	c.cmd.Stdout = &c.out
	c.cmd.Stderr = logw
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s %v: %w", name, argv, err)
	}
	return c, nil
}

// stop ends the child with SIGTERM (SIGKILL after grace) and waits.
func (c *child) stop(grace time.Duration) {
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		c.cmd.Process.Kill()
		<-done
	}
}

// published parses a publisher's "published N values" line.
func (c *child) published() (int64, bool) {
	for _, line := range strings.Split(c.out.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "published "); ok {
			n, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// runBench runs one scenario: flowd, then the peer when it has one.
func runBench(ctx context.Context, sc scenario, pipeline, dir string, duration time.Duration, cpuprofile string, logw io.Writer) (*benchResult, error) {
	res, err := runScenario(ctx, sc, pipeline, dir, duration, cpuprofile, logw)
	if err != nil || sc.peer == nil {
		return res, err
	}
	peer, err := runPeer(ctx, sc, duration, logw)
	if peer != nil {
		res.Peer = peer
		if peer.PointsPerCPUSecond > 0 {
			res.PeerCPURatio = res.PointsPerCPUSecond / peer.PointsPerCPUSecond
		}
		if res.RSSPeakMB > 0 {
			res.PeerRSSRatio = peer.RSSPeakMB / res.RSSPeakMB
		}
	}
	if err != nil {
		return res, fmt.Errorf("peer: %w", err)
	}
	return res, nil
}

func newBenchRun(sc scenario) (*benchRun, error) {
	r := &benchRun{env: os.Getenv, id: strconv.FormatInt(time.Now().UnixNano()%1e10, 36)}
	if sc.plcPorts > 0 {
		ports, err := consecutivePorts(sc.plcPorts)
		if err != nil {
			return nil, err
		}
		r.ports = ports
	}
	r.topic = "flowd-bench-" + sc.name + "-" + r.id
	return r, nil
}

// startServers starts the simulators and waits until they listen.
func startServers(ctx context.Context, sc scenario, r *benchRun, self string, logw io.Writer) ([]*child, error) {
	var out []*child
	if sc.servers == nil {
		return nil, nil
	}
	for _, argv := range sc.servers(r) {
		c, err := startChild(self, argv, logw)
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
	return out, waitPorts(ctx, r.ports, 2*time.Minute)
}

func runScenario(ctx context.Context, sc scenario, pipeline, dir string, duration time.Duration, cpuprofile string, logw io.Writer) (*benchResult, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	r, err := newBenchRun(sc)
	if err != nil {
		return nil, err
	}
	var cloud *cloudRun
	if sc.cloud != nil {
		cloudProfile := ""
		if cpuprofile != "" {
			cloudProfile = cpuprofile + ".cloud"
		}
		cloud, err = startCloud(ctx, sc.cloud, r, self, dir, cloudProfile, logw)
		defer cloud.close()
		if err != nil {
			return nil, err
		}
	}
	servers, err := startServers(ctx, sc, r, self, logw)
	defer func() {
		for _, s := range servers {
			s.stop(10 * time.Second)
		}
	}()
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dataDir, err := os.MkdirTemp("", "flowd-bench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dataDir)
	finalPath := filepath.Join(dataDir, "final-status.json")
	argv := []string{"run", "--http", addr, "--data-dir", dataDir, "--log-format", "json", "--log-level", "warn", "--final-status", finalPath}
	pprofAddr := ""
	if cpuprofile != "" {
		if pprofAddr, err = freeAddr(); err != nil {
			return nil, err
		}
		argv = append(argv, "--pprof", pprofAddr)
	}
	if sc.vars != nil {
		for k, v := range sc.vars(r) {
			argv = append(argv, "--var", k+"="+v)
		}
	}
	argv = append(argv, pipeline)
	cmd := exec.Command(self, argv...)
	cmd.Stderr = logw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	pid := cmd.Process.Pid
	defer cmd.Process.Kill()

	if err := waitHTTP(addr, 2*time.Minute, exited); err != nil {
		return nil, err
	}
	// Publishers start once flowd subscribed, so the broker keeps nothing
	// from before and every published value is flowd's to deliver.
	var pubs []*child
	defer func() {
		for _, p := range pubs {
			p.stop(30 * time.Second)
		}
	}()
	if sc.publishers != nil {
		if err := waitSourcesUp(ctx, addr, time.Minute); err != nil {
			return nil, err
		}
		for _, a := range sc.publishers(r) {
			p, err := startChild(self, a, logw)
			if err != nil {
				return nil, err
			}
			pubs = append(pubs, p)
		}
		// Publishers of many series take a while to set up; measure
		// only once points flow.
		waitReceived(ctx, addr, 1, 3*time.Minute)
	}
	// Warm up, then measure a steady window.
	warm := min(10*time.Second, duration/5)
	if !sleepCtx(ctx, warm) {
		return nil, ctx.Err()
	}
	st0, err := fetchStatus(addr)
	if err != nil {
		return nil, err
	}
	var prof *profileRun
	if cpuprofile != "" {
		prof = startProfile(pprofAddr, duration, cpuprofile)
	}
	cpu0, _ := procCPU(pid)
	if cloud != nil {
		cloud.mark(duration)
	}
	t0 := time.Now()
	var last engine.Status
	for time.Since(t0) < duration {
		if !sleepCtx(ctx, min(time.Second, duration-time.Since(t0))) {
			break
		}
		if s, err := fetchStatus(addr); err == nil {
			last = s
		}
	}
	cpu1, _ := procCPU(pid)
	elapsed := time.Since(t0).Seconds()
	rss, _ := procPeakRSS(pid)
	var cloudRes *tierResult
	if cloud != nil {
		cloudRes = cloud.measure(elapsed)
	}
	if prof != nil {
		if err := prof.wait(); err != nil {
			fmt.Fprintf(logw, "flowd bench: cpu profile: %v\n", err)
		}
	}
	in0, out0 := statusCounts(st0)
	in1, out1 := statusCounts(last)
	l := latencyOf(last)
	res := &benchResult{
		Scenario: sc.name, DurationS: elapsed, Anchor: sc.anchor,
		PointsInPerS: float64(in1-in0) / elapsed, PointsOutPS: float64(out1-out0) / elapsed,
		CPUCores: (cpu1 - cpu0) / elapsed, RSSPeakMB: float64(rss) / 1e6,
		LatencyP50: l.P50ms, LatencyP99: l.P99ms, LatencyMax: l.Maxms,
		Truth: &benchTruth{},
	}
	if cpu1 > cpu0 {
		res.PointsPerCPUSecond = float64(out1-out0) / (cpu1 - cpu0)
	}
	var edgeRes *tierResult
	if cloud != nil {
		// The edge's own share; finishCloud makes res the whole.
		edgeRes = &tierResult{Tier: "edge", Processes: 1, PointsInPerS: res.PointsInPerS, PointsOutPS: res.PointsOutPS,
			CPUCores: res.CPUCores, RSSPeakMB: res.RSSPeakMB, LatencyP50: l.P50ms, LatencyP99: l.P99ms, LatencyMax: l.Maxms}
		if out1 > out0 {
			edgeRes.CPUMicrosPerPoint = (cpu1 - cpu0) / float64(out1-out0) * 1e6
		}
	}
	// Stop the load, let flowd take in what the broker still holds for it,
	// then drain.
	var published int64
	for _, p := range pubs {
		p.stop(30 * time.Second)
		n, ok := p.published()
		if !ok {
			res.Problems = append(res.Problems, "a publisher printed no count")
		}
		published += n
	}
	pubs = nil
	if sc.publishers != nil {
		waitReceived(ctx, addr, published, 3*time.Minute)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	var exitErr error
	select {
	case exitErr = <-exited:
	case <-time.After(2 * time.Minute):
		// A goroutine dump in the log says what it is stuck on.
		cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
		return res, errors.New("flowd did not exit within 2 minutes of SIGTERM (goroutine dump in the log above)")
	}
	final, err := readFinalStatus(finalPath)
	if err != nil {
		return res, fmt.Errorf("final status: %w", err)
	}
	in, out := statusCounts(final)
	res.PointsIn, res.PointsOut = in, out
	res.Truth.Received, res.Truth.Delivered = in, out
	res.PointsLost = lostPoints(final)
	if res.PointsLost > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d points neither delivered nor counted as dropped by the sinks", res.PointsLost))
	}
	if sc.publishers != nil {
		res.Truth.Published = published
		if miss := published - in; miss > 0 {
			res.PointsLost += miss
			res.Problems = append(res.Problems, fmt.Sprintf("publishers sent %d values, flowd received %d", published, in))
		}
	}
	if sc.kafkaTopic {
		res.Truth.Topic = r.topic
		cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		_, points, err := countTopic(cctx, r.env("FLOWD_TEST_KAFKA"), r.topic, countCanonical)
		cancel()
		if err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("reading back %s: %v", r.topic, err))
			res.PointsLost = max(res.PointsLost, 1)
		} else {
			res.Truth.InTopic = points
			if miss := out - points; miss > 0 {
				res.PointsLost += miss
				res.Problems = append(res.Problems, fmt.Sprintf("flowd delivered %d points, the topic holds %d", out, points))
			}
		}
		if cloud == nil {
			deleteTopic(r.env("FLOWD_TEST_KAFKA"), r.topic)
		}
	}
	if cloud != nil {
		finishCloud(ctx, res, edgeRes, cloudRes, cloud, lifeCPU(cmd))
	}
	if sc.dropTopic {
		deleteTopic(r.env("FLOWD_TEST_KAFKA"), r.topic)
	}
	if exitErr != nil {
		return res, fmt.Errorf("flowd exited with %v", exitErr)
	}
	if in == 0 {
		return res, errors.New("no point reached flowd's sources (see the log above)")
	}
	return res, nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// waitSourcesUp waits until every source reports itself running, so
// subscriptions exist before anything is published.
func waitSourcesUp(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st, err := fetchStatus(addr)
		if err == nil {
			up := true
			for _, p := range st.Pipelines {
				for _, c := range p.Components {
					if c.Kind == engine.KindSource && c.State != engine.StateConnected {
						up = false
					}
				}
			}
			if up {
				return nil
			}
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
	return errors.New("flowd's sources did not come up")
}

// waitReceived waits until flowd's sources have taken in n points (or,
// once some came, the count stops moving for 30 s).
func waitReceived(ctx context.Context, addr string, n int64, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	var last int64 = -1
	still := time.Now()
	for time.Now().Before(deadline) {
		st, err := fetchStatus(addr)
		if err == nil {
			in, _ := statusCounts(st)
			if in >= n {
				return
			}
			if in != last {
				last, still = in, time.Now()
			} else if in > 0 && time.Since(still) > 30*time.Second {
				return
			}
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return
		}
	}
}

func readFinalStatus(path string) (engine.Status, error) {
	var st engine.Status
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// lostPoints counts, for every sink after the drain, the points its inputs
// emitted that it neither delivered, nor dropped with a counted reason, nor
// still holds in its buffer (a disk buffer keeps them for the next run).
func lostPoints(st engine.Status) int64 {
	var lost int64
	for _, p := range st.Pipelines {
		emitted := map[string]int64{}
		for _, c := range p.Components {
			emitted[c.ID] = c.Emitted
		}
		for _, c := range p.Components {
			if c.Kind != engine.KindSink {
				continue
			}
			var in int64
			for _, up := range c.Inputs {
				in += emitted[up]
			}
			var dropped int64
			for _, n := range c.Dropped {
				dropped += n
			}
			var held int64
			if c.Buffer != nil {
				held = c.Buffer.Points
			}
			lost += max(0, in-c.Delivered-dropped-held)
		}
	}
	return lost
}

// statusCounts returns points produced by sources and delivered by sinks.
func statusCounts(st engine.Status) (in, out int64) {
	for _, p := range st.Pipelines {
		for _, c := range p.Components {
			switch c.Kind {
			case engine.KindSource:
				in += c.Received
			case engine.KindSink:
				out += c.Delivered
			}
		}
	}
	return in, out
}

func waitHTTP(addr string, timeout time.Duration, exited <-chan error) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("flowd exited at start: %v", err)
		default:
		}
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("flowd did not start")
}

func fetchStatus(addr string) (engine.Status, error) {
	var st engine.Status
	resp, err := http.Get("http://" + addr + "/api/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// procCPU returns a process's user+system CPU time in seconds.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may contain spaces) in parentheses.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

// procPeakRSS returns VmHWM in bytes.
func procPeakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024, nil
		}
	}
	return 0, errors.New("no VmHWM")
}

var blockRe = regexp.MustCompile(`(?m)^\s*(source|transform|sink)\s+"([^"]+)"`)

// missingComponents names the component types a pipeline file uses that
// this build does not have, so a scenario says what it needs instead of
// failing inside flowd.
// pipelineFile is the scenario's pipeline file: the one under dir, or gen's
// text written into tmp.
func pipelineFile(sc scenario, dir, tmp string) (string, error) {
	if sc.gen == nil {
		return filepath.Join(dir, sc.pipeline), nil
	}
	path := filepath.Join(tmp, sc.pipeline)
	return path, os.WriteFile(path, []byte(sc.gen()), 0o644)
}

func missingComponents(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	reg := registry()
	kinds := map[string]engine.ComponentKind{"source": engine.KindSource, "transform": engine.KindTransform, "sink": engine.KindSink}
	var missing []string
	for _, m := range blockRe.FindAllStringSubmatch(string(b), -1) {
		if _, ok := reg.Lookup(kinds[m[1]], m[2]); !ok {
			if n := m[1] + " " + m[2]; !slices.Contains(missing, n) {
				missing = append(missing, n)
			}
		}
	}
	return missing, nil
}
