package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
)

// BenchmarkKafkaSourceReplicas: 600,000 points (json_batch records of 100)
// on 6 partitions, read by 1, 2 and 3 replicas in one group into discard.
// Reports points/s (wall, until the group committed the end) and points per
// flowd CPU-second (utime+stime of all replicas): the per-core rate, which
// should stay flat as replicas are added. Broker and replicas share the
// machine's cores.
//
//	go test ./e2e -run '^$' -bench KafkaSourceReplicas -benchtime 1x
func BenchmarkKafkaSourceReplicas(b *testing.B) {
	brokers := harness.Require(b, "FLOWD_TEST_KAFKA")
	sp := seqProducer{parts: 6, per: 100, perPart: 100_000}
	topic := kafkaTopicB(b, brokers, int32(sp.parts))
	sp.produceB(b, brokers, topic)
	total := float64(sp.parts * sp.perPart)
	end := int64(sp.recordsPerPart())
	for _, n := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				group := fmt.Sprintf("%s-bench-%d-%d-%d", topic, n, i, time.Now().UnixNano())
				dir := b.TempDir()
				cfg := harness.WriteFile(b, dir, "r.hcl", fmt.Sprintf(`pipeline "cloud" {
  source "kafka" "in" {
    brokers = [%q]
    topics  = [%q]
    group   = %q
  }
  sink "discard" "out" {
    inputs = [source.in]
  }
}
`, brokers, topic, group))
				var ps []*harness.Proc
				for range n {
					ps = append(ps, harness.Start(b, cfg))
				}
				start := time.Now()
				var base int64
				for _, p := range ps {
					base += cpuTicks(p.Cmd.Process.Pid)
				}
				deadline := time.Now().Add(5 * time.Minute)
				for {
					offs := groupOffsetsB(b, brokers, group, topic)
					done := true
					for p := range sp.parts {
						done = done && offs[int32(p)] == end
					}
					if done {
						break
					}
					if time.Now().After(deadline) {
						b.Fatalf("not committed to the end after 5 minutes: %v", offs)
					}
					time.Sleep(100 * time.Millisecond)
				}
				wall := time.Since(start).Seconds()
				var ticks int64
				for _, p := range ps {
					ticks += cpuTicks(p.Cmd.Process.Pid)
				}
				cpu := float64(ticks-base) / 100
				for _, p := range ps {
					p.Stop(30 * time.Second)
				}
				b.ReportMetric(total/wall, "points/s")
				b.ReportMetric(total/cpu, "points/cpu-s")
				b.ReportMetric(cpu, "cpu-s")
			}
		})
	}
}
