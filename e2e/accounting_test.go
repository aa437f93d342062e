package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
	"github.com/flowd/flowd/engine"
)

// Malformed datagrams among good ones are rejected by the UDP source before
// it emits anything: /api/status and the final status still add up, in =
// delivered + dropped + pending, and in is every datagram sent.
func TestUDPStatusCountsAddUp(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	final := filepath.Join(dir, "final.json")
	port := harness.FreePort(t)
	cfg := harness.WriteFile(t, dir, "udp.hcl", fmt.Sprintf(`pipeline "udp" {
  source "udp" "in" {
    listen = "127.0.0.1:%d"
  }
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
  }
}
`, port, out))
	p := harness.Start(t, "--data-dir", filepath.Join(dir, "data"), "--final-status", final, cfg)
	harness.Eventually(t, 10*time.Second, func() bool { return readyzLines(t, p, "source.in") == "" }, "the udp source to listen")
	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const rounds, good, bad = 10, 90, 10
	for r := range rounds {
		for i := range good + bad {
			if i%10 == 3 {
				conn.Write([]byte(`{"asset":"a","tag":`)) // malformed
				continue
			}
			fmt.Fprintf(conn, `{"asset":"a","tag":"t","value":%d}`, r*100+i)
		}
		// One round at a time, so the kernel's receive buffer never overflows.
		want := float64((r + 1) * (good + bad))
		harness.Eventually(t, 20*time.Second, func() bool { return metric(t, p, "flowd_udp_datagrams_total", "component=source.in") == want },
			"flowd to count %v datagrams", want)
	}
	const sent = rounds * (good + bad)
	check := func(what string, pc engine.PointCounts) { t.Helper(); checkPointsAddUp(t, what, pc, sent, rounds*bad) }
	harness.Eventually(t, 20*time.Second, func() bool {
		st, err := p.Status()
		return err == nil && st.Pipelines[0].Points.Delivered == rounds*good
	}, "every good datagram delivered")
	st, err := p.Status()
	if err != nil {
		t.Fatal(err)
	}
	check("/api/status", st.Pipelines[0].Points)
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	check("final status", readFinalStatus(t, final).Pipelines[0].Points)
	if n := len(readOut(t, out)); n != rounds*good {
		t.Errorf("%d points in the file, want %d", n, rounds*good)
	}
}

// checkPointsAddUp checks a pipeline's status counts: in is every point the
// source took in, dropped what it rejected, and in = delivered + dropped +
// pending + filtered.
func checkPointsAddUp(t *testing.T, what string, pc engine.PointCounts, in, dropped int64) {
	t.Helper()
	if pc.In != in || pc.Dropped != dropped || pc.In != pc.Delivered+pc.Dropped+pc.Pending+pc.Filtered {
		t.Errorf("%s: in %d (want %d) != delivered %d + dropped %d (want %d) + pending %d + filtered %d",
			what, pc.In, in, pc.Delivered, pc.Dropped, dropped, pc.Pending, pc.Filtered)
	}
}

// readFinalStatus reads what flowd run --final-status wrote.
func readFinalStatus(t *testing.T, path string) engine.Status {
	t.Helper()
	var st engine.Status
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil || len(st.Pipelines) == 0 {
		t.Fatalf("final status %s: %v", path, err)
	}
	return st
}
