package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
	"github.com/flowd/flowd/engine"
)

// namedSimPipeline is reloadPipeline with a pipeline name of its own.
func namedSimPipeline(name, prefix, out string) string {
	return fmt.Sprintf(`pipeline %q {
  source "sim" "plc" {
    assets       = 3
    tags         = 4
    interval     = "10ms"
    asset_prefix = %q
  }

  sink "file" "out" {
    inputs = [source.plc]
    path   = %q
  }
}
`, name, prefix, out)
}

// flowSample is one reading of a pipeline's counters from /api/status.
type flowSample struct {
	at                  time.Time
	received, delivered int64
	rateOut             float64
	found               bool
}

func sampleOf(st engine.Status, name string) flowSample {
	s := flowSample{at: time.Now()}
	for _, p := range st.Pipelines {
		if p.Name != name {
			continue
		}
		s.found = true
		for _, c := range p.Components {
			switch c.Kind {
			case engine.KindSource:
				s.received += c.Received
			case engine.KindSink:
				s.delivered += c.Delivered
				s.rateOut += c.RateOut
			}
		}
	}
	return s
}

// receivedIn is what pipeline name's sources read, by the final status.
func receivedIn(st engine.Status, name string) int64 { return sampleOf(st, name).received }

// TestHotReloadTouchesOnlyTheChangedPipeline: two pipeline files under
// traffic; editing one restarts only its pipeline. The other keeps running
// through the reload (sampled every 50 ms from /api/status, its counters
// never go back, never stand still for long and its delivery rate never
// drops to zero), and neither loses or repeats a point.
func TestHotReloadTouchesOnlyTheChangedPipeline(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf")
	outA, outB := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	harness.WriteFile(t, conf, "a.hcl", namedSimPipeline("steady", "a", outA))
	fileB := harness.WriteFile(t, conf, "b.hcl", namedSimPipeline("edited", "b1-", outB))
	final := filepath.Join(dir, "final.json")
	p := harness.Start(t, "--watch", "200ms", "--final-status", final, conf)
	harness.Eventually(t, 20*time.Second, func() bool {
		st, err := p.Status()
		return err == nil && sampleOf(st, "steady").rateOut > 0 && countPrefix(outB, "b1-") > 500
	}, "no traffic in both pipelines")

	var mu sync.Mutex
	var samples []flowSample
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if st, err := p.Status(); err == nil {
				mu.Lock()
				samples = append(samples, sampleOf(st, "steady"))
				mu.Unlock()
			}
		}
	}()
	time.Sleep(time.Second)
	if err := os.WriteFile(fileB, []byte(namedSimPipeline("edited", "b2-", outB)), 0o644); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 20*time.Second, func() bool { return len(logLines(p.Stderr.String(), "configuration reloaded")) == 1 }, "the edited file was not reloaded")
	harness.Eventually(t, 20*time.Second, func() bool { return countPrefix(outB, "b2-") > 500 }, "no points from the edited pipeline")
	time.Sleep(2 * time.Second)
	close(stop)
	<-sampled

	if len(samples) < 40 {
		t.Fatalf("only %d status samples", len(samples))
	}
	// The untouched pipeline: counters only grow, and within every 500 ms
	// (ten samples) they grow; its delivery rate never reads zero.
	const window = 10
	for i, s := range samples {
		if !s.found {
			t.Fatalf("sample %d: pipeline steady missing from /api/status", i)
		}
		if s.rateOut <= 0 {
			t.Errorf("sample %d at %s: steady delivers at %v/s", i, s.at.Format("15:04:05.000"), s.rateOut)
		}
		if i == 0 {
			continue
		}
		if prev := samples[i-1]; s.received < prev.received || s.delivered < prev.delivered {
			t.Errorf("sample %d at %s: steady's counters went back: received %d → %d, delivered %d → %d",
				i, s.at.Format("15:04:05.000"), prev.received, s.received, prev.delivered, s.delivered)
		}
		if i >= window {
			if prev := samples[i-window]; s.received <= prev.received || s.delivered <= prev.delivered {
				t.Errorf("steady stood still from %s to %s: received %d → %d, delivered %d → %d",
					prev.at.Format("15:04:05.000"), s.at.Format("15:04:05.000"), prev.received, s.received, prev.delivered, s.delivered)
			}
		}
	}
	reloaded := logLines(p.Stderr.String(), "configuration reloaded")[0]
	if reloaded["kept"] != "steady" || reloaded["restarted"] != "edited" {
		t.Errorf("reload: kept %v, restarted %v; want steady, edited", reloaded["kept"], reloaded["restarted"])
	}

	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	// Nothing lost or repeated in either: every point a source read is in
	// its file once. The edited pipeline read in two generations: the one
	// drained by the reload (logged) and the one running at the end.
	b, err := os.ReadFile(final)
	if err != nil {
		t.Fatal(err)
	}
	var st engine.Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	drained := logLines(p.Stderr.String(), "previous configuration drained")
	if len(drained) != 1 || drained[0]["pipelines"] != "edited" {
		t.Fatalf("drained at the reload: %v; want only the edited pipeline", drained)
	}
	if d := sumField(drained, "points_dropped") + sumField(logLines(p.Stderr.String(), "flowd stopped"), "points_dropped"); d != 0 {
		t.Errorf("%d points dropped", d)
	}
	for _, c := range []struct {
		name, out string
		in        int64
	}{
		{"steady", outA, receivedIn(st, "steady")},
		{"edited", outB, receivedIn(st, "edited") + sumField(drained, "points_in")},
	} {
		pts, seen := readPoints(t, c.out)
		if int64(len(pts)) != c.in {
			t.Errorf("%s: sources read %d points, its file has %d", c.name, c.in, len(pts))
		}
		if len(seen) != len(pts) {
			t.Errorf("%s: %d points written, %d distinct", c.name, len(pts), len(seen))
		}
	}
	if countPrefix(outB, "b1-") == 0 || countPrefix(outB, "b2-") == 0 {
		t.Error("the edited pipeline's file lacks one of its generations")
	}
	first, last := samples[0], samples[len(samples)-1]
	t.Logf("%d samples over %s; steady read %d → %d points through the reload, %d in all",
		len(samples), last.at.Sub(first.at).Round(time.Millisecond), first.received, last.received, receivedIn(st, "steady"))
}
