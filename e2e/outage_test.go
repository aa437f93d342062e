package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
)

// TestDiskBufferOutage is the short version of the outage test: 12,500
// points/s (125 assets × 50 tags at 2 Hz) into a file sink that is down for
// 30 s, store-and-forward on disk, then every point delivered.
func TestDiskBufferOutage(t *testing.T) {
	concurrent(t)
	runOutage(t, 30*time.Second)
}

// TestDiskBufferOutageSoak is the 10-minute outage (make soak).
func TestDiskBufferOutageSoak(t *testing.T) {
	if os.Getenv("FLOWD_SOAK") == "" {
		t.Skip("set FLOWD_SOAK=1 (make soak) for the 10-minute outage")
	}
	runOutage(t, 10*time.Minute)
}

func rssMB(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// stoppedTotals reads the totals flowd logs when it stops.
func stoppedTotals(t *testing.T, p *harness.Proc) (in, delivered int64) {
	t.Helper()
	in, delivered = -1, -1
	for _, line := range strings.Split(p.Stderr.String(), "\n") {
		var m struct {
			Msg       string `json:"msg"`
			In        int64  `json:"points_in"`
			Delivered int64  `json:"points_delivered"`
			Dropped   int64  `json:"points_dropped"`
		}
		if json.Unmarshal([]byte(line), &m) == nil && m.Msg == "flowd stopped" {
			in, delivered = m.In, m.Delivered
			if m.Dropped != 0 {
				t.Errorf("%d points dropped", m.Dropped)
			}
		}
	}
	if in < 0 {
		t.Fatal("flowd did not log its totals")
	}
	return in, delivered
}

// distinctPoints counts the points of a JSONL file once per (asset, tag, ts):
// the sim source's timestamps increase per tag and the buffer replays in
// order, so a line whose ts is not after its tag's last one is a duplicate.
func distinctPoints(t *testing.T, path string) (distinct, dups int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	last := map[string]string{}
	sc := bufio.NewScanner(f)
	var l struct {
		Asset string `json:"asset"`
		Tag   string `json:"tag"`
		TS    string `json:"ts"`
	}
	for sc.Scan() {
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("corrupt line %q: %v", sc.Text(), err)
		}
		ts, err := time.Parse(time.RFC3339Nano, l.TS)
		if err != nil {
			t.Fatalf("bad ts in %q", sc.Text())
		}
		key := l.Asset + "\x00" + l.Tag
		stamp := ts.UTC().Format("20060102150405.000000000")
		if prev, ok := last[key]; ok && stamp <= prev {
			dups++
			continue
		}
		last[key] = stamp
		distinct++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return distinct, dups
}

func runOutage(t *testing.T, outage time.Duration) {
	dir := t.TempDir()
	out, unblock := block(t, dir)
	src := `  source "sim" "in" {
    assets   = 125
    tags     = 50
    interval = "500ms"
  }`
	cfg := harness.WriteFile(t, dir, "p.hcl", bufPipeline(bufCase{source: src, out: out, maxSize: "4GiB", whenFull: "block"}))
	p := harness.Start(t, "--data-dir", filepath.Join(dir, "data"), cfg)
	pid := p.Cmd.Process.Pid

	var rss []float64
	var peakBytes, peakPoints int64
	start := time.Now()
	for time.Since(start) < outage {
		time.Sleep(time.Second)
		rss = append(rss, rssMB(pid))
		_, c := sinkStatus(t, p)
		peakBytes, peakPoints = max(peakBytes, c.Buffer.Bytes), max(peakPoints, c.Buffer.Points)
		if c.Delivered > 0 {
			t.Fatalf("the sink delivered during the outage")
		}
	}
	_, c := sinkStatus(t, p)
	rate := float64(c.Received) / time.Since(start).Seconds()
	unblock()
	recoverStart := time.Now()
	harness.Eventually(t, outage+2*time.Minute, func() bool {
		_, c := sinkStatus(t, p)
		return c.Buffer.Points < 20_000 && c.Delivered > peakPoints
	}, "the backlog to be delivered after the outage")
	recovery := time.Since(recoverStart)

	// SIGTERM: the disk buffer keeps whatever is still queued, and a run
	// whose only source ends at once delivers it and exits.
	if code := p.Stop(time.Minute); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	in, delivered := stoppedTotals(t, p)
	dir2 := filepath.Join(dir, "finish")
	cfg = harness.WriteFile(t, dir2, "p.hcl", bufPipeline(bufCase{noKeep: true, source: fileSource(harness.WriteFile(t, dir2, "empty.jsonl", "")), out: out, maxSize: "4GiB", whenFull: "block"}))
	p = harness.Launch(t, "--data-dir", filepath.Join(dir, "data"), cfg)
	if code := p.Wait(5 * time.Minute); code != 0 {
		t.Fatalf("finishing run: exit code %d", code)
	}
	_, rest := stoppedTotals(t, p)
	delivered += rest
	// The keep-alive sim source sent one point to the discard sink.
	distinct, dups := distinctPoints(t, out)
	if in <= 0 || int64(distinct) != in-1 || delivered < in {
		t.Fatalf("points in %d, delivered %d (%d after the restart), distinct in the sink's file %d (+1 to the keep-alive sink)", in, delivered, rest, distinct)
	}

	// RSS flat: the last third of the outage against the first third (after
	// a few seconds of warm-up).
	third := len(rss) / 3
	early, late := 0.0, 0.0
	for _, v := range rss[min(3, third):third] {
		early = max(early, v)
	}
	for _, v := range rss[2*third:] {
		late = max(late, v)
	}
	t.Logf("outage %s at %.0f points/s: buffer peak %d points, %.1f MiB on disk; RSS peak %.0f MB early, %.0f MB late; backlog delivered %s after recovery; %d points in, %d distinct delivered (%d after a SIGTERM and restart), %d duplicates",
		outage, rate, peakPoints, float64(peakBytes)/(1<<20), early, late, recovery.Round(time.Second), in, distinct, rest, dups)
	if late > early*1.5+32 {
		t.Errorf("RSS grew during the outage: %.0f MB early, %.0f MB late", early, late)
	}
}
