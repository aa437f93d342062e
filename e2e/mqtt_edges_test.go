package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
)

// TestMQTTDuplicateClientID runs two flowd processes with the same client id
// against Mosquitto. Each connection takes the session from the other
// (DISCONNECT 0x8E); the reconnect backoff must apply to that as to any
// disconnect, so connections, log lines and redeliveries stay bounded, and
// the error names the shared client id. Every message still arrives.
func TestMQTTDuplicateClientID(t *testing.T) {
	concurrent(t)
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	run := mqttRun(t)
	dir := t.TempDir()
	cfg := harness.WriteFile(t, dir, "p.hcl", `pipeline "p" {`+
		sourceHCL(broker, "e2e/"+run, run, `    backoff_min     = "200ms"
    backoff_max     = "2s"
    receive_maximum = 100`)+`
  sink "file" "out" {
    inputs = [source.in]
    path   = env("OUT")
  }
}`)
	var procs []*harness.Proc
	var outs []string
	for i := range 2 {
		out := filepath.Join(dir, fmt.Sprintf("out-%d.jsonl", i))
		outs = append(outs, out)
		procs = append(procs, harness.StartEnv(t, []string{"OUT=" + out}, "--data-dir", filepath.Join(dir, fmt.Sprint(i)), cfg))
	}
	start := time.Now()
	const n = 5000
	publishSeq(t, broker, "e2e/"+run, 0, n, 1)
	counts := newSeqCounts()
	harness.Eventually(t, 60*time.Second, func() bool {
		counts = newSeqCounts()
		for _, out := range outs {
			counts.readFile(t, out)
		}
		_, _, missing := counts.result(0, n)
		return missing == 0
	}, "every message delivered by one of the two processes")
	// Let the takeovers go on for a while with nothing left to deliver.
	time.Sleep(max(0, 20*time.Second-time.Since(start)))
	elapsed := time.Since(start)
	for i, p := range procs {
		if code := p.Stop(30 * time.Second); code != 0 {
			t.Fatalf("process %d: exit code %d", i, code)
		}
	}
	counts = newSeqCounts()
	for _, out := range outs {
		counts.readFile(t, out)
	}
	distinct, dups, missing := counts.result(0, n)
	totalConnects := 0
	for i, p := range procs {
		stderr := p.Stderr.String()
		connects := strings.Count(stderr, `"msg":"mqtt connected"`)
		totalConnects += connects
		errs := levelLines(stderr, "ERROR", "mqtt connection failed")
		t.Logf("process %d: %d connections, %d error lines, %d bytes of log in %s", i, connects, len(errs), len(stderr), elapsed.Round(time.Second))
		// backoff 200ms doubling to 2s: about 4 connections in the first 3s,
		// then one per 2s at most
		if connects > 20 {
			t.Errorf("process %d connected %d times in %s: no backoff after a session takeover", i, connects, elapsed.Round(time.Second))
		}
		// EOF, a subscribe cut short, the takeover explanation...: each
		// distinct message once per minute at most
		if len(errs) > 6 {
			t.Errorf("process %d: %d error lines in %s, want at most 6 (rate-limited)", i, len(errs), elapsed.Round(time.Second))
		}
		named := 0
		for _, l := range errs {
			if strings.Contains(l, fmt.Sprintf(`client id \"%s\"`, run)) && (strings.Contains(l, "same client id") || strings.Contains(l, "0x8E")) {
				named++
			}
		}
		if named == 0 {
			t.Errorf("process %d: no error names the shared client id %s: %q", i, run, errs)
		}
		if len(stderr) > 64<<10 {
			t.Errorf("process %d wrote %d bytes of log", i, len(stderr))
		}
	}
	t.Logf("%d messages: %d distinct, %d duplicates, %d missing; %d connections in all", n, distinct, dups, missing, totalConnects)
	if missing != 0 {
		t.Errorf("%d messages lost", missing)
	}
	// A takeover redelivers what the other process had not acknowledged
	// yet (at most receive_maximum), which that process may still write,
	// and acks now wait for every sink before they go out, so a window
	// received just before the takeover can be redelivered too: bounded by a
	// few receive_maximum per connection (the unbounded case redelivered
	// 5,000 messages 666,547 times).
	if dups > 4*100*totalConnects {
		t.Errorf("%d duplicates for %d connections: more than 4 × receive_maximum per takeover", dups, totalConnects)
	}
}
