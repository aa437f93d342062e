package e2e

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
)

// BenchmarkKafkaThroughput runs flowd (sim source, fast) into the local Kafka
// broker and reports points/s, flowd's CPU (cores, from its rusage) and peak
// RSS. The broker runs on the same machine and shares its cores.
//
//	go test ./e2e -run '^$' -bench KafkaThroughput -benchtime 1x
func BenchmarkKafkaThroughput(b *testing.B) {
	brokers := harness.Require(b, "FLOWD_TEST_KAFKA")
	for _, tc := range []struct {
		format string
		count  int
		batch  int
		keyBy  string
	}{
		{"json", 1_000_000, 1000, "asset_tag"},
		{"json", 1_000_000, 5000, "asset_tag"},
		{"json_batch", 3_000_000, 1000, "none"},
		{"json_batch", 3_000_000, 5000, "none"},
	} {
		b.Run(fmt.Sprintf("%s/batch=%d", tc.format, tc.batch), func(b *testing.B) {
			for b.Loop() {
				topic := kafkaTopicB(b, brokers, 6)
				dir := b.TempDir()
				cfg := harness.WriteFile(b, dir, "bench.hcl", fmt.Sprintf(`
pipeline "bench" {
  source "sim" "plant" {
    assets     = 50
    tags       = 100
    count      = %d
    fast       = true
    batch_size = %d
  }
  sink "kafka" "out" {
    inputs  = [source.plant]
    brokers = [%q]
    topic   = %q
    format  = %q
    key_by  = %q
  }
}
`, tc.count, tc.batch, brokers, topic, tc.format, tc.keyBy))
				start := time.Now()
				p := harness.Launch(b, cfg)
				if code := p.Wait(10 * time.Minute); code != 0 {
					b.Fatalf("flowd exit %d\n%s", code, p.Stderr.String())
				}
				wall := time.Since(start).Seconds()
				if n := stoppedCount(p.Stderr.String(), "points_delivered"); n != tc.count {
					b.Fatalf("delivered %d of %d", n, tc.count)
				}
				ru := p.Cmd.ProcessState.SysUsage().(*syscall.Rusage)
				cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
				b.ReportMetric(float64(tc.count)/wall, "points/s")
				b.ReportMetric(cpu/wall, "cpu_cores")
				b.ReportMetric(float64(ru.Maxrss)/1024, "rss_peak_MB")
				b.Logf("%s: %d points in %.2fs = %.0f points/s; flowd CPU %.2fs (%.2f cores), peak RSS %.0f MB (sim batch_size %d)",
					tc.format, tc.count, wall, float64(tc.count)/wall, cpu, cpu/wall, float64(ru.Maxrss)/1024, tc.batch)
			}
		})
	}
}
