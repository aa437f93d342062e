package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqttc "github.com/flowd/flowd/common/mqtt"
	"github.com/flowd/flowd/e2e/harness"
)

// mqttRun makes topics and client ids unique per test run, so sessions and
// retained state of earlier runs never interfere.
func mqttRun(t *testing.T) string {
	return fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
}

// testMQTTSettings are the settings of the tests' own MQTT clients
// (publishers, and subscribers that check what flowd sent).
func testMQTTSettings(broker string) *mqttc.Settings {
	return &mqttc.Settings{Brokers: []string{broker}, CleanStart: true, KeepAlive: 30 * time.Second,
		ConnectTimeout: 10 * time.Second, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second}
}

// publishSeq publishes values from..to-1 as {"tag":"seq","value":i} to
// topic/<i%8>, over several connections, and fails the test if the broker did
// not take every one.
func publishSeq(t testing.TB, broker, topic string, from, to, clients int) {
	t.Helper()
	s := testMQTTSettings(broker)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pub, err := mqttc.NewPublisher(ctx, s, fmt.Sprintf("pub-%d-%d", time.Now().UnixNano(), c), 128, nil)
			if err != nil {
				errs <- err
				return
			}
			for i := from + c; i < to; i += clients {
				payload := strconv.AppendInt([]byte(`{"tag":"seq","value":`), int64(i), 10)
				payload = append(payload, '}')
				if err := pub.Publish(ctx, fmt.Sprintf("%s/%d", topic, i%8), payload, 1); err != nil {
					errs <- err
					return
				}
			}
			if err := pub.Close(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("publish: %v", err)
	}
}

// seqCounts reads JSON lines and counts each "value".
type seqCounts struct {
	mu     sync.Mutex
	seen   map[int64]int
	lines  int
	errors int
}

func newSeqCounts() *seqCounts { return &seqCounts{seen: map[int64]int{}} }

func (c *seqCounts) add(line []byte) {
	var p struct {
		Value json.Number `json:"value"`
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines++
	if err := json.Unmarshal(line, &p); err != nil {
		c.errors++
		return
	}
	v, err := p.Value.Int64()
	if err != nil {
		c.errors++
		return
	}
	c.seen[v]++
}

func (c *seqCounts) readFile(t testing.TB, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return
		}
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		c.add(sc.Bytes())
	}
}

// result returns distinct values in [from,to), duplicates and missing.
func (c *seqCounts) result(from, to int) (distinct, dups, missing int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := from; i < to; i++ {
		n := c.seen[int64(i)]
		if n == 0 {
			missing++
			continue
		}
		distinct++
		dups += n - 1
	}
	return
}

func countFile(t testing.TB, path string, from, to int) (distinct, dups, missing int) {
	c := newSeqCounts()
	c.readFile(t, path)
	return c.result(from, to)
}

func waitConnected(t *testing.T, p *harness.Proc, id string) {
	t.Helper()
	harness.Eventually(t, 30*time.Second, func() bool {
		st, err := p.Status()
		if err != nil {
			return false
		}
		for _, pl := range st.Pipelines {
			for _, c := range pl.Components {
				if c.ID == id && c.State == "connected" {
					return true
				}
			}
		}
		return false
	}, "%s connected", id)
}

func componentStatus(t *testing.T, p *harness.Proc, id string) (state string, received, restarts int64) {
	st, err := p.Status()
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	for _, pl := range st.Pipelines {
		for _, c := range pl.Components {
			if c.ID == id {
				return string(c.State), c.Received, c.Restarts
			}
		}
	}
	t.Fatalf("no component %s in status", id)
	return
}

func sourceHCL(broker, topic, clientID, extra string) string {
	return fmt.Sprintf(`
  source "mqtt" "in" {
    broker    = %q
    topics    = [%q]
    client_id = %q
    qos       = 1
%s
  }
`, broker, topic+"/#", clientID, extra)
}

// 100,000 QoS 1 messages → flowd (two connections in a shared subscription
// group) → file sink: every value arrives; duplicates are counted.
func TestMQTT100kQoS1ToFile(t *testing.T) {
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	run := mqttRun(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	cfg := harness.WriteFile(t, dir, "p.hcl", `pipeline "p" {`+
		sourceHCL(broker, "e2e/"+run, run, `    group = "g"
    connections = 2`)+fmt.Sprintf(`
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
  }
}`, out))
	p := harness.Start(t, cfg)
	waitConnected(t, p, "source.in")
	const n = 100000
	start := time.Now()
	publishSeq(t, broker, "e2e/"+run, 0, n, 4)
	var distinct, dups, missing int
	harness.Eventually(t, 3*time.Minute, func() bool {
		distinct, dups, missing = countFile(t, out, 0, n)
		return missing == 0
	}, "all %d values in %s", n, out)
	t.Logf("%d messages: %d distinct arrived, %d duplicates, %d missing, in %s", n, distinct, dups, missing, time.Since(start).Round(time.Millisecond))
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("flowd exited %d", code)
	}
}

// flowd is SIGKILLed mid-stream and started again with the same client id:
// the broker redelivers what was not acknowledged, nothing is lost.
func TestMQTTKillRestartNoLoss(t *testing.T) {
	concurrent(t)
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	run := mqttRun(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	cfg := harness.WriteFile(t, dir, "p.hcl", `pipeline "p" {`+
		sourceHCL(broker, "e2e/"+run, run, `    session_expiry = "10m"`)+fmt.Sprintf(`
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
  }
}`, out))
	p := harness.Start(t, cfg)
	waitConnected(t, p, "source.in")
	const n = 30000
	done := make(chan struct{})
	go func() {
		defer close(done)
		publishSeq(t, broker, "e2e/"+run, 0, n, 2)
	}()
	harness.Eventually(t, time.Minute, func() bool {
		d, _, _ := countFile(t, out, 0, n)
		return d >= n/4
	}, "a quarter of the values before the kill")
	p.Kill()
	before, _, _ := countFile(t, out, 0, n)
	t.Logf("killed with %d of %d values written", before, n)
	p2 := harness.Start(t, cfg)
	<-done
	var distinct, dups, missing int
	harness.Eventually(t, 2*time.Minute, func() bool {
		distinct, dups, missing = countFile(t, out, 0, n)
		return missing == 0
	}, "all values after the restart")
	t.Logf("after restart: %d distinct, %d duplicates (redelivered), %d missing", distinct, dups, missing)
	if !strings.Contains(p2.Stderr.String(), `"session_present":true`) {
		t.Errorf("the restarted flowd did not resume its session")
	}
	p2.Stop(30 * time.Second)
}

func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

// cpuTicks is utime+stime of a process in clock ticks (1/100 s).
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

// The sink is blocked (a file sink writing to a FIFO nobody reads): the
// source withholds acks, the broker stops at receive_maximum, RSS stays
// bounded and the session stays connected (keepalive 2s, many periods);
// once the FIFO is read, every message arrives. 15 s here, 60 s in soak.
func TestMQTTBlockedSinkBounded(t *testing.T) {
	concurrent(t)
	blockedSink(t, 15*time.Second, 20000)
}
func TestMQTTBlockedSinkSoak(t *testing.T) {
	if os.Getenv("FLOWD_SOAK") == "" {
		t.Skip("set FLOWD_SOAK=1 (make soak) for the 60 s version")
	}
	blockedSink(t, 60*time.Second, 100000)
}

func blockedSink(t *testing.T, hold time.Duration, n int) {
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	run := mqttRun(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "out.fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	const receiveMax = 200
	cfg := harness.WriteFile(t, dir, "p.hcl", `pipeline "p" {`+
		sourceHCL(broker, "e2e/"+run, run, fmt.Sprintf(`    keepalive = "2s"
    receive_maximum = %d
    batch_size = 100`, receiveMax))+fmt.Sprintf(`
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
  }
}`, fifo))
	p := harness.Start(t, cfg)
	waitConnected(t, p, "source.in")
	pid := p.Cmd.Process.Pid
	base := rssKB(pid)
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		publishSeq(t, broker, "e2e/"+run, 0, n, 2)
	}()
	var peak int64
	deadline := time.Now().Add(hold)
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		peak = max(peak, rssKB(pid))
		state, received, restarts := componentStatus(t, p, "source.in")
		if state != "connected" || restarts != 0 {
			t.Fatalf("session not kept while the sink is blocked: state %s, reconnects %d\n%s", state, restarts, p.Stderr.String())
		}
		if received > receiveMax {
			t.Fatalf("source took %d messages while blocked, more than receive_maximum %d: no flow control", received, receiveMax)
		}
	}
	_, received, _ := componentStatus(t, p, "source.in")
	t.Logf("blocked %s: source holds %d unacknowledged messages (receive_maximum %d), RSS %d KiB at start, peak %d KiB", hold, received, receiveMax, base, peak)
	if peak-base > 100*1024 {
		t.Errorf("RSS grew by %d KiB while blocked", peak-base)
	}
	if strings.Contains(p.Stderr.String(), "connection lost") {
		t.Errorf("connection was lost while blocked:\n%s", p.Stderr.String())
	}
	// Unblock: read the FIFO until every value arrived.
	f, err := os.Open(fifo)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := newSeqCounts()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			counts.add(sc.Bytes())
		}
	}()
	<-pubDone
	var distinct, dups, missing int
	harness.Eventually(t, 2*time.Minute, func() bool {
		distinct, dups, missing = counts.result(0, n)
		return missing == 0
	}, "all values after unblocking")
	_, _, restarts := componentStatus(t, p, "source.in")
	t.Logf("after unblocking: %d distinct, %d duplicates; connection errors logged: %d, source restarts: %d",
		distinct, dups, strings.Count(p.Stderr.String(), "mqtt connection failed"), restarts)
	for _, l := range strings.Split(p.Stderr.String(), "\n") {
		if strings.Contains(l, "mqtt connection failed") || strings.Contains(l, "WARN") {
			t.Log(l)
		}
	}
	p.Stop(30 * time.Second)
	<-readDone
}

// TLS with a password-file listener: the right credentials deliver; a wrong
// password and an untrusted CA each give one clear error line.
func TestMQTTTLSAuth(t *testing.T) {
	concurrent(t)
	broker := harness.Require(t, "FLOWD_TEST_MQTTS")
	ca := harness.Require(t, "FLOWD_TEST_MQTT_CA")
	otherCA := harness.Require(t, "FLOWD_TEST_MQTT_OTHER_CA")
	user := harness.Require(t, "FLOWD_TEST_MQTT_USER")
	pass := harness.Require(t, "FLOWD_TEST_MQTT_PASSWORD")
	conf := func(dir, out, ca, run string) string {
		return harness.WriteFile(t, dir, "p.hcl", fmt.Sprintf(`pipeline "p" {
  source "mqtt" "in" {
    broker    = %q
    topics    = [%q]
    client_id = %q
    username  = env("MQTT_USER")
    password  = env("MQTT_PASSWORD")
    tls {
      ca_file = %q
    }
  }
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
  }
}`, broker, "e2e/"+run+"/#", run, ca, out))
	}
	t.Run("ok", func(t *testing.T) {
		run, dir := mqttRun(t), t.TempDir()
		out := filepath.Join(dir, "out.jsonl")
		p := harness.StartEnv(t, []string{"MQTT_USER=" + user, "MQTT_PASSWORD=" + pass}, conf(dir, out, ca, run))
		waitConnected(t, p, "source.in")
		s := testMQTTSettings(broker)
		s.Username, s.Password, s.TLS = user, pass, &mqttc.TLS{CAFile: ca}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		pub, err := mqttc.NewPublisher(ctx, s, run+"-pub", 16, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			pub.Publish(ctx, "e2e/"+run+"/x", []byte(fmt.Sprintf(`{"tag":"seq","value":%d}`, i)), 1)
		}
		if err := pub.Close(ctx); err != nil {
			t.Fatal(err)
		}
		harness.Eventually(t, 30*time.Second, func() bool {
			_, _, missing := countFile(t, out, 0, 100)
			return missing == 0
		}, "100 values over TLS")
	})
	failing := func(t *testing.T, env []string, ca, want string) {
		run, dir := mqttRun(t), t.TempDir()
		p := harness.StartEnv(t, env, conf(dir, filepath.Join(dir, "out.jsonl"), ca, run))
		harness.Eventually(t, 20*time.Second, func() bool {
			return strings.Contains(p.Stderr.String(), want)
		}, "an error line containing %q", want)
		time.Sleep(3 * time.Second) // several reconnect attempts
		var lines []string
		for _, l := range strings.Split(p.Stderr.String(), "\n") {
			if strings.Contains(l, "mqtt connection failed") {
				lines = append(lines, l)
			}
		}
		if len(lines) != 1 {
			t.Fatalf("want one error line, got %d:\n%s", len(lines), strings.Join(lines, "\n"))
		}
		t.Logf("error line: %s", lines[0])
		state, _, _ := componentStatus(t, p, "source.in")
		if state != "failing" {
			t.Errorf("state %s, want failing", state)
		}
	}
	t.Run("wrong password", func(t *testing.T) {
		failing(t, []string{"MQTT_USER=" + user, "MQTT_PASSWORD=wrong"}, ca, "broker refused the login")
	})
	t.Run("untrusted CA", func(t *testing.T) {
		failing(t, []string{"MQTT_USER=" + user, "MQTT_PASSWORD=" + pass}, otherCA, "certificate is not trusted")
	})
}

// Malformed JSON, wrong value types and a 10 MB payload are counted,
// logged and skipped; the messages around them arrive.
func TestMQTTMalformedPayloads(t *testing.T) {
	concurrent(t)
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	run := mqttRun(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	cfg := harness.WriteFile(t, dir, "p.hcl", `pipeline "p" {`+
		sourceHCL(broker, "e2e/"+run, run, "")+fmt.Sprintf(`
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
  }
}`, out))
	final := filepath.Join(dir, "final.json")
	p := harness.Start(t, "--final-status", final, cfg)
	waitConnected(t, p, "source.in")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub, err := mqttc.NewPublisher(ctx, testMQTTSettings(broker), run+"-pub", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad := [][]byte{
		[]byte(`{"tag":"seq","value":`),                                                    // truncated JSON
		[]byte(`not json at all`),                                                          // garbage
		[]byte(`{"tag":"seq","value":{"nested":true}}`),                                    // object as a value
		[]byte(`{"tag":17,"value":1}`),                                                     // number as a tag
		[]byte(`{"tag":"seq","value":1,"ts":"yesterday"}`),                                 // bad timestamp
		append(append([]byte(`{"tag":"big","value":"`), make([]byte, 10<<20)...), `"}`...), // 10 MB
	}
	for i := range 10 {
		if i < len(bad) {
			pub.Publish(ctx, "e2e/"+run+"/bad", bad[i], 1)
		}
		pub.Publish(ctx, "e2e/"+run+"/good", []byte(fmt.Sprintf(`{"tag":"seq","value":%d}`, i)), 1)
	}
	if err := pub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 30*time.Second, func() bool {
		_, _, missing := countFile(t, out, 0, 10)
		return missing == 0
	}, "the 10 good values")
	harness.Eventually(t, 10*time.Second, func() bool {
		m, err := p.Metrics()
		return err == nil && harness.Sum(m, "flowd_points_dropped_total", "component=source.in", "reason=decode") == float64(len(bad))
	}, "%d decode drops", len(bad))
	if !strings.Contains(p.Stderr.String(), "payload too large") {
		t.Errorf("no log line for the 10 MB payload:\n%s", p.Stderr.String())
	}
	c := newSeqCounts()
	c.readFile(t, out)
	if c.lines != 10 {
		t.Errorf("%d lines written, want the 10 good ones", c.lines)
	}
	if st, _, _ := componentStatus(t, p, "source.in"); st != "connected" {
		t.Errorf("source %s after bad payloads", st)
	}
	// The rejected messages were received: the counts add up with them.
	want := int64(10 + len(bad))
	if st, err := p.Status(); err != nil {
		t.Error(err)
	} else {
		checkPointsAddUp(t, "/api/status", st.Pipelines[0].Points, want, int64(len(bad)))
	}
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	checkPointsAddUp(t, "final status", readFinalStatus(t, final).Pipelines[0].Points, want, int64(len(bad)))
}

// sim → mqtt sink (topic_expr) → broker → mqtt source → file: points and
// their topics survive the round trip.
func TestMQTTSinkRoundTrip(t *testing.T) {
	concurrent(t)
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	run := mqttRun(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	cfg := harness.WriteFile(t, dir, "p.hcl", fmt.Sprintf(`pipeline "back" {
  source "mqtt" "in" {
    broker     = %[1]q
    topics     = ["e2e/%[2]s/#"]
    client_id  = "%[2]s-sub"
    asset_expr = "topic[2]"
  }
  sink "file" "out" {
    inputs = [source.in]
    path   = %[3]q
  }
}`, broker, run, out))
	// The subscriber runs first: the broker drops messages nobody subscribed to.
	sub := harness.Start(t, cfg)
	waitConnected(t, sub, "source.in")
	pcfg := harness.WriteFile(t, dir, "pub.hcl", fmt.Sprintf(`pipeline "out" {
  source "sim" "gen" {
    assets   = 3
    tags     = 4
    interval = "50ms"
    count    = 1200
  }
  sink "mqtt" "pub" {
    inputs     = [source.gen]
    broker     = %[1]q
    topic_expr = "'e2e/%[2]s/' + asset + '/' + tag"
    qos        = 1
  }
}`, broker, run))
	p := harness.Start(t, pcfg)
	harness.Eventually(t, time.Minute, func() bool {
		b, _ := os.ReadFile(out)
		return strings.Count(string(b), "\n") >= 1200
	}, "1200 points back from the broker")
	b, _ := os.ReadFile(out)
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var pt struct{ Asset, Tag string }
		if err := json.Unmarshal([]byte(l), &pt); err != nil || !strings.HasPrefix(pt.Asset, "asset") || pt.Tag == "" {
			t.Fatalf("bad line %q (%v)", l, err)
		}
	}
	if code := p.Wait(time.Minute); code != 0 {
		t.Errorf("publishing flowd exited %d", code)
	}
	sub.Stop(30 * time.Second)
}

// `flowd sim mqtt` publishes the requested number of ~180-byte JSON points
// per client, which the mqtt source decodes with their assets.
func TestMQTTSimCommand(t *testing.T) {
	concurrent(t)
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	run := mqttRun(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	cfg := harness.WriteFile(t, dir, "p.hcl", `pipeline "p" {`+sourceHCL(broker, "sim/"+run, run, "")+fmt.Sprintf(`
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
  }
}`, out))
	p := harness.Start(t, cfg)
	waitConnected(t, p, "source.in")
	cmd := exec.Command(harness.Flowd(t), "sim", "mqtt", "--broker", broker, "--clients", "2", "--rate", "2000",
		"--count", "500", "--assets", "2", "--tags", "10", "--topic", "sim/"+run+"/{client}/{asset}", "--client-prefix", run)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("flowd sim mqtt: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "published 1000 values") {
		t.Errorf("unexpected output: %s", b)
	}
	assets := map[string]int{}
	harness.Eventually(t, 30*time.Second, func() bool {
		data, _ := os.ReadFile(out)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) < 1000 {
			return false
		}
		clear(assets)
		for _, l := range lines {
			var pt struct{ Asset string }
			if json.Unmarshal([]byte(l), &pt) == nil {
				assets[pt.Asset]++
			}
		}
		return true
	}, "1000 simulated values")
	if len(assets) != 4 || assets["c1-asset1"] != 250 {
		t.Errorf("values per asset: %v, want 250 for each of c1-asset1, c1-asset2, c2-asset1, c2-asset2", assets)
	}
	p.Stop(30 * time.Second)
}

// `flowd sim mqtt --format json_batch` sends each asset's tags in one
// message (a tracker reporting its 5 readings at once): the count printed is
// values, messages are values / tags, and the mqtt source decodes every
// message into the asset's tags with one timestamp.
func TestMQTTSimCommandBatch(t *testing.T) {
	concurrent(t)
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	run := mqttRun(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	cfg := harness.WriteFile(t, dir, "p.hcl", `pipeline "p" {`+sourceHCL(broker, "sim/"+run, run, "")+fmt.Sprintf(`
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
  }
}`, out))
	p := harness.Start(t, cfg)
	waitConnected(t, p, "source.in")
	cmd := exec.Command(harness.Flowd(t), "sim", "mqtt", "--format", "json_batch", "--broker", broker, "--clients", "2", "--rate", "2000",
		"--count", "500", "--assets", "4", "--tags", "5", "--topic", "sim/"+run+"/{client}/{asset}", "--client-prefix", run)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("flowd sim mqtt: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "published 1000 values") {
		t.Errorf("unexpected output: %s", b)
	}
	type key struct {
		asset string
		ts    string
	}
	msgs := map[key]map[string]bool{}
	harness.Eventually(t, 30*time.Second, func() bool {
		data, _ := os.ReadFile(out)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) < 1000 {
			return false
		}
		clear(msgs)
		for _, l := range lines {
			var pt struct{ Asset, Tag, TS string }
			if json.Unmarshal([]byte(l), &pt) == nil {
				k := key{pt.Asset, pt.TS}
				if msgs[k] == nil {
					msgs[k] = map[string]bool{}
				}
				msgs[k][pt.Tag] = true
			}
		}
		return true
	}, "1000 simulated values")
	// 2 clients × 100 messages; each message is one asset's 5 tags at one ts.
	if len(msgs) != 200 {
		t.Errorf("%d (asset, ts) groups, want 200 messages", len(msgs))
	}
	for k, tags := range msgs {
		if len(tags) != 5 {
			t.Errorf("message of %s at %s carries tags %v, want tag1…tag5", k.asset, k.ts, tags)
			break
		}
	}
	p.Stop(30 * time.Second)
}

// Malformed payloads go to the pipeline's dead-letter sink (a file sink with
// no inputs of its own) carrying dead_letter_reason = decode, the component
// and the error, while the good messages around them are delivered.
func TestMQTTDeadLetters(t *testing.T) {
	concurrent(t)
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	run := mqttRun(t)
	dir := t.TempDir()
	out, dead := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "dead.jsonl")
	cfg := harness.WriteFile(t, dir, "p.hcl", `pipeline "p" {
  dead_letter = sink.dead
`+sourceHCL(broker, "e2e/"+run, run, `    asset_expr = "'line-' + topic[3]"`)+fmt.Sprintf(`
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
  }
  sink "file" "dead" {
    path = %q
  }
}`, out, dead))
	p := harness.Start(t, cfg)
	waitConnected(t, p, "source.in")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub, err := mqttc.NewPublisher(ctx, testMQTTSettings(broker), run+"-pub", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	type badMsg struct{ topic, payload, errPart string }
	big := `{"tag":"big","value":"` + strings.Repeat("x", 2<<20) + `"}`
	bad := []badMsg{
		{"e2e/" + run + "/bad/truncated", `{"tag":"seq","value":`, "invalid JSON"},
		{"e2e/" + run + "/bad/garbage", `not json at all`, "is not a number"},
		{"e2e/" + run + "/bad/object", `{"tag":"seq","value":{"nested":true}}`, "not an object or array"},
		{"e2e/" + run + "/bad/ts", `{"tag":"seq","value":1,"ts":"yesterday"}`, "RFC 3339"},
		{"e2e/" + run + "/bad/big", big, "payload too large"},
		// The topic has no level 3 for asset_expr.
		{"e2e/" + run + "/short", `{"tag":"seq","value":1}`, "asset_expr"},
	}
	const good = 20
	for i := range good {
		if i < len(bad) {
			if err := pub.Publish(ctx, bad[i].topic, []byte(bad[i].payload), 1); err != nil {
				t.Fatal(err)
			}
		}
		if err := pub.Publish(ctx, fmt.Sprintf("e2e/%s/good/%d", run, i%3), []byte(fmt.Sprintf(`{"tag":"seq","value":%d}`, i)), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 30*time.Second, func() bool {
		_, _, missing := countFile(t, out, 0, good)
		return missing == 0
	}, "the %d good values", good)
	var lines []string
	harness.Eventually(t, 30*time.Second, func() bool {
		b, _ := os.ReadFile(dead)
		lines = strings.Split(strings.TrimSpace(string(b)), "\n")
		return len(b) > 0 && len(lines) >= len(bad)
	}, "%d dead letters in %s", len(bad), dead)
	if len(lines) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(lines), len(bad))
	}
	byTopic := map[string]struct {
		Value   string            `json:"value"`
		Quality string            `json:"quality"`
		Attrs   map[string]string `json:"attrs"`
	}{}
	for _, l := range lines {
		var pt struct {
			Tag     string            `json:"tag"`
			Value   string            `json:"value"`
			Quality string            `json:"quality"`
			Attrs   map[string]string `json:"attrs"`
		}
		if err := json.Unmarshal([]byte(l), &pt); err != nil {
			t.Fatalf("dead letter %q: %v", l, err)
		}
		byTopic[pt.Tag] = struct {
			Value   string            `json:"value"`
			Quality string            `json:"quality"`
			Attrs   map[string]string `json:"attrs"`
		}{pt.Value, pt.Quality, pt.Attrs}
	}
	for _, b := range bad {
		dl, ok := byTopic[b.topic]
		if !ok {
			t.Errorf("no dead letter for %s", b.topic)
			continue
		}
		a := dl.Attrs
		if a["dead_letter_reason"] != "decode" || a["dead_letter_component"] != "source.in" || a["mqtt_topic"] != b.topic ||
			!strings.Contains(a["dead_letter_error"], b.topic) || !strings.Contains(a["dead_letter_error"], b.errPart) {
			t.Errorf("dead letter for %s: attrs %v, want reason decode, component source.in and an error with %q", b.topic, a, b.errPart)
		}
		if dl.Quality != "bad" || !strings.HasPrefix(b.payload, dl.Value) || len(dl.Value) != min(len(b.payload), 1024) {
			t.Errorf("dead letter for %s: quality %s, value %.60q (%d bytes), want the payload's first %d bytes",
				b.topic, dl.Quality, dl.Value, len(dl.Value), min(len(b.payload), 1024))
		}
	}
	m, err := p.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if n := harness.Sum(m, "flowd_points_dropped_total", "component=source.in", "reason=decode"); n != float64(len(bad)) {
		t.Errorf("%v decode drops counted, want %d", n, len(bad))
	}
	c := newSeqCounts()
	c.readFile(t, out)
	if c.lines != good {
		t.Errorf("%d lines delivered, want the %d good ones", c.lines, good)
	}
	b, _ := os.ReadFile(out)
	if !strings.Contains(string(b), `"asset":"line-0"`) {
		t.Errorf("asset_expr did not set the asset from topic level 3:\n%.300s", b)
	}
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("flowd exited %d", code)
	}
}

// Scale-out: two flowd processes in one shared-subscription group ("edge")
// split 50,000 QoS 1 messages. Each gets a share, and the union of their
// outputs holds every message; a duplicate (at-least-once) is accepted only
// where a process counted a redelivery cause (a reconnect, a lost ack).
func TestMQTTSharedGroupTwoProcesses(t *testing.T) {
	concurrent(t)
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	run := mqttRun(t)
	dir := t.TempDir()
	type gateway struct {
		name, out string
		p         *harness.Proc
	}
	gws := []*gateway{{name: "a"}, {name: "b"}}
	for _, g := range gws {
		g.out = filepath.Join(dir, g.name+".jsonl")
		cfg := harness.WriteFile(t, dir, g.name+".hcl", `pipeline "p" {`+
			sourceHCL(broker, "e2e/"+run, run+"-"+g.name, `    group = "edge"`)+fmt.Sprintf(`
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
  }
}`, g.out))
		g.p = harness.Start(t, cfg)
	}
	for _, g := range gws {
		waitConnected(t, g.p, "source.in")
	}
	const n = 50000
	start := time.Now()
	publishSeq(t, broker, "e2e/"+run, 0, n, 4)
	published := time.Since(start)
	union := newSeqCounts()
	harness.Eventually(t, 2*time.Minute, func() bool {
		union = newSeqCounts()
		for _, g := range gws {
			union.readFile(t, g.out)
		}
		_, _, missing := union.result(0, n)
		return missing == 0
	}, "all %d values in the union of both outputs", n)
	elapsed := time.Since(start)
	distinct, dups, _ := union.result(0, n)
	if union.errors != 0 || union.lines != distinct+dups {
		t.Errorf("%d lines, %d unreadable, %d values outside 0..%d", union.lines, union.errors, union.lines-distinct-dups, n-1)
	}
	causes := 0
	for _, g := range gws {
		share := newSeqCounts()
		share.readFile(t, g.out)
		d, dd, _ := share.result(0, n)
		m, err := g.p.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		ackFailed := harness.Sum(m, "flowd_mqtt_messages_total", "component=source.in", "result=ack_failed")
		_, _, restarts := componentStatus(t, g.p, "source.in")
		connects := strings.Count(g.p.Stderr.String(), `"msg":"mqtt connected"`)
		causes += int(ackFailed) + int(restarts) + connects - 1
		t.Logf("gateway %s: %d values (%.1f %%), %d duplicates within; acks failed %v, source restarts %d, connections made %d",
			g.name, d, 100*float64(d)/n, dd, ackFailed, restarts, connects)
		if d == 0 {
			t.Errorf("gateway %s got no share of the traffic", g.name)
		}
	}
	t.Logf("%d messages: published in %s, all in the union after %s; %d distinct, %d duplicates", n,
		published.Round(time.Millisecond), elapsed.Round(time.Millisecond), distinct, dups)
	if dups > 0 && causes == 0 {
		t.Errorf("%d duplicates without a reconnect or a failed ack to explain them", dups)
	}
	for _, g := range gws {
		if code := g.p.Stop(30 * time.Second); code != 0 {
			t.Errorf("gateway %s: flowd exited %d", g.name, code)
		}
	}
}

// Graceful stops while QoS 1 traffic flows: every message flowd delivered
// must have had its PUBACK written before the disconnect, so no value is
// delivered twice across the restarts (a lost ack would bring its message
// back), and none is missing.
func TestMQTTStopFlushesAcks(t *testing.T) {
	concurrent(t)
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	run := mqttRun(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	cfg := harness.WriteFile(t, dir, "p.hcl", `pipeline "p" {`+
		sourceHCL(broker, "e2e/"+run, run, `    session_expiry = "10m"`)+fmt.Sprintf(`
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
  }
}`, out))
	const n, stops = 40000, 3
	var p *harness.Proc
	start := func() {
		p = harness.Start(t, cfg)
		waitConnected(t, p, "source.in")
	}
	start()
	done := make(chan struct{})
	go func() {
		defer close(done)
		publishSeq(t, broker, "e2e/"+run, 0, n, 2)
	}()
	for i := range stops {
		want := (i + 1) * n / (stops + 2)
		harness.Eventually(t, time.Minute, func() bool {
			d, _, _ := countFile(t, out, 0, n)
			return d >= want
		}, "%d values before stop %d", want, i+1)
		t0 := time.Now()
		if code := p.Stop(30 * time.Second); code != 0 {
			t.Fatalf("stop %d: exit code %d", i+1, code)
		}
		t.Logf("stop %d took %s", i+1, time.Since(t0).Round(time.Millisecond))
		start()
	}
	<-done
	var distinct, dups, missing int
	harness.Eventually(t, 2*time.Minute, func() bool {
		distinct, dups, missing = countFile(t, out, 0, n)
		return missing == 0
	}, "all values")
	p.Stop(30 * time.Second)
	distinct, dups, missing = countFile(t, out, 0, n)
	t.Logf("%d stops under load: %d distinct, %d delivered twice, %d missing", stops, distinct, dups, missing)
	if dups != 0 {
		t.Errorf("%d values delivered twice: their acks were lost on a graceful stop", dups)
	}
}

// With several connections, a rejected message is acknowledged only once
// the dead-letter sink has its dead letter: while that sink is down, every
// rejected message stays unacknowledged (the broker keeps it), whichever
// connection's batch would have carried the dead letter.
func TestMQTTDeadLettersHoldAcksAcrossConnections(t *testing.T) {
	concurrent(t)
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	run := mqttRun(t)
	dir := t.TempDir()
	dead, _ := block(t, dir) // never unblocked: the dead-letter sink stays down
	cfg := harness.WriteFile(t, dir, "p.hcl", `pipeline "p" {
  latency_slo   = "48h"
  stall_timeout = "1h"
  dead_letter   = sink.dead
`+sourceHCL(broker, "e2e/"+run, run, `    group       = "g"
    connections = 2`)+fmt.Sprintf(`
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
  }
  sink "file" "dead" {
    path = %q
  }
}`, filepath.Join(dir, "out.jsonl"), dead))
	p := harness.Start(t, cfg)
	waitConnected(t, p, "source.in")
	s := mqttc.Settings{Brokers: []string{broker}, CleanStart: true, KeepAlive: 30 * time.Second, ConnectTimeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub, err := mqttc.NewPublisher(ctx, &s, run+"-pub", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 400
	for i := range n {
		if err := pub.Publish(ctx, fmt.Sprintf("e2e/%s/%d", run, i%8), []byte(`{"tag":"seq","value":`), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 30*time.Second, func() bool {
		return metric(t, p, "flowd_mqtt_messages_total", "component=source.in", "result=rejected") == n
	}, "%d messages rejected", n)
	time.Sleep(500 * time.Millisecond) // acks that should not happen have time to
	if got := metric(t, p, "flowd_mqtt_unacked_messages", "component=source.in"); got != n {
		t.Fatalf("%v of %d rejected messages unacknowledged while the dead-letter sink is down, want all", got, n)
	}
	p.Kill()
}
