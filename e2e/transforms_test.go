package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
)

// TestTransformsCountAndExpose runs expr → cov → window → file in a real flowd
// and checks what it counts and exposes while running: expression failures
// (reason expr, copied to the dead-letter sink), the cov state size, and the
// points that reach each sink.
func TestTransformsCountAndExpose(t *testing.T) {
	concurrent(t)
	dir := t.TempDir()
	var in strings.Builder
	const tags, first, rest = 20, 400, 1200 // the unchanged rest keeps flowd running while metrics are read
	bad := 0
	for i := 0; i < first+rest; i++ {
		value := fmt.Sprintf("%d.5", i%tags) // constant per tag: cov passes each tag once
		if i < first && i%7 == 0 {
			value = `"offline"` // value * 2 fails
			bad++
		}
		fmt.Fprintf(&in, `{"asset":"line1","tag":"t%02d","value":%s,"quality":"good","ts":"2026-11-22T10:00:%02d.%03dZ"}`+"\n",
			i%tags, value, i/100%60, i%100*10)
	}
	input := harness.WriteFile(t, dir, "in.jsonl", in.String())
	out := filepath.Join(dir, "out.jsonl")
	dead := filepath.Join(dir, "dead.jsonl")
	pipeline := harness.WriteFile(t, dir, "p.hcl", fmt.Sprintf(`
pipeline "tr" {
  dead_letter = sink.dead

  source "file" "in" {
    path = %q
    rate = 200
  }

  transform "expr" "scale" {
    inputs = [source.in]
    set    = { value = "value * 2" }
  }

  transform "cov" "changes" {
    inputs   = [transform.scale]
    deadband = 0.1
  }

  transform "expr" "none" {
    inputs = [source.in]
    where  = "false"
  }

  sink "file" "out" {
    inputs = [transform.changes]
    path   = %q
  }

  sink "file" "dead" {
    inputs = [transform.none]
    path   = %q
  }
}
`, input, out, dead))
	p := harness.Start(t, "--data-dir", filepath.Join(dir, "data"), pipeline)
	var last string
	deadline := time.Now().Add(60 * time.Second)
	for reached := false; !reached; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("metrics never reached rejected=%d cov_tags=%d delivered=%d (last: %s)", bad, tags, tags+bad, last)
		}
		m, err := p.Metrics()
		if err != nil {
			continue
		}
		rejected := harness.Sum(m, "flowd_points_dropped_total", "pipeline=tr", "component=transform.scale", "reason=expr")
		covTags := harness.Sum(m, "flowd_cov_tags", "pipeline=tr", "component=transform.changes")
		delivered := harness.Sum(m, "flowd_points_delivered_total", "pipeline=tr")
		last = fmt.Sprintf("rejected=%v cov_tags=%v delivered=%v", rejected, covTags, delivered)
		reached = rejected == float64(bad) && covTags == tags && delivered == float64(tags+bad)
	}
	if code := p.Wait(60 * time.Second); code != 0 {
		t.Fatalf("flowd exited with %d", code)
	}
	lines := func(path string) []string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	if got := lines(out); len(got) != tags {
		t.Fatalf("%d points delivered, want %d (one per tag)", len(got), tags)
	}
	deadLines := lines(dead)
	if len(deadLines) != bad {
		t.Fatalf("%d dead letters, want %d", len(deadLines), bad)
	}
	if !strings.Contains(deadLines[0], `"dead_letter_reason":"expr"`) || !strings.Contains(deadLines[0], `"value":"offline"`) {
		t.Fatalf("dead letter: %s", deadLines[0])
	}
}
