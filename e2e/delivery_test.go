package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
)

// With nothing in flight, SIGTERM ends flowd at once with 0, even when a
// sink never connected: there is nothing for the drain to wait for.
func TestShutdownWithNothingInFlightIsImmediate(t *testing.T) {
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
