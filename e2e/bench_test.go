package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
)

// benchOut is the part of `flowd bench --json` the smoke test checks.
type benchOut struct {
	Scenario   string   `json:"scenario"`
	PointsIn   int64    `json:"points_in"`
	PointsOut  int64    `json:"points_out"`
	PointsLost int64    `json:"points_lost"`
	CPUCores   float64  `json:"cpu_cores"`
	RSSPeakMB  float64  `json:"rss_peak_mb"`
	Problems   []string `json:"problems"`
	Truth      *struct {
		Published int64  `json:"published"`
		Delivered int64  `json:"delivered"`
		InTopic   int64  `json:"in_topic"`
		Topic     string `json:"topic"`
	} `json:"truth"`
	Peer *benchOut `json:"peer"`
}

// TestBenchScenarios runs every benchmark scenario briefly, as `make bench`
// runs them at length, and checks correctness only: the run completes,
// points flow, and none is lost — by flowd's own accounting and by the
// ground truth (publishers' counts, the Kafka topic read back). Speed is
// not asserted: this machine is shared.
func TestBenchScenarios(t *testing.T) {
	bin := harness.Flowd(t)
	dir := filepath.Join(harness.RepoRoot(), "pipelines", "bench")
	for _, sc := range []string{"engine", "kafka_json", "kafka_json_batch", "aio-single", "aio-multi", "trackers", "neuron", "max", "max-engine", "peer", "smart-meters", "smart-meters-stress", "modbus", "peer-modbus"} {
		t.Run(sc, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, "bench", "--duration", "10s", "--json", "--pipelines", dir, sc)
			cmd.Dir = harness.RepoRoot()
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(8 * time.Minute):
				cmd.Process.Kill()
				<-done
				t.Fatalf("flowd bench %s did not finish in 8 minutes\n%s", sc, benchTail(stderr.String(), 3000))
			}
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.ExitCode() == 2 && strings.Contains(stderr.String(), "needs FLOWD_TEST_") {
				t.Skipf("%s", strings.TrimSpace(benchLastLine(stderr.String())))
			}
			dec := json.NewDecoder(&stdout)
			var results []benchOut
			for {
				var r benchOut
				if derr := dec.Decode(&r); derr == io.EOF {
					break
				} else if derr != nil {
					t.Fatalf("bench output: %v\n%s", derr, benchTail(stderr.String(), 3000))
				}
				results = append(results, r)
			}
			if err != nil || len(results) == 0 {
				t.Fatalf("flowd bench %s: %v, %d results\n%s", sc, err, len(results), benchTail(stderr.String(), 3000))
			}
			for _, r := range results {
				t.Logf("%s: in %d, out %d, cpu %.3f cores, rss %.0f MB, lost %d", r.Scenario, r.PointsIn, r.PointsOut, r.CPUCores, r.RSSPeakMB, r.PointsLost)
				if r.PointsLost != 0 || len(r.Problems) > 0 {
					t.Errorf("%s: %d points lost: %v", r.Scenario, r.PointsLost, r.Problems)
				}
				if r.PointsIn == 0 || r.PointsOut == 0 {
					t.Errorf("%s: nothing flowed (in %d, out %d)", r.Scenario, r.PointsIn, r.PointsOut)
				}
				if r.Truth != nil && r.Truth.Topic != "" && r.Truth.InTopic < r.Truth.Delivered {
					t.Errorf("%s: the topic holds %d points, flowd delivered %d", r.Scenario, r.Truth.InTopic, r.Truth.Delivered)
				}
				if r.Truth != nil && r.Truth.Published > 0 && r.PointsIn < r.Truth.Published {
					t.Errorf("%s: publishers sent %d, flowd received %d", r.Scenario, r.Truth.Published, r.PointsIn)
				}
				if sc == "peer" {
					if r.Peer == nil || r.Peer.PointsOut == 0 {
						t.Errorf("%s: no peer result, or the peer delivered nothing: %+v", r.Scenario, r.Peer)
					}
				}
			}
		})
	}
}

func benchLastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func benchTail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
