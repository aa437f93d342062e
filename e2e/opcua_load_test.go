package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
)

// procSample is a process's CPU time and memory at one moment.
type procSample struct {
	at        time.Time
	cpu       time.Duration // user + system
	rss, peak int64         // bytes
}

func sampleProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	s.cpu = time.Duration(ut+st) * time.Second / 100 // USER_HZ
	fh, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.rss = kb << 10
		case "VmHWM":
			s.peak = kb << 10
		}
	}
	return s, nil
}

// consecutivePorts finds n free loopback ports in a row.
func consecutivePorts(t *testing.T, n int) int {
	for try := 0; try < 50; try++ {
		base := harness.FreePort(t)
		ok := true
		for i := 1; i < n && ok; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no consecutive free ports")
	return 0
}

type loadResult struct {
	mode                    string
	tags                    int
	pointsPerSec            float64
	flowdCores, simCores    float64
	flowdRSSMB, flowdPeakMB float64
	simRSSMB                float64
	skipped, dropped        float64
}

// runOPCUALoad runs PLCs × assets × tags simulated tags changing at 1 Hz
// (half of them each second) in a `flowd sim plc` process, and a flowd that
// reads them all in mode into a discard sink; it measures both processes.
func runOPCUALoad(t *testing.T, mode string, plcs, assets, tags int, measure time.Duration) loadResult {
	dir := t.TempDir()
	base := consecutivePorts(t, plcs)
	sim := exec.Command(harness.Flowd(t), "sim", "plc", "--listen", fmt.Sprintf("opc.tcp://127.0.0.1:%d", base),
		"--plcs", strconv.Itoa(plcs), "--assets", strconv.Itoa(assets), "--tags", strconv.Itoa(tags), "--interval", "1s", "--change", "0.5")
	simOut, err := os.Create(filepath.Join(dir, "sim.log"))
	if err != nil {
		t.Fatal(err)
	}
	sim.Stdout, sim.Stderr = simOut, simOut
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Process.Kill(); sim.Wait() })
	var srcs, ins []string
	for i := 0; i < plcs; i++ {
		srcs = append(srcs, fmt.Sprintf(`
  source "opcua" "plc%d" {
    endpoint = "opc.tcp://127.0.0.1:%d"
    mode     = %q
    interval = "1s"
    browse {
      max_depth = 2
      include   = ["Asset*/*"]
    }
  }`, i+1, base+i, mode))
		ins = append(ins, fmt.Sprintf("source.plc%d", i+1))
	}
	cfg := harness.WriteFile(t, dir, "load.hcl", fmt.Sprintf(`
pipeline "load" {
  %s
  sink "discard" "null" {
    inputs = [%s]
  }
}
`, strings.Join(srcs, "\n"), strings.Join(ins, ", ")))
	for i := 0; i < plcs; i++ {
		harness.Eventually(t, 120*time.Second, func() bool {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err == nil {
				c.Close()
			}
			return err == nil
		}, "simulated PLC %d did not start", i+1)
	}
	p := harness.Start(t, "--data-dir", filepath.Join(dir, "data"), cfg)
	total := float64(plcs * assets * tags)
	harness.Eventually(t, 180*time.Second, func() bool {
		m, err := p.Metrics()
		return err == nil && harness.Sum(m, "flowd_opcua_connected") == float64(plcs) && harness.Sum(m, "flowd_opcua_points_total") >= total
	}, "flowd did not connect to every PLC and read every tag")
	time.Sleep(3 * time.Second) // past start-up (browse, subscription creation)
	m0, _ := p.Metrics()
	f0, _ := sampleProc(p.Cmd.Process.Pid)
	s0, _ := sampleProc(sim.Process.Pid)
	var maxRSS, simRSS int64
	deadline := time.Now().Add(measure)
	for time.Now().Before(deadline) {
		time.Sleep(time.Second)
		if f, err := sampleProc(p.Cmd.Process.Pid); err == nil {
			maxRSS = max(maxRSS, f.rss)
		}
		if s, err := sampleProc(sim.Process.Pid); err == nil {
			simRSS = max(simRSS, s.rss)
		}
	}
	m1, _ := p.Metrics()
	f1, _ := sampleProc(p.Cmd.Process.Pid)
	s1, _ := sampleProc(sim.Process.Pid)
	el := f1.at.Sub(f0.at).Seconds()
	r := loadResult{
		mode: mode, tags: plcs * assets * tags,
		pointsPerSec: (harness.Sum(m1, "flowd_points_delivered_total") - harness.Sum(m0, "flowd_points_delivered_total")) / el,
		flowdCores:   (f1.cpu - f0.cpu).Seconds() / el,
		simCores:     (s1.cpu - s0.cpu).Seconds() / el,
		flowdRSSMB:   float64(maxRSS) / (1 << 20),
		flowdPeakMB:  float64(f1.peak) / (1 << 20),
		simRSSMB:     float64(simRSS) / (1 << 20),
		skipped:      harness.Sum(m1, "flowd_opcua_skipped_polls_total") - harness.Sum(m0, "flowd_opcua_skipped_polls_total"),
		dropped:      harness.Sum(m1, "flowd_opcua_dropped_notifications_total"),
	}
	t.Logf("%-9s tags=%d points/s=%.0f | flowd: cpu=%.3f cores rss=%.0f MB (peak %.0f MB) | sim: cpu=%.3f cores rss=%.0f MB | skipped polls=%.0f dropped=%.0f (over %.0fs)",
		r.mode, r.tags, r.pointsPerSec, r.flowdCores, r.flowdRSSMB, r.flowdPeakMB, r.simCores, r.simRSSMB, r.skipped, r.dropped, el)
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Errorf("flowd exit code %d", code)
	}
	return r
}

// TestOPCUALoad is the short version run by make test: 1,000 tags for a few
// seconds in both modes, checking that every tag keeps arriving.
func TestOPCUALoad(t *testing.T) {
	for _, mode := range []string{"poll", "subscribe"} {
		t.Run(mode, func(t *testing.T) {
			r := runOPCUALoad(t, mode, 1, 5, 200, 5*time.Second)
			// poll delivers every tag each second, subscribe the half that changed
			want := 1000.0
			if mode == "subscribe" {
				want = 500
			}
			if r.pointsPerSec < want*0.6 {
				t.Errorf("%.0f points/s, want about %.0f", r.pointsPerSec, want)
			}
		})
	}
}

// TestOPCUALoadSoak is the benchmark of the issue: 5 PLCs × 17 assets ×
// 1,000 tags (85,000) at 1 Hz, half changing each second, in both modes
// (FLOWD_SOAK=1 go test ./e2e -run OPCUALoadSoak -v).
func TestOPCUALoadSoak(t *testing.T) {
	if os.Getenv("FLOWD_SOAK") == "" {
		t.Skip("set FLOWD_SOAK=1 to run the 85,000-tag benchmark")
	}
	d := 60 * time.Second
	if s := os.Getenv("FLOWD_SOAK_MEASURE"); s != "" {
		if v, err := time.ParseDuration(s); err == nil {
			d = v
		}
	}
	for _, mode := range []string{"poll", "subscribe"} {
		t.Run(mode, func(t *testing.T) {
			r := runOPCUALoad(t, mode, 5, 17, 1000, d)
			want := 85000.0
			if mode == "subscribe" {
				want = 42500
			}
			if r.pointsPerSec < want*0.9 {
				t.Errorf("%.0f points/s, want about %.0f", r.pointsPerSec, want)
			}
		})
	}
}
