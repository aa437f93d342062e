package e2e

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/flowd/flowd/e2e/harness"
	"github.com/flowd/flowd/sinks/cassandra"
	"github.com/twmb/franz-go/pkg/kgo"
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

// BenchmarkKafkaSourceCassandraVsRaw: the cloud tier's write path measured
// against the database. The same 300,000 tracker points (60,000 trackers ×
// 5 tags, distinct ts) are written twice into fresh keyspaces of the local
// Cassandra node, same schema (sinks/cassandra's CQL), consistency ONE:
//
//   - raw: a minimal gocql loader, 64 goroutines executing the prepared
//     INSERT (token-aware, no flowd), planned as the sink plans: rows of one
//     partition in unlogged batches of up to 100, a lone row on its own. In
//     the trackers' shape every partition (tracker, tag, day) holds one row
//     a minute, so both send one row per request. It runs before and after
//     flowd (two keyspaces); the faster run is the yardstick;
//   - flowd: one replica, kafka source (json_batch records of 100 points on 6
//     partitions) → cassandra sink with its defaults.
//
// Reports the rates (flowd's from its first commit to its last, so the
// group join is not counted), flowd's over the faster raw run (ratio) and
// flowd's CPU per point.
//
// Two cases: "shared", every process on all the machine's cores, and
// "pinned", Cassandra alone on CPU 0 and the loader, flowd and the Kafka
// broker feeding flowd on CPU 1 (pinServer): the database's core is then
// the limit, as on a cluster whose database has nodes of its own, and the
// ratio shows whether flowd keeps up with it.
//
//	go test ./e2e -run '^$' -bench KafkaSourceCassandraVsRaw -benchtime 1x
func BenchmarkKafkaSourceCassandraVsRaw(b *testing.B) {
	brokers := harness.Require(b, "FLOWD_TEST_KAFKA")
	addr := harness.Require(b, "FLOWD_TEST_CASSANDRA")
	b.Run("shared", func(b *testing.B) { cassandraVsRaw(b, brokers, addr) })
	b.Run("pinned", func(b *testing.B) {
		pinServer(b, addr, brokers)
		cassandraVsRaw(b, brokers, addr)
	})
}

func cassandraVsRaw(b *testing.B, brokers, addr string) {
	const trackers, tags = 60_000, 5
	total := trackers * tags
	base := time.Now().Add(-time.Hour).Truncate(time.Hour)
	pointTS := func(i int) time.Time { return base.Add(time.Duration(i) * time.Millisecond) }

	c := gocql.NewCluster(addr)
	c.Logger = gocql.NewLogger(gocql.LogLevelNone)
	c.Consistency = gocql.One
	c.Timeout = 12 * time.Second
	c.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.RoundRobinHostPolicy())
	sess, err := c.CreateSession()
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close()

	for b.Loop() {
		run := time.Now().UnixNano()
		// The raw loader runs before and after flowd, each into its own
		// keyspace; the faster of the two is the yardstick (the node's load
		// from other work moves between the phases).
		rawLoad := func(ks string) (rate, cpu float64, nbatch int64) {
			for _, q := range []string{cassandra.KeyspaceCQL(ks, nil), cassandra.TableCQL(ks, "points", 24*time.Hour)} {
				if err := sess.Query(q).Consistency(gocql.All).Exec(); err != nil {
					b.Fatal(err)
				}
			}
			insert := cassandra.InsertCQL(ks, "points", 0)
			// The loader plans its requests as the sink does: rows grouped by
			// partition (asset, tag, bucket), a partition's rows in unlogged
			// batches of at most 100, a lone row as a plain INSERT.
			bucketMS := (24 * time.Hour).Milliseconds()
			type row struct {
				asset, tag string
				bucket     int64
				i          int
			}
			planned := make([]row, total)
			for i := range total {
				planned[i] = row{fmt.Sprintf("tracker-%d", i/tags), fmt.Sprintf("t%d", i%tags), cassandra.BucketOf(pointTS(i).UnixMilli(), bucketMS), i}
			}
			slices.SortFunc(planned, func(a, b row) int {
				return cmp.Or(strings.Compare(a.asset, b.asset), strings.Compare(a.tag, b.tag), cmp.Compare(a.bucket, b.bucket))
			})
			var units [][]row
			for from := 0; from < len(planned); {
				to := from + 1
				for to < len(planned) && to-from < 100 && planned[to].asset == planned[from].asset && planned[to].tag == planned[from].tag && planned[to].bucket == planned[from].bucket {
					to++
				}
				units = append(units, planned[from:to])
				from = to
			}
			args := func(r row) []any {
				return []any{r.asset, r.tag, time.UnixMilli(r.bucket), pointTS(r.i), float64(r.i) + 0.5,
					gocql.UnsetValue, gocql.UnsetValue, gocql.UnsetValue, "good", int64(0), gocql.UnsetValue}
			}
			const workers = 64
			var wg sync.WaitGroup
			var failed atomic.Int64
			var batches atomic.Int64
			start := time.Now()
			cpu0 := selfCPU()
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for u := w; u < len(units); u += workers {
						var err error
						if rs := units[u]; len(rs) == 1 {
							err = sess.Query(insert, args(rs[0])...).Idempotent(true).Exec()
						} else {
							bt := sess.Batch(gocql.UnloggedBatch)
							for _, r := range rs {
								bt.Entries = append(bt.Entries, gocql.BatchEntry{Stmt: insert, Args: args(r), Idempotent: true})
							}
							err = bt.Exec()
							batches.Add(1)
						}
						if err != nil {
							failed.Add(int64(len(units[u])))
						}
					}
				}()
			}
			wg.Wait()
			rawWall := time.Since(start).Seconds()
			rawCPU := selfCPU() - cpu0
			if failed.Load() > 0 {
				b.Fatalf("raw loader: %d writes failed", failed.Load())
			}
			return float64(total) / rawWall, rawCPU, batches.Load()
		}
		ks, ks2 := fmt.Sprintf("bench_raw_%d", run), fmt.Sprintf("bench_raw2_%d", run)
		rawRate1, rawCPU, rawBatches := rawLoad(ks)

		// flowd: kafka source → cassandra sink
		topic := kafkaTopicB(b, brokers, 6)
		pcl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ProducerBatchMaxBytes(4<<20))
		if err != nil {
			b.Fatal(err)
		}
		var recs []*kgo.Record
		for r := 0; r < total/100; r++ {
			var buf bytes.Buffer
			buf.WriteByte('[')
			for i := r * 100; i < (r+1)*100; i++ {
				if i > r*100 {
					buf.WriteByte(',')
				}
				fmt.Fprintf(&buf, `{"asset":"tracker-%d","tag":"t%d","value":%d.5,"quality":"good","ts":%d}`, i/tags, i%tags, i, pointTS(i).UnixMilli())
			}
			buf.WriteByte(']')
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(r)), Value: buf.Bytes()})
		}
		if err := pcl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
		pcl.Close()
		ends := map[int32]int64{}
		for _, r := range recs {
			ends[r.Partition] = max(ends[r.Partition], r.Offset+1)
		}
		group := topic + "-group"
		fks := fmt.Sprintf("bench_flowd_%d", run)
		cfg := harness.WriteFile(b, b.TempDir(), "c.hcl", fmt.Sprintf(`pipeline "cloud" {
  latency_slo = "1h"
  source "kafka" "in" {
    brokers = [%q]
    topics  = [%q]
    group   = %q
  }
  sink "cassandra" "store" {
    inputs        = [source.in]
    hosts         = [%q]
    keyspace      = %q
    consistency   = "ONE"
    create_schema = true
  }
}
`, brokers, topic, group, addr, fks))
		p := harness.Start(b, cfg)
		pid := p.Cmd.Process.Pid
		var t0 time.Time
		var p0 int64
		var ticks0 int64
		deadline := time.Now().Add(10 * time.Minute)
		for {
			offs := groupOffsetsB(b, brokers, group, topic)
			var done int64
			all := true
			for part, end := range ends {
				done += offs[part]
				all = all && offs[part] == end
			}
			if t0.IsZero() && done > 0 {
				t0, p0, ticks0 = time.Now(), done*100, cpuTicks(pid)
			}
			if all {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("flowd did not commit every record within 10 minutes: %v of %v", offs, ends)
			}
			time.Sleep(100 * time.Millisecond)
		}
		flowdWall := time.Since(t0).Seconds()
		flowdCPU := float64(cpuTicks(pid)-ticks0) / 100
		flowdRate := float64(int64(total)-p0) / flowdWall
		p.Stop(30 * time.Second)
		// A full count can time out on a busy node: it is tried three times.
		var rows int64
		for try := 0; try < 3; try++ {
			if err = sess.Query(fmt.Sprintf("SELECT COUNT(*) FROM %s.points", fks)).Consistency(gocql.One).Scan(&rows); err == nil {
				break
			}
		}
		if err != nil {
			b.Errorf("count: %v", err)
		} else if rows != int64(total) {
			b.Errorf("flowd wrote %d rows, want %d", rows, total)
		}
		rawRate2, rawCPU2, _ := rawLoad(ks2)
		rawRate := max(rawRate1, rawRate2)
		rawCPU = min(rawCPU, rawCPU2)
		b.ReportMetric(rawRate1, "raw-before-rows/s")
		b.ReportMetric(rawRate2, "raw-after-rows/s")
		b.ReportMetric(float64(rawBatches), "raw-batches")
		b.ReportMetric(rawCPU/float64(total)*1e6, "raw-cpu-µs/row")
		b.ReportMetric(flowdRate, "flowd-points/s")
		b.ReportMetric(flowdRate/rawRate, "ratio")
		b.ReportMetric(flowdCPU/float64(int64(total)-p0)*1e6, "flowd-cpu-µs/point")
		for _, k := range []string{ks, ks2, fks} {
			sess.Query("DROP KEYSPACE IF EXISTS " + k).Exec()
		}
	}
}

// selfCPU is this process's user+system CPU time in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
