package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
)

// udpRcvbufErrors reads the kernel's count of UDP datagrams dropped for a
// full receive buffer (host-wide), so a test can tell its own drops from the
// kernel's.
func udpRcvbufErrors(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return -1
	}
	var head []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "Udp: ") {
			continue
		}
		f := strings.Fields(l)
		if head == nil {
			head = f
			continue
		}
		for i, h := range head {
			if h == "RcvbufErrors" && i < len(f) {
				n, _ := strconv.ParseInt(f[i], 10, 64)
				return n
			}
		}
	}
	return -1
}

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
	harness.Eventually(t, 10*time.Second, func() bool { return readyzBody(t, p, "source.in") == "" }, "the udp source to listen")
	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	kernelBefore := udpRcvbufErrors(t)
	seq, bad := 0, 0
	send := func(n int) {
		for range n {
			if seq%500 == 499 {
				conn.Write([]byte(`{"asset":"a","tag":`)) // malformed
				bad++
			}
			fmt.Fprintf(conn, `{"asset":"a","tag":"t%d","value":%d}`, seq%50, seq)
			seq++
			if seq%20 == 0 {
				time.Sleep(time.Millisecond) // within the kernel's receive buffer
			}
		}
	}
	datagrams := func() float64 { return metric(t, p, "flowd_udp_datagrams_total", "component=source.in") }
	send(10_000) // sink down: 2,000 queued, the rest dropped
	harness.Eventually(t, 20*time.Second, func() bool { return datagrams() == float64(seq+bad) }, "every datagram counted")
	unblock()
	harness.Eventually(t, 30*time.Second, func() bool { return len(readOut(t, out)) == 2000 }, "the queued points delivered")
	send(10_000) // sink up
	harness.Eventually(t, 30*time.Second, func() bool { return datagrams() == float64(seq+bad) }, "every datagram counted")
	m, err := p.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	ok := harness.Sum(m, "flowd_udp_datagrams_total", "result=ok")
	rejected := harness.Sum(m, "flowd_udp_datagrams_total", "result=rejected")
	dropped := harness.Sum(m, "flowd_udp_datagrams_total", "result=dropped")
	droppedPts := harness.Sum(m, "flowd_points_dropped_total", "component=source.in", "reason=full")
	if kernel := udpRcvbufErrors(t); kernel != kernelBefore {
		t.Logf("the kernel dropped %d datagrams host-wide during the test", kernel-kernelBefore)
	}
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
	received := metric(t, p, "flowd_points_received_total", "component=source.in")
	delivered := metric(t, p, "flowd_points_delivered_total", "sink=out")
	if received != ok || delivered != ok {
		t.Errorf("received %v, delivered %v, datagrams ok %v", received, delivered, ok)
	}
	t.Logf("sent %d: ok %v, rejected %v, dropped %v", seq+bad, ok, rejected, dropped)
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}
