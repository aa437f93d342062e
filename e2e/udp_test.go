package e2e

import (
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
)

// Datagrams are counted exactly: with the sink down the queue fills and the
// rest is dropped (reason full); malformed datagrams are rejected; after the
// sink is back, datagrams sent = ok + rejected + dropped and every point
// taken is delivered, none twice.
func TestUDPCountsEveryDatagram(t *testing.T) {
	dir := t.TempDir()
	out, unblock := block(t, dir)
	port := harness.FreePort(t)
	cfg := harness.WriteFile(t, dir, "udp.hcl", fmt.Sprintf(`pipeline "udp" {
  latency_slo   = "48h"
  stall_timeout = "1h"
  source "udp" "in" {
    listen = "127.0.0.1:%d"
    queue  = 2000
  }
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
  }
}
`, port, out))
	p := harness.Start(t, "--data-dir", filepath.Join(dir, "data"), cfg)
	harness.Eventually(t, 10*time.Second, func() bool { return readyzLines(t, p, "source.in") == "" }, "the udp source to listen")
	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	seq, bad := 0, 0
	datagrams := func() float64 { return metric(t, p, "flowd_udp_datagrams_total", "component=source.in") }
	// send writes n datagrams in rounds of 100 and waits for flowd to have
	// counted each round before the next, so the kernel's receive buffer
	// (about 270 small datagrams by default) never overflows even while
	// flowd is descheduled: the counts below are then exact.
	send := func(n int) {
		for n > 0 {
			for range min(n, 100) {
				if seq%500 == 499 {
					conn.Write([]byte(`{"asset":"a","tag":`)) // malformed
					bad++
				}
				fmt.Fprintf(conn, `{"asset":"a","tag":"t%d","value":%d}`, seq%50, seq)
				seq++
				n--
			}
			harness.Eventually(t, 20*time.Second, func() bool { return datagrams() == float64(seq+bad) }, "flowd to count %d datagrams", seq+bad)
		}
	}
	send(10_000) // sink down: 2,000 queued, the rest dropped
	unblock()
	harness.Eventually(t, 30*time.Second, func() bool { return len(readOut(t, out)) == 2000 }, "the queued points delivered")
	send(10_000) // sink up
	m, err := p.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	ok := harness.Sum(m, "flowd_udp_datagrams_total", "result=ok")
	rejected := harness.Sum(m, "flowd_udp_datagrams_total", "result=rejected")
	dropped := harness.Sum(m, "flowd_udp_datagrams_total", "result=dropped")
	droppedPts := harness.Sum(m, "flowd_points_dropped_total", "component=source.in", "reason=full")
	if int(ok+rejected+dropped) != seq+bad || int(rejected) != bad || dropped != droppedPts || dropped < 1 {
		t.Fatalf("sent %d (%d malformed): ok %v + rejected %v + dropped %v (points dropped full %v)", seq+bad, bad, ok, rejected, dropped, droppedPts)
	}
	harness.Eventually(t, 30*time.Second, func() bool { return float64(len(readOut(t, out))) == ok }, "every point taken delivered")
	seen := map[int]bool{}
	for _, s := range readOut(t, out) {
		if seen[s] {
			t.Fatalf("seq %d delivered twice", s)
		}
		seen[s] = true
	}
	// The source received every datagram: what it rejected and dropped
	// itself counts as received, so in = delivered + dropped.
	received := metric(t, p, "flowd_points_received_total", "component=source.in")
	delivered := metric(t, p, "flowd_points_delivered_total", "sink=out")
	if received != ok+rejected+dropped || delivered != ok {
		t.Errorf("received %v, delivered %v, datagrams ok %v + rejected %v + dropped %v", received, delivered, ok, rejected, dropped)
	}
	t.Logf("sent %d: ok %v, rejected %v, dropped %v", seq+bad, ok, rejected, dropped)
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// Datagrams that do not decode reach the dead-letter sink even when no good
// datagram follows to carry them into the pipeline.
func TestUDPDeadLettersWithoutGoodDatagrams(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	port := harness.FreePort(t)
	cfg := harness.WriteFile(t, dir, "udp.hcl", fmt.Sprintf(`pipeline "udp" {
  dead_letter = sink.dead
  source "udp" "in" {
    listen = "127.0.0.1:%d"
  }
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
  }
  sink "file" "dead" {
    path = %q
  }
}
`, port, out, out+".dead"))
	p := harness.Start(t, "--data-dir", filepath.Join(dir, "data"), cfg)
	harness.Eventually(t, 10*time.Second, func() bool { return readyzLines(t, p, "source.in") == "" }, "the udp source to listen")
	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	type dead struct {
		Attrs map[string]string `json:"attrs"`
	}
	for i := 1; i <= 3; i++ {
		conn.Write([]byte(`{"asset":"a","tag":`))
		harness.Eventually(t, 10*time.Second, func() bool { return len(harness.ReadJSONL[dead](t, out+".dead")) == i }, "dead letter %d", i)
	}
	for _, d := range harness.ReadJSONL[dead](t, out+".dead") {
		if d.Attrs["dead_letter_reason"] != "decode" || d.Attrs["udp_from"] == "" {
			t.Errorf("dead letter attrs %v", d.Attrs)
		}
	}
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}
