package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
)

// Mosquitto → flowd → discard. Run with
//
//	go test ./e2e -run '^$' -bench MQTT -benchtime 1x
//
// backlog: messages queued in flowd's broker session while it was stopped,
// then drained as fast as flowd takes them (no publisher competing for the
// CPU): flowd's maximum. rate: live publishers at a fixed total rate.
// Reported: values/s into flowd, flowd's CPU (cores, from /proc/PID/stat)
// and peak RSS.
func BenchmarkMQTTIngest(b *testing.B) {
	broker := harness.Require(b, "FLOWD_TEST_MQTT")
	n := 200000
	if v, err := strconv.Atoi(os.Getenv("FLOWD_BENCH_MQTT_N")); err == nil && v > 0 {
		n = v
	}
	for _, conns := range []int{1, 4} {
		b.Run(fmt.Sprintf("backlog/connections=%d", conns), func(b *testing.B) {
			for range b.N {
				benchBacklog(b, broker, n, conns)
			}
		})
	}
	for _, rate := range []int{20000, 0} {
		for _, conns := range []int{1, 4} {
			name := fmt.Sprintf("rate=%d/connections=%d", rate, conns)
			if rate == 0 {
				name = fmt.Sprintf("rate=max/connections=%d", conns)
			}
			b.Run(name, func(b *testing.B) {
				for range b.N {
					benchRate(b, broker, rate, 20*time.Second, conns)
				}
			})
		}
	}
}

func benchConfig(b *testing.B, broker, run string, conns int) string {
	dir := b.TempDir()
	extra := "    batch_size = 1000\n    receive_maximum = 2000\n    session_expiry = \"10m\"\n"
	if conns > 1 {
		extra += fmt.Sprintf("    group = \"bench\"\n    connections = %d\n", conns)
	}
	return harness.WriteFile(b, dir, "p.hcl", fmt.Sprintf(`pipeline "p" {
  source "mqtt" "in" {
    broker    = %q
    topics    = ["bench/%s/#"]
    client_id = %q
%s  }
  sink "discard" "null" {
    inputs = [source.in]
  }
}`, broker, run, run, extra))
}

// sampler records peak RSS of a process until stopped.
type sampler struct {
	stop chan struct{}
	done chan struct{}
	peak int64
}

func sample(pid int) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			s.peak = max(s.peak, rssKB(pid))
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) end() int64 { close(s.stop); <-s.done; return s.peak }

func received(b *testing.B, p *harness.Proc) int64 {
	st, err := p.Status()
	if err != nil {
		b.Fatal(err)
	}
	for _, pl := range st.Pipelines {
		for _, c := range pl.Components {
			if c.ID == "source.in" {
				return c.Received
			}
		}
	}
	return 0
}

func benchBacklog(b *testing.B, broker string, n, conns int) {
	run := fmt.Sprintf("backlog-%d-%d", conns, time.Now().UnixNano())
	cfg := benchConfig(b, broker, run, conns)
	// Create the sessions and subscriptions, then stop flowd.
	p := harness.Start(b, cfg)
	harness.Eventually(b, 30*time.Second, func() bool {
		st, err := p.Status()
		return err == nil && len(st.Pipelines) == 1 && st.Pipelines[0].Components[0].State == "connected"
	}, "connected")
	p.Stop(30 * time.Second)
	publishSeq(b, broker, "bench/"+run, 0, n, 4)
	p = harness.Start(b, cfg)
	pid := p.Cmd.Process.Pid
	rss := sample(pid)
	t0, c0 := time.Now(), cpuTicks(pid)
	harness.Eventually(b, 5*time.Minute, func() bool { return received(b, p) >= int64(n) }, "%d messages drained", n)
	secs, cpu := time.Since(t0).Seconds(), float64(cpuTicks(pid)-c0)/100
	peak := rss.end()
	p.Stop(30 * time.Second)
	b.ReportMetric(float64(n)/secs, "values/s")
	b.ReportMetric(cpu/secs, "cpu_cores")
	b.ReportMetric(float64(peak)/1024, "rss_peak_MB")
	b.ReportMetric(cpu*1e6/float64(n), "cpu_us/value")
}

// benchRate feeds mosquitto_pub (Mosquitto's own client, QoS 1, reading
// lines from stdin) at a total rate (0: as fast as it goes) for d, and
// measures what flowd takes in.
func benchRate(b *testing.B, broker string, rate int, d time.Duration, conns int) {
	mpub, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		b.Skip("mosquitto_pub not found: run e2e/services.sh up mosquitto")
	}
	u, err := url.Parse(broker)
	if err != nil {
		b.Fatal(err)
	}
	run := fmt.Sprintf("rate-%d-%d", conns, time.Now().UnixNano())
	cfg := benchConfig(b, broker, run, conns)
	p := harness.Start(b, cfg)
	harness.Eventually(b, 30*time.Second, func() bool {
		st, err := p.Status()
		return err == nil && st.Pipelines[0].Components[0].State == "connected"
	}, "connected")
	pid := p.Cmd.Process.Pid
	const publishers = 2
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	var sent atomic.Int64
	rss := sample(pid)
	t0, c0, r0 := time.Now(), cpuTicks(pid), received(b, p)
	for c := range publishers {
		cmd := exec.Command(mpub, "-h", u.Hostname(), "-p", u.Port(), "-V", "5", "-q", "1", "-M", "1000", "-l",
			"-i", fmt.Sprintf("%s-pub%d", run, c), "-t", fmt.Sprintf("bench/%s/%d", run, c))
		in, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cmd.Wait()
			defer in.Close()
			w := bufio.NewWriterSize(in, 64<<10)
			defer w.Flush()
			line := make([]byte, 0, 64)
			write := func(n int) bool {
				for range n {
					i := sent.Add(1)
					line = append(strconv.AppendInt(append(line[:0], `{"tag":"seq","value":`...), i, 10), '}', '\n')
					if _, err := w.Write(line); err != nil {
						return false
					}
				}
				return w.Flush() == nil
			}
			if rate <= 0 {
				for ctx.Err() == nil && write(1000) {
				}
				return
			}
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					if !write(rate / publishers / 100) {
						return
					}
				}
			}
		}()
	}
	<-ctx.Done()
	secs, cpu, got := time.Since(t0).Seconds(), float64(cpuTicks(pid)-c0)/100, received(b, p)-r0
	peak := rss.end()
	wg.Wait()
	p.Stop(30 * time.Second)
	if rate > 0 {
		b.ReportMetric(float64(sent.Load())/secs, "fed/s") // lines handed to mosquitto_pub
	}
	b.ReportMetric(float64(got)/secs, "values/s")
	b.ReportMetric(cpu/secs, "cpu_cores")
	b.ReportMetric(float64(peak)/1024, "rss_peak_MB")
}
