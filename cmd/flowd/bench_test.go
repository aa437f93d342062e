package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowd/flowd/engine"
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
// in this build or reported by name.
func TestScenarioPipelines(t *testing.T) {
	dir := filepath.Join("..", "..", "pipelines", "bench")
	for _, sc := range scenarios() {
		if len(sc.parts) > 0 {
			for _, p := range sc.parts {
				if findScenario(p) == nil {
					t.Errorf("%s: part %q is no scenario", sc.name, p)
				}
			}
			continue
		}
		missing, err := missingComponents(filepath.Join(dir, sc.pipeline))
		if err != nil {
			t.Errorf("%s: %v", sc.name, err)
			continue
		}
		if len(missing) > 0 {
			t.Logf("%s needs %s (not in this build)", sc.name, strings.Join(missing, ", "))
		}
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
