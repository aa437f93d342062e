package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqttc "github.com/flowd/flowd/common/mqtt"
	"github.com/flowd/flowd/e2e/harness"
	"github.com/flowd/flowd/engine"
)

// Input at the edges, through the real binary: lines longer than max_line,
// timestamps outside the range of Unix nanoseconds, millisecond timestamps,
// and MQTT payloads of the wrong shape are each rejected with a reason (or
// read exactly), never rewritten and never a restart loop.

// deadLetter is a point as the dead-letter file sink writes it.
type deadLetter struct {
	Tag   string            `json:"tag"`
	Value any               `json:"value"`
	Attrs map[string]string `json:"attrs"`
}

// deadLetterPipeline reads source "in" into sink "out" and rejects into sink "dead".
func deadLetterPipeline(source, out, dead string) string {
	return fmt.Sprintf(`pipeline "edges" {
  dead_letter = sink.dead
%s
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
  }
  sink "file" "dead" {
    path = %q
  }
}
`, source, out, dead)
}

// A line longer than max_line is rejected on its own: every other line is
// delivered once and the run ends at the end of the file.
func TestFileSourceLongLine(t *testing.T) {
	concurrent(t)
	dir := t.TempDir()
	var b strings.Builder
	long := `{"asset":"a","tag":"long","value":"` + strings.Repeat("x", 3<<20) + `"}`
	for i := 0; i < 100; i++ {
		if i == 40 {
			b.WriteString(long + "\n")
		}
		fmt.Fprintf(&b, `{"asset":"a","tag":"t","value":%d,"quality":"good","ts":"2026-11-22T10:00:00Z"}`+"\n", i)
	}
	in := harness.WriteFile(t, dir, "in.jsonl", b.String())
	out, dead := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "dead.jsonl")
	cfg := harness.WriteFile(t, dir, "p.hcl", deadLetterPipeline(fmt.Sprintf(`  source "file" "in" {
    path       = %q
    batch_size = 10
    max_line   = "1MiB"
  }`, in), out, dead))
	p := harness.Launch(t, "--data-dir", filepath.Join(dir, "data"), cfg)
	if code := p.Wait(60 * time.Second); code != 0 {
		t.Fatalf("flowd did not end at the end of the file (exit code %d)", code)
	}
	seqs := readOut(t, out)
	if len(seqs) != 100 {
		t.Fatalf("%d points delivered, want 100 (each line once)", len(seqs))
	}
	for i, v := range seqs {
		if v != i {
			t.Fatalf("point %d is %d", i, v)
		}
	}
	dl := harness.ReadJSONL[deadLetter](t, dead)
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want the one long line", len(dl))
	}
	a := dl[0].Attrs
	if a["dead_letter_reason"] != "decode" || !strings.Contains(a["dead_letter_error"], "in.jsonl:41") ||
		!strings.Contains(a["dead_letter_error"], "max_line") || !strings.HasPrefix(long, fmt.Sprint(dl[0].Value)) {
		t.Fatalf("dead letter %+v, want reason decode, the line number 41, max_line and the line's first bytes", a)
	}
	t.Logf("long line rejected: %s", a["dead_letter_error"])
}

// Timestamps beyond 1677–2262 are rejected with a reason, not wrapped into
// another century; numeric milliseconds are exact to the millisecond.
func TestFileSourceTimestamps(t *testing.T) {
	concurrent(t)
	dir := t.TempDir()
	lines := []string{
		`{"asset":"a","tag":"t","value":0,"ts":"9999-12-31T23:59:59Z"}`,
		`{"asset":"a","tag":"t","value":1,"ts":1700000000001}`,
		`{"asset":"a","tag":"t","value":2,"ts":1e20}`,
		`{"asset":"a","tag":"t","value":3,"ts":"2026-11-22T10:00:00.123456789Z"}`,
		`{"asset":"a","tag":"t","value":4,"ts":"1500-01-01T00:00:00Z"}`,
		`{"asset":"a","tag":"t","value":5,"ts":-1e20}`,
		`{"asset":"a","tag":"t","value":6,"ts":1700000000000.5}`,
	}
	in := harness.WriteFile(t, dir, "in.jsonl", strings.Join(lines, "\n")+"\n")
	out, dead := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "dead.jsonl")
	cfg := harness.WriteFile(t, dir, "p.hcl", deadLetterPipeline(fmt.Sprintf(`  source "file" "in" {
    path = %q
  }`, in), out, dead))
	p := harness.Launch(t, "--data-dir", filepath.Join(dir, "data"), cfg)
	if code := p.Wait(60 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	got := harness.ReadJSONL[struct {
		Value int    `json:"value"`
		TS    string `json:"ts"`
	}](t, out)
	want := map[int]string{1: "2023-11-14T22:13:20.001Z", 3: "2026-11-22T10:00:00.123456789Z", 6: "2023-11-14T22:13:20.0005Z"}
	if len(got) != len(want) {
		t.Errorf("%d points delivered, want %d: %+v", len(got), len(want), got)
	}
	for _, g := range got {
		if want[g.Value] != g.TS {
			t.Errorf("value %d has ts %s, want %q", g.Value, g.TS, want[g.Value])
		}
	}
	dl := harness.ReadJSONL[deadLetter](t, dead)
	if len(dl) != 4 {
		t.Fatalf("%d dead letters, want 4: %+v", len(dl), dl)
	}
	for _, d := range dl {
		if d.Attrs["dead_letter_reason"] != "decode" || !strings.Contains(d.Attrs["dead_letter_error"], "range of Unix nanoseconds") {
			t.Errorf("dead letter %+v, want reason decode and the range in the error", d)
		}
	}
	t.Logf("e.g. %s", dl[0].Attrs["dead_letter_error"])
}

// MQTT payloads: json and map formats reject a point object without tag and
// value, an object used as a tag, and out-of-range timestamps, with a reason;
// millisecond timestamps are exact.
func TestMQTTPayloadEdges(t *testing.T) {
	concurrent(t)
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	run := mqttRun(t)
	dir := t.TempDir()
	out, dead := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "dead.jsonl")
	cfg := harness.WriteFile(t, dir, "p.hcl", fmt.Sprintf(`pipeline "edges" {
  dead_letter = sink.dead
  source "mqtt" "json" {
    broker    = %[1]q
    topics    = [%[2]q]
    client_id = "%[4]s-json"
    qos       = 1
  }
  source "mqtt" "map" {
    broker    = %[1]q
    topics    = [%[3]q]
    client_id = "%[4]s-map"
    qos       = 1
    format    = "map"
    map = {
      tag   = "payload.name"
      value = "payload.v"
      ts    = "payload.time"
    }
  }
  sink "file" "out" {
    inputs = [source.json, source.map]
    path   = %[5]q
  }
  sink "file" "dead" {
    path = %[6]q
  }
}
`, broker, "e2e/"+run+"/json/#", "e2e/"+run+"/map/#", run, out, dead))
	p := harness.Start(t, cfg)
	waitConnected(t, p, "source.json")
	waitConnected(t, p, "source.map")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub, err := mqttc.NewPublisher(ctx, testMQTTSettings(broker), run+"-pub", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{ // topic suffix → payload
		"json/notag":   `{"asset":"a1","quality":"good"}`,
		"json/y9999":   `{"tag":"t","value":1,"ts":"9999-12-31T23:59:59Z"}`,
		"json/ms1e20":  `{"tag":"t","value":1,"ts":1e20}`,
		"map/objtag":   `{"name":{"x":1},"v":1}`,
		"map/ms1e20":   `{"name":"m","v":1,"time":1e20}`,
		"map/y9999":    `{"name":"m","v":1,"time":"9999-12-31T23:59:59Z"}`,
		"json/gateway": `{"T":{"Value":1,"SourceTimestamp":"9999-12-31T23:59:59Z"}}`,
	}
	good := map[string]string{
		"json/ms": `{"tag":"ms","value":1,"ts":1700000000001}`,
		"map/ms":  `{"name":"mapms","v":2,"time":1700000000001}`,
	}
	for _, set := range []map[string]string{bad, good} {
		for topic, payload := range set {
			if err := pub.Publish(ctx, "e2e/"+run+"/"+topic, []byte(payload), 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := pub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 30*time.Second, func() bool {
		return len(harness.ReadJSONL[deadLetter](t, dead)) >= len(bad) && len(harness.ReadJSONL[jsonPoint](t, out)) >= len(good)
	}, "%d dead letters and %d points", len(bad), len(good))
	time.Sleep(500 * time.Millisecond) // nothing more may come
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	pts := harness.ReadJSONL[struct {
		Asset string `json:"asset"`
		Tag   string `json:"tag"`
		TS    string `json:"ts"`
	}](t, out)
	if len(pts) != len(good) {
		t.Errorf("%d points delivered, want %d: %+v", len(pts), len(good), pts)
	}
	for _, pt := range pts {
		if (pt.Tag != "ms" && pt.Tag != "mapms") || pt.TS != "2023-11-14T22:13:20.001Z" {
			t.Errorf("point %+v, want tag ms or mapms at 2023-11-14T22:13:20.001Z", pt)
		}
	}
	dl := harness.ReadJSONL[deadLetter](t, dead)
	seen := map[string]bool{}
	for _, d := range dl {
		topic := strings.TrimPrefix(d.Attrs["mqtt_topic"], "e2e/"+run+"/")
		if _, ok := bad[topic]; !ok || d.Attrs["dead_letter_reason"] != "decode" || d.Attrs["dead_letter_error"] == "" {
			t.Errorf("unexpected dead letter %+v", d)
		}
		seen[topic] = true
		t.Logf("%s: %s", topic, d.Attrs["dead_letter_error"])
	}
	if len(seen) != len(bad) || len(dl) != len(bad) {
		t.Errorf("dead letters for %v (%d), want each of the %d bad payloads once", seen, len(dl), len(bad))
	}
}

// Points with 200 KB of attrs into a blocked sink with an 8 MiB memory
// buffer: the buffer's size estimate counts the attrs, so it holds about 40
// points, the file source waits, and flowd's memory stays bounded (before,
// the estimate saw ~200 bytes a point and let the whole file in).
func TestBlockedSinkAttrsBounded(t *testing.T) {
	concurrent(t)
	dir := t.TempDir()
	const n = 600
	f, err := os.Create(filepath.Join(dir, "in.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	blob := strings.Repeat("x", 200<<10)
	w := bufio.NewWriter(f)
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, `{"asset":"a","tag":"t","value":%d,"ts":"2026-11-22T10:00:00Z","attrs":{"blob":"%s"}}`+"\n", i, blob)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, _ := block(t, dir)
	cfg := harness.WriteFile(t, dir, "p.hcl", fmt.Sprintf(`pipeline "attrs" {
  source "file" "in" {
    path       = %q
    batch_size = 1
  }
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
    buffer {
      type     = "memory"
      max_size = "8MiB"
    }
  }
}
`, f.Name(), out))
	p := harness.Start(t, "--data-dir", filepath.Join(dir, "data"), cfg)
	var c engine.ComponentStatus
	var peak int64
	last := int64(-1)
	harness.Eventually(t, 60*time.Second, func() bool { // until the source is held
		time.Sleep(time.Second)
		peak = max(peak, rssKB(p.Cmd.Process.Pid))
		_, received, _ := componentStatus(t, p, "source.in")
		held := received == last
		last = received
		return held && received > 0
	}, "the source to be held by the full buffer")
	_, c = sinkStatus(t, p)
	_, received, _ := componentStatus(t, p, "source.in")
	t.Logf("buffer %d points, %d bytes; source read %d of %d lines; RSS peak %d KiB", c.Buffer.Points, c.Buffer.Bytes, received, n, peak)
	if c.Buffer.Bytes > 8<<20 || c.Buffer.Points > 41 {
		t.Errorf("an 8 MiB buffer holds %d points of 200 KB, %d bytes estimated", c.Buffer.Points, c.Buffer.Bytes)
	}
	if received > 80 {
		t.Errorf("the source read %d lines of 200 KB past a full 8 MiB buffer", received)
	}
	if peak > 100<<10 {
		t.Errorf("RSS peak %d KiB with an 8 MiB buffer", peak)
	}
}

// mountTmpfs mounts a tmpfs of the given size for the test (a real file
// system that fills up), or skips saying why.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a full disk is a small tmpfs mounted for the test, which needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// The file sink on a full disk (ENOSPC, a real one: a 1 MiB tmpfs): the
// failed batch is cut off again, so while the disk is full the file holds
// only complete lines, and once space is freed the retry delivers every
// point exactly once.
func TestFileSinkDiskFull(t *testing.T) {
	concurrent(t)
	full := mountTmpfs(t, "1m")
	dir := t.TempDir()
	const n = 6000 // about 560 KB of JSON lines
	in := writePoints(t, dir, n)
	filler := filepath.Join(full, "filler")
	if err := os.WriteFile(filler, make([]byte, 700<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(full, "out.jsonl")
	cfg := harness.WriteFile(t, dir, "p.hcl", fmt.Sprintf(`pipeline "full" {
  source "file" "in" {
    path       = %q
    batch_size = 1000
  }
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
  }
}
`, in, out))
	p := harness.Launch(t, "--data-dir", filepath.Join(dir, "data"), cfg)
	harness.Eventually(t, 30*time.Second, func() bool {
		return strings.Count(p.Stderr.String(), "no space left on device") >= 2
	}, "the sink to fail and retry on the full disk")
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		t.Errorf("while the disk is full the file (%d bytes) ends in a torn line: %q", len(b), b[max(0, len(b)-80):])
	}
	held := readOut(t, out) // fails the test on an invalid line
	t.Logf("disk full: %d complete lines written, %d bytes", len(held), len(b))
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(60 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	seqs := readOut(t, out)
	seen := make(map[int]int, n)
	for _, v := range seqs {
		seen[v]++
	}
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	if len(seen) != n || dups != 0 || len(seqs) != n {
		t.Fatalf("%d lines, %d distinct of %d, %d duplicates", len(seqs), len(seen), n, dups)
	}
}
