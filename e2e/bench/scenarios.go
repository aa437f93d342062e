package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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

// scenarios lists every scenario, in the order `flowd bench -h` shows them.
func scenarios() []scenario {
	return slices.Concat(localScenarios(), iotOperationsScenarios(), scaleScenarios(), ceilingScenarios(),
		telegrafScenarios(), deviceScenarios(), []scenario{
			{
				name: "peer", summary: "peer-opcua then peer-mqtt: flowd and Telegraf side by side on both shapes",
				parts: []string{"peer-opcua", "peer-mqtt"},
			},
		})
}

// localScenarios run the engine alone, and with its Kafka sink into the
// local broker: no simulator, no publisher.
func localScenarios() []scenario {
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
	}
}

// iotOperationsScenarios are the shapes of Azure IoT Operations' published
// sizing: OPC UA PLCs and MQTT clients into the cloud.
func iotOperationsScenarios() []scenario {
	return []scenario{
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
	}
}

// scaleScenarios are the loads of ThingsBoard's and EMQX Neuron's published
// benchmarks.
func scaleScenarios() []scenario {
	return []scenario{
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
	}
}

// ceilingScenarios go as fast as flowd goes, with and without a broker.
func ceilingScenarios() []scenario {
	return []scenario{
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
	}
}

// telegrafScenarios run the same work on flowd and then on Telegraf.
func telegrafScenarios() []scenario {
	return []scenario{
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
	}
}

// deviceScenarios take in HTTP uplinks, poll Modbus devices and host
// Sparkplug edge nodes.
func deviceScenarios() []scenario {
	return []scenario{
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

// pipelineFile is the scenario's pipeline file: the one under dir, or gen's
// text written into tmp.
func pipelineFile(sc scenario, dir, tmp string) (string, error) {
	if sc.gen == nil {
		return filepath.Join(dir, sc.pipeline), nil
	}
	path := filepath.Join(tmp, sc.pipeline)
	return path, os.WriteFile(path, []byte(sc.gen()), 0o644)
}
