package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/codecs"
	"github.com/flowd/flowd/e2e/harness"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
)

// TestCodecJSONBatchSameEverywhere: one batch goes to a Kafka, an MQTT and a
// file sink, all with format json_batch. Kafka and MQTT (same
// max_message_bytes) carry byte for byte the messages the shared framer
// makes, each under the limit (before this, the MQTT sink did not split); the file (no limit) gets the batch as one
// line. MQTT is read back by mosquitto_sub, Kafka by franz-go.
func TestCodecJSONBatchSameEverywhere(t *testing.T) {
	concurrent(t)
	brokers := harness.Require(t, "FLOWD_TEST_KAFKA")
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	// e2e/services.d/mosquitto.sh installs mosquitto-clients with the broker:
	// without mosquitto_sub the setup is broken, not a reason to skip.
	sub, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		t.Fatalf("mosquitto_sub (mosquitto-clients) not installed: %v", err)
	}
	u, err := url.Parse(broker)
	if err != nil {
		t.Fatal(err)
	}
	const n, limit = 600, 8000
	ts := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).UnixNano()
	var pts []engine.Point
	var in []byte
	for i := range n {
		p := engine.Point{Asset: fmt.Sprintf("line%d", i%4), Tag: fmt.Sprintf("tag%03d", i), Value: engine.Float(float64(i) + 0.5), TS: ts + int64(i)*1e6}
		pts = append(pts, p)
		in = append(codec.AppendPoint(in, &p), '\n')
	}
	enc, err := codecs.All().Encoder("json_batch")
	if err != nil {
		t.Fatal(err)
	}
	f := codec.Framer{Codec: enc, MaxBytes: limit}
	buf, frames := f.Append(nil, nil, append([]engine.Point(nil), pts...), nil)
	if len(frames) < 2 {
		t.Fatalf("%d messages: the batch should need splitting", len(frames))
	}
	var want []string
	for i := range frames {
		want = append(want, string(frames[i].Payload(buf)))
	}

	dir := t.TempDir()
	run := mqttRun(t)
	topic := kafkaTopic(t, brokers, 1)
	mqttTopic := "e2e/" + run + "/batch"
	// The subscriber runs first: the broker drops messages nobody subscribed to.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sub, "-h", u.Hostname(), "-p", u.Port(), "-t", mqttTopic, "-q", "1",
		"-C", fmt.Sprint(len(want)), "-W", "90", "-i", run+"-sub")
	var subOut, subErr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &subOut, &subErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // mosquitto_sub has no ready signal

	src := harness.WriteFile(t, dir, "in.jsonl", string(in))
	out := filepath.Join(dir, "out.jsonl")
	cfg := harness.WriteFile(t, dir, "p.hcl", fmt.Sprintf(`pipeline "codecs" {
  source "file" "in" {
    path       = %q
    batch_size = %d
  }
  sink "kafka" "k" {
    inputs            = [source.in]
    brokers           = [%q]
    topic             = %q
    format            = "json_batch"
    max_message_bytes = %d
  }
  sink "mqtt" "m" {
    inputs            = [source.in]
    broker            = %q
    topic             = %q
    format            = "json_batch"
    max_message_bytes = %d
  }
  sink "file" "f" {
    inputs = [source.in]
    path   = %q
    format = "json_batch"
  }
}`, src, n, brokers, topic, limit, broker, mqttTopic, limit, out))
	runToEnd(t, cfg, 2*time.Minute)

	if err := cmd.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v: %s (got %d bytes)", err, subErr.String(), subOut.Len())
	}
	var gotMQTT []string
	sc := bufio.NewScanner(&subOut)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		gotMQTT = append(gotMQTT, sc.Text())
	}
	recs := consumeAll(t, brokers, topic, n, time.Minute, func(c *consumed) int { return len(c.decode(t)) })
	var gotKafka []string
	for _, r := range recs {
		gotKafka = append(gotKafka, string(r.value))
	}
	// The MQTT sink publishes a batch's messages concurrently (max_inflight):
	// they arrive in any order. Kafka keeps order within the partition.
	slices.Sort(gotMQTT)
	wantSorted := slices.Sorted(slices.Values(want))
	for name, got := range map[string][]string{"mqtt": gotMQTT, "kafka": gotKafka} {
		want := want
		if name == "mqtt" {
			want = wantSorted
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d messages, want %d", name, len(got), len(want))
			continue
		}
		for i := range want {
			if len(got[i]) > limit {
				t.Errorf("%s: message %d has %d bytes, over %d", name, i, len(got[i]), limit)
			}
			if got[i] != want[i] {
				t.Errorf("%s: message %d differs from the shared framing:\n got %.120s…\nwant %.120s…", name, i, got[i], want[i])
			}
		}
	}
	file, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if all := string(enc.Encode(nil, pts)) + "\n"; string(file) != all {
		t.Errorf("file: %d bytes in %d lines, want the batch as one line of %d bytes", len(file), strings.Count(string(file), "\n"), len(all))
	}
}
