package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
	"github.com/flowd/flowd/engine"
)

// tapPipeline: simulated signals, a filter that keeps temperatures and sets
// a unit, change-of-value, a JSON file sink.
const tapPipeline = `
pipeline "tap" {
  source "sim" "plant" {
    assets       = 3
    tags         = 7
    interval     = "100ms"
    change_ratio = 0.5
  }

  transform "expr" "scale" {
    inputs = [source.plant]
    where  = "tag == 'temperature' || tag == 'pressure'"
    set = {
      "attrs.unit" = "tag == 'temperature' ? 'C' : 'bar'"
    }
  }

  transform "cov" "changes" {
    inputs   = [transform.scale]
    deadband = 0.5
  }

  sink "file" "local" {
    inputs = [transform.changes]
    path   = "OUT"
    format = "json"
  }
}
`

// runFlowd runs a flowd command to its end (at most timeout) and returns its
// exit code, stdout and stderr.
func runFlowd(t *testing.T, timeout time.Duration, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.Flowd(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("flowd %s did not end within %s\nstderr:\n%s", strings.Join(args, " "), timeout, stderr.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

type wirePoint struct {
	Asset   string            `json:"asset"`
	Tag     string            `json:"tag"`
	Value   any               `json:"value"`
	Quality string            `json:"quality"`
	TS      string            `json:"ts"`
	Attrs   map[string]string `json:"attrs"`
}

// TestTapRunningInstance taps a running flowd through `flowd tap`: the points
// leaving the filter are the ones the filter keeps, with its unit set; the
// points the file sink delivered are byte for byte lines of its file; the
// rate limit holds, and skipped points are counted.
func TestTapRunningInstance(t *testing.T) {
	concurrent(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	pipe := harness.WriteFile(t, dir, "tap.hcl", strings.ReplaceAll(tapPipeline, `"OUT"`, strconv.Quote(out)))
	p := harness.Start(t, pipe)

	// The filter's output: only temperatures and pressures, each with its unit.
	code, stdout, stderr := runFlowd(t, 30*time.Second, "tap", "--http", p.Addr, "--count", "30", "transform.scale")
	if code != 0 {
		t.Fatalf("flowd tap exited %d:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "tapping tap/transform.scale") {
		t.Errorf("stderr does not name the tapped component:\n%s", stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 30 {
		t.Fatalf("printed %d lines, want 30:\n%s", len(lines), stdout)
	}
	for _, l := range lines {
		var pt wirePoint
		if err := json.Unmarshal([]byte(l), &pt); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		want := map[string]string{"temperature": "C", "pressure": "bar"}[pt.Tag]
		if want == "" || pt.Attrs["unit"] != want || pt.Asset == "" || pt.TS == "" {
			t.Errorf("the filter passed %q, which it should have dropped or given unit %q", l, want)
		}
	}

	// The sink's output, with --meta: each point is a line the sink wrote.
	code, stdout, stderr = runFlowd(t, 30*time.Second, "tap", "--http", p.Addr, "--meta", "--count", "10", "tap/sink.local")
	if code != 0 {
		t.Fatalf("flowd tap exited %d:\n%s", code, stderr)
	}
	var tapped []string
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var ev struct {
			Pipeline, Component string
			Point               json.RawMessage
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if ev.Pipeline != "tap" || ev.Component != "sink.local" {
			t.Fatalf("line %q: want pipeline tap, component sink.local", l)
		}
		tapped = append(tapped, string(ev.Point))
	}
	if len(tapped) != 10 {
		t.Fatalf("tapped %d sink points, want 10", len(tapped))
	}
	written := map[string]bool{}
	harness.Eventually(t, 10*time.Second, func() bool {
		b, _ := os.ReadFile(out)
		for _, l := range strings.Split(string(b), "\n") {
			written[l] = true
		}
		for _, l := range tapped {
			if !written[l] {
				return false
			}
		}
		return true
	}, "tapped sink points missing from the file %s", out)

	// Rate limit: 3 points a second over 3 seconds, the rest counted.
	start := time.Now()
	code, stdout, stderr = runFlowd(t, 30*time.Second, "tap", "--http", p.Addr, "--limit", "3", "--interval", "1s", "--duration", "3s")
	if code != 0 {
		t.Fatalf("flowd tap exited %d:\n%s", code, stderr)
	}
	n := strings.Count(stdout, "\n")
	secs := int(time.Since(start)/time.Second) + 1
	if n == 0 || n > 3*secs {
		t.Errorf("printed %d points in about %d s at 3 per second", n, secs)
	}
	m := regexp.MustCompile(`(\d+) points printed, (\d+) skipped`).FindStringSubmatch(stderr)
	if m == nil || m[1] != strconv.Itoa(n) || m[2] == "0" {
		t.Errorf("want the printed count %d and a non-zero skipped count on stderr:\n%s", n, stderr)
	}

	// What arrives at the file sink is what cov passes on.
	code, _, stderr = runFlowd(t, 30*time.Second, "tap", "--http", p.Addr, "--count", "1", "--inputs-of", "sink.local")
	if code != 0 || !strings.Contains(stderr, "tapping tap/transform.changes\n") {
		t.Errorf("tap --inputs-of sink.local: exit %d, want it to tap transform.changes:\n%s", code, stderr)
	}

	// Requests beyond what is safe are refused.
	for _, q := range []string{"limit=0", "limit=1001", "interval=10ms", "sample=0"} {
		resp, err := http.Get("http://" + p.Addr + "/api/tap?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("/api/tap?%s: %s, want 400", q, resp.Status)
		}
	}

	// An unknown component: exit 1, and the components there are.
	code, _, stderr = runFlowd(t, 30*time.Second, "tap", "--http", p.Addr, "sink.nope")
	if code != 1 || !strings.Contains(stderr, "no component matches sink.nope") || !strings.Contains(stderr, "tap/transform.changes") {
		t.Errorf("tapping sink.nope: exit %d, want 1 and the list of components:\n%s", code, stderr)
	}
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("flowd exited %d", code)
	}
}

// TestDryRun: every sink, here a file and an MQTT broker nobody listens on,
// is replaced by standard output; the run stops after N points or D, exits
// 0, and nothing reaches the real sinks.
func TestDryRun(t *testing.T) {
	concurrent(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "never.jsonl")
	src := strings.ReplaceAll(tapPipeline, `"OUT"`, strconv.Quote(out))
	src = strings.Replace(src, "\n}\n", fmt.Sprintf(`
  sink "mqtt" "cloud" {
    inputs = [transform.scale]
    broker = "mqtt://127.0.0.1:%d"
    topic  = "never"
  }
}
`, harness.FreePort(t)), 1)
	pipe := harness.WriteFile(t, dir, "dry.hcl", src)

	start := time.Now()
	code, stdout, stderr := runFlowd(t, 60*time.Second, "run", "--dry-run", "--dry-run-points", "25", pipe)
	if code != 0 {
		t.Fatalf("dry run exited %d:\n%s", code, stderr)
	}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	lines := 0
	sinks := map[string]int{}
	for sc.Scan() {
		var ev struct {
			Pipeline, Component string
			Point               wirePoint
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("stdout line %q: %v", sc.Text(), err)
		}
		if ev.Pipeline != "tap" || ev.Point.Tag == "" || ev.Point.Attrs["unit"] == "" {
			t.Fatalf("stdout line %q: want a scaled point of pipeline tap", sc.Text())
		}
		sinks[ev.Component]++
		lines++
	}
	if lines != 25 {
		t.Fatalf("dry run printed %d points, want 25:\n%s", lines, stdout)
	}
	if sinks["sink.cloud"] == 0 {
		t.Errorf("nothing printed for the MQTT sink: %v", sinks)
	}
	for id := range sinks {
		if id != "sink.cloud" && id != "sink.local" {
			t.Errorf("printed for %q", id)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the file sink wrote %s during a dry run (stat: %v)", out, err)
	}
	if !strings.Contains(stderr, `"points_printed":25`) || strings.Contains(stderr, "serving status") {
		t.Errorf("stderr: want the printed count and no HTTP listener:\n%s", stderr)
	}
	t.Logf("dry run of 25 points took %s", time.Since(start).Round(time.Millisecond))

	// By time: no point limit, two seconds.
	start = time.Now()
	code, stdout, stderr = runFlowd(t, 60*time.Second, "run", "--dry-run", "--dry-run-points", "0", "--dry-run-duration", "2s", pipe)
	if code != 0 {
		t.Fatalf("dry run exited %d:\n%s", code, stderr)
	}
	if took := time.Since(start); took < 2*time.Second || strings.Count(stdout, "\n") < 25 {
		t.Errorf("dry run for 2s took %s and printed %d points", took, strings.Count(stdout, "\n"))
	}
}

// TestExitSummaryAddsUp: what the sources produced is what the transforms
// filtered plus what the sink delivered (one sink, nothing dropped), in the
// exit summary and in /api/status; the file holds the delivered points.
func TestExitSummaryAddsUp(t *testing.T) {
	concurrent(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	src := strings.ReplaceAll(tapPipeline, `"OUT"`, strconv.Quote(out))
	src = strings.Replace(src, `change_ratio = 0.5`, "change_ratio = 0.5\n    count = 2100\n    fast = true", 1)
	pipe := harness.WriteFile(t, dir, "sum.hcl", src)
	final := filepath.Join(dir, "status.json")
	p := harness.Launch(t, "--final-status", final, pipe)
	if code := p.Wait(60 * time.Second); code != 0 {
		t.Fatalf("flowd exited %d", code)
	}
	var summary struct {
		In, Filtered, Delivered, Dropped, Pending int64
		FilteredBy                                string
	}
	for _, l := range strings.Split(p.Stderr.String(), "\n") {
		if strings.Contains(l, `"msg":"flowd stopped"`) {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatal(err)
			}
			num := func(k string) int64 {
				v, ok := m[k].(float64)
				if !ok {
					t.Fatalf("summary has no %s: %s", k, l)
				}
				return int64(v)
			}
			summary.In, summary.Filtered, summary.Delivered = num("points_in"), num("points_filtered"), num("points_delivered")
			summary.Dropped, summary.Pending = num("points_dropped"), num("points_pending")
			summary.FilteredBy, _ = m["filtered_by"].(string)
		}
	}
	lines := int64(len(harness.ReadJSONL[wirePoint](t, out)))
	if summary.In != 2100 || summary.Delivered != lines || summary.Dropped != 0 || summary.Pending != 0 ||
		summary.In != summary.Filtered+summary.Delivered {
		t.Fatalf("summary in=%d filtered=%d delivered=%d dropped=%d pending=%d; the file has %d points; want in = filtered + delivered",
			summary.In, summary.Filtered, summary.Delivered, summary.Dropped, summary.Pending, lines)
	}
	// sim's 7 tags per asset, of which the filter keeps 2
	scaleF := summary.In * 5 / 7
	if !strings.Contains(summary.FilteredBy, fmt.Sprintf("transform.scale=%d", scaleF)) || !strings.Contains(summary.FilteredBy, "transform.changes=") {
		t.Errorf("filtered_by = %q, want transform.scale=%d and transform.changes", summary.FilteredBy, scaleF)
	}
	b, err := os.ReadFile(final)
	if err != nil {
		t.Fatal(err)
	}
	var st engine.Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	pc := st.Pipelines[0].Points
	if pc.In != summary.In || pc.Filtered != summary.Filtered || pc.Delivered != summary.Delivered {
		t.Errorf("/api/status points %+v differ from the summary", pc)
	}
	for _, c := range st.Pipelines[0].Components {
		if c.Kind == engine.KindTransform && c.Received != c.Emitted+c.Filtered {
			t.Errorf("%s: received %d, emitted %d, filtered %d", c.ID, c.Received, c.Emitted, c.Filtered)
		}
	}
}

// TestSecondInterrupt: with a sink that cannot deliver, the first SIGINT
// starts the drain and flowd says which sink it waits for, with how many
// points, and that a second Ctrl-C quits; the second one ends it at once.
func TestSecondInterrupt(t *testing.T) {
	concurrent(t)
	dir := t.TempDir()
	notDir := harness.WriteFile(t, dir, "not-a-dir", "")
	pipe := harness.WriteFile(t, dir, "down.hcl", fmt.Sprintf(`
pipeline "down" {
  source "sim" "gen" {
    interval = "100ms"
  }
  sink "file" "blocked" {
    inputs = [source.gen]
    path   = %q
  }
}
`, filepath.Join(notDir, "out.jsonl")))
	p := harness.Start(t, "--drain-timeout", "2m", pipe)
	harness.Eventually(t, 30*time.Second, func() bool {
		st, err := p.Status()
		if err != nil {
			return false
		}
		for _, c := range st.Pipelines[0].Components {
			if c.ID == "sink.blocked" && c.Received > 0 && c.Delivered == 0 {
				return true
			}
		}
		return false
	}, "the blocked sink holds no points")

	p.Signal(syscall.SIGINT)
	waiting := regexp.MustCompile(`"msg":"waiting for a sink to take its points","sink":"down/sink.blocked","points":[1-9]\d*,"state":"(failing|reconnecting)".*"hint":"press Ctrl-C again to quit now"`)
	harness.Eventually(t, 15*time.Second, func() bool { return waiting.MatchString(p.Stderr.String()) },
		"no message naming the sink the drain waits for")
	if p.Exited() {
		t.Fatal("flowd exited on the first SIGINT although the sink holds points")
	}
	p.Signal(syscall.SIGINT)
	start := time.Now()
	code := p.Wait(10 * time.Second)
	if code != 1 {
		t.Fatalf("after a second SIGINT flowd exited %d (-1: still running), want 1 at once", code)
	}
	t.Logf("exited %s after the second SIGINT", time.Since(start).Round(time.Millisecond))
	if s := p.Stderr.String(); !strings.Contains(s, "second interrupt: quitting now") || !regexp.MustCompile(`"points_dropped":[1-9]`).MatchString(s) {
		t.Errorf("stderr does not say it quit, or the undelivered points are not counted as dropped:\n%s", s)
	}
}
