package e2e

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mqttc "github.com/flowd/flowd/common/mqtt"
	"github.com/flowd/flowd/e2e/harness"
)

// With nothing in flight, SIGTERM ends flowd at once with 0, even when a
// sink never connected: there is nothing for the drain to wait for.
func TestShutdownWithNothingInFlightIsImmediate(t *testing.T) {
	concurrent(t)
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	run := mqttRun(t)
	dir := t.TempDir()
	dead := harness.FreePort(t) // nothing listens here
	pipe := harness.WriteFile(t, dir, "p.hcl", fmt.Sprintf(`pipeline "idle" {
%s
  sink "mqtt" "never" {
    inputs  = [source.in]
    broker  = "mqtt://127.0.0.1:%d"
    topic   = "never/connected"
  }
}
`, sourceHCL(broker, "e2e/"+run, run, ""), dead))
	p := harness.Start(t, "--drain-timeout", "30s", "--data-dir", filepath.Join(dir, "data"), pipe)
	time.Sleep(time.Second)
	start := time.Now()
	code := p.Stop(40 * time.Second)
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("exit %d after SIGTERM with nothing in flight\n%s", code, p.Stderr.String())
	}
	// Not a timing benchmark: the bound only separates "at once" from the
	// 30 s drain deadline the old behaviour waited for.
	if took > 10*time.Second {
		t.Fatalf("took %s to stop with nothing in flight (drain deadline 30s)", took)
	}
	t.Logf("stopped in %s", took)
}

// requireSoak skips a long variant unless FLOWD_SOAK is set (make soak).
func requireSoak(t *testing.T) {
	if os.Getenv("FLOWD_SOAK") == "" {
		t.Skip("soak test: set FLOWD_SOAK=1 (make soak)")
	}
}

// publishOrdered publishes QoS 1 messages one at a time (so each topic's
// order is the broker's order) and returns the payloads' (tag, value) in
// publication order. Message i is tag t<i%tags> with a value that changes
// every third message of that tag. A round of every tag goes out every 25 ms.
func publishOrdered(t *testing.T, broker, topic string, n, tags int) [][2]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pub, err := mqttc.NewPublisher(ctx, testMQTTSettings(broker), fmt.Sprintf("pub-%d", time.Now().UnixNano()), 1, nil)
	if err != nil {
		t.Error(err)
		return nil
	}
	var sent [][2]int
	tick := time.NewTicker(25 * time.Millisecond) // paced, so the kills land mid-stream
	defer tick.Stop()
	for i := 0; i < n; i++ {
		if i%tags == 0 {
			<-tick.C
		}
		tag, v := i%tags, (i/tags)/3
		payload := fmt.Appendf(nil, `{"tag":"t%d","value":%d}`, tag, v)
		if err := pub.Publish(ctx, fmt.Sprintf("%s/%d", topic, tag), payload, 1); err != nil {
			t.Error(err)
			return sent
		}
		sent = append(sent, [2]int{tag, v})
	}
	if err := pub.Close(ctx); err != nil {
		t.Error(err)
	}
	return sent
}

// changeEvents is the independent computation of what cov (deadband 0)
// must pass: per tag, every value that differs from the tag's previous one.
func changeEvents(sent [][2]int) map[[2]int]bool {
	last := map[int]int{}
	want := map[[2]int]bool{}
	for _, m := range sent {
		if v, ok := last[m[0]]; !ok || v != m[1] {
			want[m] = true
		}
		last[m[0]] = m[1]
	}
	return want
}

// readTagValues reads (tag number, value) pairs from a JSONL output file. A
// last line torn by a kill is left out (the file sink cuts it on its next
// start); any other line that does not decode, or names a tag other than
// t<N>, fails the test.
func readTagValues(t *testing.T, path string) map[[2]int]int {
	t.Helper()
	got := map[[2]int]int{}
	for _, p := range harness.ReadJSONL[struct {
		Tag   string  `json:"tag"`
		Value float64 `json:"value"`
	}](t, path) {
		n, err := strconv.Atoi(strings.TrimPrefix(p.Tag, "t"))
		if err != nil || !strings.HasPrefix(p.Tag, "t") {
			t.Fatalf("%s: unexpected tag %q", path, p.Tag)
		}
		got[[2]int{n, int(p.Value)}]++
	}
	return got
}

// killLoop stops flowd kills times at random moments while the publisher
// runs — SIGKILL, and every third time SIGTERM with a drain deadline too
// short to deliver what is in flight — restarting it on the same data
// directory each time.
func killLoop(t *testing.T, cfg string, kills int, published <-chan struct{}) *harness.Proc {
	t.Helper()
	start := func() *harness.Proc { return harness.Start(t, "--drain-timeout", "20ms", cfg) }
	p := start()
	waitConnected(t, p, "source.in")
	done := 0
	defer func() { t.Logf("%d kills", done) }()
	for k := 0; k < kills; k++ {
		select {
		case <-published:
			k = kills
			continue
		case <-time.After(time.Duration(300+rand.IntN(900)) * time.Millisecond):
		}
		if k%3 == 2 {
			p.Stop(30 * time.Second)
		} else {
			p.Kill()
		}
		done++
		p = start()
		waitConnected(t, p, "source.in")
	}
	return p
}

// cov with a state file, flowd SIGKILLed repeatedly while QoS 1 values flow
// into a file: every change event of everything published is in the output
// (some more than once: at-least-once), compared with an independent
// computation over the published sequence.
func TestCOVStateSurvivesKills(t *testing.T) {
	concurrent(t)
	covKills(t, 6000, 8)
}

// TestCOVStateSurvivesKillsSoak: ten times the messages, eighty stops.
func TestCOVStateSurvivesKillsSoak(t *testing.T) {
	requireSoak(t)
	covKills(t, 60000, 80)
}

func covKills(t *testing.T, n, kills int) {
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	run := mqttRun(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	cfg := harness.WriteFile(t, dir, "p.hcl", fmt.Sprintf(`service {
  data_dir = %q
}
pipeline "p" {%s
  transform "cov" "changes" {
    inputs              = [source.in]
    state_file          = "cov.jsonl"
    state_save_interval = "200ms"
  }
  sink "file" "out" {
    inputs = [transform.changes]
    path   = %q
  }
}`, filepath.Join(dir, "data"), sourceHCL(broker, "e2e/"+run, run, `    session_expiry = "10m"
    linger         = "20ms"`), out))
	var sent [][2]int
	published := make(chan struct{})
	go func() {
		defer close(published)
		sent = publishOrdered(t, broker, "e2e/"+run, n, 16)
	}()
	p := killLoop(t, cfg, kills, published)
	<-published
	want := changeEvents(sent)
	var missing [][2]int
	harness.Eventually(t, time.Minute, func() bool {
		got := readTagValues(t, out)
		missing = missing[:0]
		for ev := range want {
			if got[ev] == 0 {
				missing = append(missing, ev)
			}
		}
		return len(missing) == 0
	}, "every change event in the output")
	got := readTagValues(t, out)
	wasSent := make(map[[2]int]bool, len(sent))
	for _, m := range sent {
		wasSent[m] = true
	}
	dups := 0
	for ev, c := range got {
		if !wasSent[ev] {
			t.Errorf("tag t%d value %d in the output was never published", ev[0], ev[1])
		} else if !want[ev] {
			// A value cov passed again after a restart whose saved state
			// was older: a duplicate change, not a loss.
			dups++
		} else {
			dups += c - 1
		}
	}
	t.Logf("%d published, %d change events, all delivered; %d duplicates", len(sent), len(want), dups)
	p.Stop(30 * time.Second)
}

// window inputs and dead letters across kills: QoS 1 values with event
// times (16 tags, 100 ms apart per tag) flow into 1 s count windows, and
// every 7th message is malformed and dead-lettered to a file. flowd is
// killed repeatedly. No input is lost: for every (tag, window) the counts
// emitted add up to at least what was published in it (more: a window split
// by a restart, or inputs sent again), and every malformed message is in the
// dead-letter file.
func TestWindowAndDeadLettersSurviveKills(t *testing.T) {
	concurrent(t)
	windowKills(t, 4000, 6)
}

// TestWindowAndDeadLettersSurviveKillsSoak: ten times the messages and stops.
func TestWindowAndDeadLettersSurviveKillsSoak(t *testing.T) {
	requireSoak(t)
	windowKills(t, 40000, 60)
}

func windowKills(t *testing.T, n, kills int) {
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	run := mqttRun(t)
	dir := t.TempDir()
	out, dead := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "dead.jsonl")
	cfg := harness.WriteFile(t, dir, "p.hcl", fmt.Sprintf(`service {
  data_dir = %q
}
pipeline "p" {
  dead_letter = sink.dead
%s
  transform "window" "w" {
    inputs       = [source.in]
    size         = "1s"
    aggregates   = ["count"]
    idle_timeout = "2s"
  }
  sink "file" "out" {
    inputs = [transform.w]
    path   = %q
  }
  sink "file" "dead" {
    path = %q
  }
}`, filepath.Join(dir, "data"), sourceHCL(broker, "e2e/"+run, run, `    session_expiry  = "10m"
    receive_maximum = 10000`), out, dead))
	const tags = 16
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	published := make(chan struct{})
	perWindow := map[[2]int64]int{} // (tag, window start s) → published
	bad := map[string]bool{}
	go func() {
		defer close(published)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		pub, err := mqttc.NewPublisher(ctx, testMQTTSettings(broker), fmt.Sprintf("pub-%d", time.Now().UnixNano()), 1, nil)
		if err != nil {
			t.Error(err)
			return
		}
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < n; i++ {
			if i%tags == 0 {
				<-tick.C
			}
			tag := i % tags
			var payload []byte
			if i%7 == 3 {
				payload = fmt.Appendf(nil, "bad-%d", i)
				bad[string(payload)] = true
			} else {
				ts := t0.Add(time.Duration(i/tags) * 100 * time.Millisecond)
				payload = fmt.Appendf(nil, `{"tag":"t%d","value":%d,"ts":%q}`, tag, i, ts.Format(time.RFC3339Nano))
				perWindow[[2]int64{int64(tag), ts.Unix()}]++
			}
			if err := pub.Publish(ctx, fmt.Sprintf("e2e/%s/%d", run, tag), payload, 1); err != nil {
				t.Error(err)
				return
			}
		}
		pub.Close(ctx)
	}()
	p := killLoop(t, cfg, kills, published)
	<-published
	// Let the last messages in, then stop gracefully: the drain closes the
	// open windows.
	harness.Eventually(t, time.Minute, func() bool {
		_, received, _ := componentStatus(t, p, "source.in")
		return received > 0
	}, "the last run receiving")
	time.Sleep(3 * time.Second)
	p.Stop(30 * time.Second)

	// Only window counts of tags t<N> may be in the output.
	got := map[[2]int64]int{}
	for _, pt := range harness.ReadJSONL[struct {
		Tag   string    `json:"tag"`
		Value int       `json:"value"`
		TS    time.Time `json:"ts"`
	}](t, out) {
		tag, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(pt.Tag, "t"), "_count"))
		if err != nil || !strings.HasPrefix(pt.Tag, "t") || !strings.HasSuffix(pt.Tag, "_count") {
			t.Fatalf("unexpected tag %q in the window output", pt.Tag)
		}
		got[[2]int64{int64(tag), pt.TS.Unix()}] += pt.Value
	}
	short, extra := 0, 0
	for k, want := range perWindow {
		if got[k] < want {
			short++
			if short <= 5 {
				t.Errorf("tag t%d window %s: counted %d of %d published", k[0], time.Unix(k[1], 0).UTC().Format(time.TimeOnly), got[k], want)
			}
		}
		extra += got[k] - want
	}
	if short > 0 {
		t.Fatalf("%d of %d windows lost inputs", short, len(perWindow))
	}
	db, _ := os.ReadFile(dead)
	missing := 0
	for payload := range bad {
		if !strings.Contains(string(db), `"value":"`+payload+`"`) {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d malformed messages missing from the dead-letter file", missing, len(bad))
	}
	t.Logf("%d windows complete (%d inputs counted more than once), %d dead letters all present", len(perWindow), extra, len(bad))
}

// Latency that tells the truth, through the real binary. A constant value
// polled over OPC UA keeps /readyz at 200 (its source timestamp is old, but
// it is observed at every read). A sink that takes nothing makes the age of
// its oldest unacknowledged point rise past the SLO — /readyz 503 and
// flowd_oldest_unacked_seconds rising — and fall back once it takes again.
func TestLatencyTellsTheTruth(t *testing.T) {
	ep := harness.Require(t, "FLOWD_TEST_OPCUA_INTEROP")
	dir := t.TempDir()
	cfg := harness.WriteFile(t, dir, "poll.hcl", fmt.Sprintf(`pipeline "poll" {
  latency_slo = "2s"
  source "opcua" "plc" {
    endpoint = %q
    mode     = "poll"
    interval = "200ms"
    asset    = "interop"
    nodes    = { double = "ns=2;s=Interop.Double" }
  }
  sink "file" "out" {
    inputs = [source.plc]
    path   = %q
  }
}`, ep, filepath.Join(dir, "poll.jsonl")))
	p := harness.Start(t, "--data-dir", filepath.Join(dir, "data"), cfg)
	readyz := func() (int, string) {
		code, body, err := p.Readyz()
		if err != nil {
			t.Fatal(err)
		}
		return code, body
	}
	harness.Eventually(t, 30*time.Second, func() bool {
		return len(harness.ReadJSONL[map[string]any](t, filepath.Join(dir, "poll.jsonl"))) >= 10
	}, "polled values in the output")
	for i := 0; i < 5; i++ {
		if code, body := readyz(); code != 200 {
			b, _ := os.ReadFile(filepath.Join(dir, "poll.jsonl"))
			t.Fatalf("constant polled value: /readyz %d: %s\n%s", code, body, b[:min(len(b), 600)])
		}
		time.Sleep(500 * time.Millisecond)
	}
	p.Stop(30 * time.Second)

	fifo := filepath.Join(dir, "out.fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg = harness.WriteFile(t, dir, "stuck.hcl", fmt.Sprintf(`pipeline "stuck" {
  latency_slo = "2s"
  source "sim" "plant" {
    assets   = 2
    tags     = 5
    interval = "100ms"
  }
  sink "file" "out" {
    inputs = [source.plant]
    path   = %q
  }
}`, fifo))
	p = harness.Start(t, "--data-dir", filepath.Join(dir, "data2"), cfg)
	oldest := func() float64 { return metric(t, p, "flowd_oldest_unacked_seconds") }
	const problem = "oldest unacknowledged point older than the SLO"
	harness.Eventually(t, 15*time.Second, func() bool {
		code, body := readyz()
		return code == 503 && strings.Contains(body, problem)
	}, "/readyz 503 for the stuck sink")
	if age := oldest(); age < 2 {
		t.Fatalf("flowd_oldest_unacked_seconds = %v with the sink stuck past the 2 s SLO", age)
	}
	// Unblock: read the FIFO.
	go func() {
		f, err := os.Open(fifo)
		if err == nil {
			io.Copy(io.Discard, f)
			f.Close()
		}
	}()
	harness.Eventually(t, 15*time.Second, func() bool {
		_, body := readyz()
		return oldest() < 1 && !strings.Contains(body, problem)
	}, "the oldest unacknowledged point's age falling back after recovery")
	p.Kill()
}
