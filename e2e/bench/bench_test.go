package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/sinks/discard"
	"github.com/flowd/flowd/transforms/cov"
)

func TestCountCanonical(t *testing.T) {
	for _, c := range []struct {
		v    string
		want int64
	}{
		{`{"asset":"a","tag":"t","value":1,"quality":"good","ts":"2026-11-22T10:00:00Z"}`, 1},
		{`[{"tag":"t","value":1,"quality":"good","ts":"x"},{"tag":"u","value":"quality","quality":"bad","ts":"x"}]`, 2},
		{`{"asset":"a","points":{"t":{"value":1,"quality":"good","ts":"x"},"u":{"value":2,"quality":"good","ts":"x"}}}`, 2},
		{`not a point`, 0},
	} {
		if got := countCanonical([]byte(c.v)); got != c.want {
			t.Errorf("countCanonical(%s) = %d, want %d", c.v, got, c.want)
		}
	}
}

func TestPublishedCount(t *testing.T) {
	c := &child{}
	c.out.WriteString("something\npublished 12345 values in 10.0s (1234/s)\n")
	if n, ok := c.published(); !ok || n != 12345 {
		t.Fatalf("published() = %d, %v", n, ok)
	}
	if _, ok := (&child{}).published(); ok {
		t.Fatal("a publisher that printed nothing has a count")
	}
}

func TestLostPoints(t *testing.T) {
	st := engine.Status{Pipelines: []engine.PipelineStatus{{Components: []engine.ComponentStatus{
		{ID: "source.a", Kind: engine.KindSource, Received: 100, Emitted: 100},
		{ID: "transform.c", Kind: engine.KindTransform, Inputs: []string{"source.a"}, Received: 100, Emitted: 60},
		{ID: "sink.k", Kind: engine.KindSink, Inputs: []string{"transform.c"}, Delivered: 50, Dropped: map[string]int64{"encode": 3}},
		{ID: "sink.f", Kind: engine.KindSink, Inputs: []string{"transform.c"}, Delivered: 60},
	}}}}
	if got := lostPoints(st); got != 7 {
		t.Fatalf("lostPoints = %d, want 7 (60 in, 50 delivered, 3 dropped)", got)
	}
}

// Every scenario's pipeline file exists; the components it names are either
// in the flowd binary (cmd/flowd's TestBenchPipelineComponents checks this
// build's) or reported by name.
func TestScenarioPipelines(t *testing.T) {
	dir := filepath.Join("..", "..", "pipelines", "bench")
	none := engine.NewRegistry()
	for _, sc := range scenarios() {
		if len(sc.parts) > 0 {
			for _, p := range sc.parts {
				if findScenario(p) == nil {
					t.Errorf("%s: part %q is no scenario", sc.name, p)
				}
			}
			continue
		}
		path, err := pipelineFile(sc, dir, t.TempDir())
		if err != nil {
			t.Fatalf("%s: %v", sc.name, err)
		}
		if _, err := MissingComponents(path, none); err != nil {
			t.Errorf("%s: %v", sc.name, err)
			continue
		}
		if sc.cloud != nil {
			if _, err := MissingComponents(filepath.Join(dir, sc.cloud.pipeline), none); err != nil {
				t.Errorf("%s cloud tier: %v", sc.name, err)
			}
			if sc.cloud.replicas < 1 || int32(sc.cloud.replicas) > sc.cloud.partitions || !sc.kafkaTopic {
				t.Errorf("%s: %d cloud replicas on %d partitions (kafkaTopic %v): replicas would idle or the topic go unchecked",
					sc.name, sc.cloud.replicas, sc.cloud.partitions, sc.kafkaTopic)
			}
		}
	}
}

// A build without a component the pipeline names is told which, once.
func TestMissingComponentsNamesThem(t *testing.T) {
	path := filepath.Join("..", "..", "pipelines", "bench", "max-engine.hcl")
	missing, err := MissingComponents(path, engine.NewRegistry(discard.Spec, cov.Spec))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"source sim", "transform expr"}; !slices.Equal(missing, want) {
		t.Fatalf("missing %q, want %q", missing, want)
	}
	if _, err := MissingComponents(filepath.Join(t.TempDir(), "none.hcl"), engine.NewRegistry()); err == nil {
		t.Fatal("a pipeline file that is not there is no error")
	}
}

// Every scenario name is listed once, in the order of the scenarios.
func TestScenariosListed(t *testing.T) {
	seen := map[string]bool{}
	for i, s := range Scenarios() {
		if seen[s.Name] || s.Summary == "" || s.Name != scenarios()[i].name {
			t.Errorf("scenario %d %q: repeated, without a summary or out of order", i, s.Name)
		}
		seen[s.Name] = true
	}
	if len(seen) != len(scenarios()) {
		t.Fatalf("%d scenarios listed of %d", len(seen), len(scenarios()))
	}
}

// A two-tier run adds up: the cloud's points out and latency are the run's,
// CPU is every process's, duplicates are what the cloud took in beyond the
// topic, and a cloud that took in less than the topic holds loses the rest.
func TestFinishCloudAddsUp(t *testing.T) {
	res := &Result{PointsIn: 1000, PointsOut: 1000, Truth: &Truth{Delivered: 1000, InTopic: 1000}}
	edge := &TierResult{Tier: "edge", Processes: 1, CPUCores: 0.1, RSSPeakMB: 50, LatencyP99: 100}
	cloud := &TierResult{Tier: "cloud", Processes: 3, CPUCores: 0.3, RSSPeakMB: 100, LatencyP99: 900, PointsOutPS: 800}
	// No processes: drain only adds up the (here preset) final counts.
	cloud.PointsIn, cloud.PointsOut = 1040, 1040
	finishCloud(context.Background(), res, edge, cloud, &cloudRun{}, 0.5)
	// The truth stays the edge's: what it delivered is ≤ what the topic holds.
	if res.Truth.Delivered != 1000 {
		t.Errorf("truth delivered %d, want the edge's 1000", res.Truth.Delivered)
	}
	if res.PointsLost != 0 || cloud.Duplicates != 40 || res.PointsOut != 1040 || res.LatencyP99 != 900 {
		t.Errorf("lost %d, duplicates %d, out %d, p99 %v", res.PointsLost, cloud.Duplicates, res.PointsOut, res.LatencyP99)
	}
	if res.CPUCores != 0.4 || res.RSSPeakMB != 350 || res.PointsPerCPUSecond != 2000 || edge.CPUMicrosPerPointRun != 500 {
		t.Errorf("cpu %v, rss %v, points/cpu-s %v, edge µs/point %v", res.CPUCores, res.RSSPeakMB, res.PointsPerCPUSecond, edge.CPUMicrosPerPointRun)
	}
	res = &Result{PointsIn: 1000, PointsOut: 1000, Truth: &Truth{InTopic: 1000}}
	cloud = &TierResult{Tier: "cloud", Processes: 1}
	cloud.PointsIn, cloud.PointsOut = 990, 990
	finishCloud(context.Background(), res, &TierResult{}, cloud, &cloudRun{}, 0)
	if res.PointsLost != 10 || len(res.Problems) == 0 {
		t.Errorf("a cloud 10 short: lost %d, problems %v", res.PointsLost, res.Problems)
	}
}

// The generated Telegraf configurations load in Telegraf itself, when the
// binary is there (e2e/services.sh up telegraf).
func TestTelegrafConfigs(t *testing.T) {
	bin := os.Getenv("FLOWD_TEST_TELEGRAF")
	r := &benchRun{env: func(k string) string {
		return map[string]string{"FLOWD_TEST_KAFKA": "127.0.0.1:19092", "FLOWD_TEST_MQTT": "mqtt://127.0.0.1:18830"}[k]
	}, id: "test", ports: []int{4840}, topic: "t"}
	for name, conf := range map[string]string{
		"opcua":  telegrafOPCUA(2, 3, "200ms")(r),
		"mqtt":   telegrafMQTT(r),
		"modbus": telegrafModbus(2, 3)(r),
	} {
		if !strings.Contains(conf, "[[outputs.kafka]]") || !strings.Contains(conf, `topic = "t"`) {
			t.Errorf("%s: no Kafka output on topic t:\n%s", name, conf)
		}
		if bin == "" {
			continue
		}
		path := filepath.Join(t.TempDir(), name+".conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		// --test-wait 0 with --test gathers once; a config error fails
		// before anything connects.
		out, err := exec.Command(bin, "--config", path, "--test", "--test-wait", "0").CombinedOutput()
		if strings.Contains(string(out), "loading config file") || strings.Contains(string(out), "error parsing") {
			t.Errorf("%s: telegraf rejects the config: %v\n%s", name, err, out)
		}
	}
}

// Telegraf's modbus metrics carry a device poll's registers as fields; the
// bench counts points per field.
func TestCountTelegrafFields(t *testing.T) {
	rec := []byte(`{"fields":{"r0":1,"r1":2,"r2":3},"name":"modbus","tags":{"name":"dev000","slave_id":"1","type":"holding_register"},"timestamp":1}`)
	if n := countTelegrafFields(rec); n != 3 {
		t.Fatalf("counted %d fields, want 3", n)
	}
	if n := countTelegrafFields([]byte("not json")); n != 0 {
		t.Fatalf("counted %d in a broken record", n)
	}
}
