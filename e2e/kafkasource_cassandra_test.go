package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/flowd/flowd/e2e/harness"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/sinks/cassandra"
	dto "github.com/prometheus/client_model/go"
)

// cloudTier is a group of flowd replicas reading one topic with the kafka
// source and writing to one Cassandra keyspace.
type cloudTier struct {
	t                        *testing.T
	brokers, topic, group    string
	cassandra, keyspace, dir string
	deadFiles                []string
}

// start runs replica i. The sink is narrow (one request in flight, batches
// of 10 rows, no coalescing) so that Cassandra is the bottleneck and the
// replicas run with a backlog: points taken from Kafka wait for their write,
// as they do when a cloud tier falls behind. A kill then finds thousands of
// them held, which a replica committing offsets ahead of its writes would
// lose.
func (c *cloudTier) start(i int) *harness.Proc {
	dead := filepath.Join(c.dir, fmt.Sprintf("dead-%d.jsonl", i))
	c.deadFiles = append(c.deadFiles, dead)
	cfg := harness.WriteFile(c.t, c.dir, fmt.Sprintf("r%d.hcl", i), kafkaGroupPipeline(c.brokers, c.topic, c.group,
		`    session_timeout  = "6s"
    batch_size       = 1000
    max_poll_records = 200
    commit_interval  = "1s"
    max_in_flight    = 5000`,
		fmt.Sprintf(`  sink "cassandra" "history" {
    inputs          = [source.in]
    hosts           = [%q]
    keyspace        = %q
    create_schema   = true
    max_in_flight   = 1
    max_batch_rows  = 10
    coalesce_points = 0
  }
  sink "file" "dead" {
    path = %q
  }
`, c.cassandra, c.keyspace, dead)))
	return harness.Start(c.t, cfg)
}

// stop ends a replica with SIGTERM and returns the rows its Cassandra sink
// wrote: the sink's delivered count in the final summary, after the drain.
// The last scrape of flowd_cassandra_rows_written_total before the signal
// cannot be above it.
func (c *cloudTier) stop(name string, p *harness.Proc) int64 {
	t := c.t
	m, err := p.Metrics()
	if err != nil {
		t.Fatalf("%s: scrape before stopping: %v", name, err)
	}
	scraped := harness.Sum(m, "flowd_cassandra_rows_written_total")
	p.Signal(syscall.SIGTERM)
	in, delivered, dropped := finalCounts(t, p, time.Minute)
	t.Logf("%s: %d points in, %d rows written (%.0f at the last scrape), %d dropped", name, in, delivered, scraped, dropped)
	if dropped != 0 {
		t.Errorf("%s dropped %d points", name, dropped)
	}
	if scraped > float64(delivered) {
		t.Errorf("%s: flowd_cassandra_rows_written_total was %.0f before the stop, but the sink delivered %d in all", name, scraped, delivered)
	}
	return delivered
}

// committedOffsets are a replica's flowd_kafka_committed_offset series for
// topic, by partition.
func committedOffsets(m map[string]*dto.MetricFamily, topic string) map[int32]int64 {
	out := map[int32]int64{}
	f := m["flowd_kafka_committed_offset"]
	if f == nil {
		return out
	}
	for _, s := range f.Metric {
		var tp, part string
		for _, l := range s.GetLabel() {
			switch l.GetName() {
			case "topic":
				tp = l.GetValue()
			case "partition":
				part = l.GetValue()
			}
		}
		if n, err := strconv.Atoi(part); err == nil && tp == topic {
			out[int32(n)] = int64(s.GetGauge().GetValue())
		}
	}
	return out
}

// killed is what the last scrape of the killed replica showed.
type killed struct {
	rows, inFlight float64         // rows written, points taken and not yet acknowledged
	committed      map[int32]int64 // offsets committed, by partition
}

// killHolding SIGKILLs p while it holds at least minHeld points it took from
// Kafka and has not yet written, after it committed some offsets, at a
// moment its last scrape accounts for every offset it committed: it scrapes
// /metrics, freezes p (SIGSTOP), and kills it only if the group's committed
// offsets of p's partitions are still those the scrape shows; otherwise a
// commit slipped in between and p runs on (SIGCONT) until the next try. Rows
// are counted as written before their offsets are committed, so the scraped
// count covers every row that no later owner of the partition writes again.
func killHolding(t *testing.T, p *harness.Proc, brokers, group, topic string, minHeld float64) (k killed) {
	harness.Eventually(t, 2*time.Minute, func() bool {
		m, err := p.Metrics()
		if err != nil {
			return false
		}
		k = killed{harness.Sum(m, "flowd_cassandra_rows_written_total"), harness.Sum(m, "flowd_kafka_in_flight_points"), committedOffsets(m, topic)}
		if k.inFlight < minHeld || harness.Sum(m, "flowd_kafka_committed_offset") == 0 {
			return false
		}
		p.Signal(syscall.SIGSTOP)
		if !sameOffsets(k.committed, groupOffsets(t, brokers, group, topic)) {
			p.Signal(syscall.SIGCONT)
			return false
		}
		p.Kill()
		return true
	}, "the replica to kill to commit offsets and hold %.0f points not yet written; last scrape %+v", minHeld, &k)
	return k
}

// sameOffsets: every partition of mine is at the same offset in group.
func sameOffsets(mine, group map[int32]int64) bool {
	for p, o := range mine {
		if group[p] != o {
			return false
		}
	}
	return true
}

// checkProducedRows reads the whole table back, paged, and checks that each
// row is a point sp produced, exactly: asset p<partition>, tag s, ts the
// point's, its bucket, value k as a bigint (no other value column), quality
// good, status 0, no attrs; and that every produced point has its row. It
// returns the number of distinct rows. Duplicate writes are invisible here (a
// row is keyed by asset, tag, bucket and ts; a second write overwrites it).
func checkProducedRows(t *testing.T, sess *gocql.Session, ks string, sp seqProducer) (distinct int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	seen := make([][]bool, sp.parts)
	for p := range seen {
		seen[p] = make([]bool, sp.perPart)
	}
	it := sess.Query(fmt.Sprintf(`SELECT asset, tag, bucket, ts, value_double, value_bigint, value_boolean, value_text, quality, status, attrs
		FROM %s.points`, ks)).PageSize(5000).IterContext(ctx)
	var (
		asset, tag string
		bucket     time.Time
		rw         row
		attrs      map[string]string
		bad, rows  int
	)
	for it.Scan(&asset, &tag, &bucket, &rw.ts, &rw.d, &rw.i, &rw.b, &rw.s, &rw.quality, &rw.status, &attrs) {
		rows++
		p, k, err := producedPoint(sp, seen, asset, tag, bucket, rw, attrs)
		if err != nil {
			if bad++; bad <= 10 {
				t.Errorf("row %s/%s at %s: %v", asset, tag, rw.ts.UTC().Format(time.RFC3339Nano), err)
			}
		} else {
			seen[p][k] = true
			distinct++
		}
		rw, attrs = row{}, nil
	}
	if err := it.Close(); err != nil {
		t.Fatalf("read %s.points back: %v", ks, err)
	}
	var missing []string
	for p := range seen {
		for k, ok := range seen[p] {
			if !ok {
				missing = append(missing, fmt.Sprintf("p%d/%d", p, k))
			}
		}
	}
	t.Logf("read back %d rows: %d produced points present exactly, %d rows not as produced, %d points without their exact row", rows, distinct, bad, len(missing))
	if bad > 0 || len(missing) > 0 {
		t.Fatalf("%d of %d produced points without their exact row (first %v), %d rows not as produced",
			len(missing), sp.parts*sp.perPart, missing[:min(5, len(missing))], bad)
	}
	return distinct
}

// producedPoint finds the produced point a row stands for (partition p,
// value k) and checks the row holds it exactly and is its first.
func producedPoint(sp seqProducer, seen [][]bool, asset, tag string, bucket time.Time, rw row, attrs map[string]string) (p, k int, err error) {
	n, ok := strings.CutPrefix(asset, "p")
	p, perr := strconv.Atoi(n)
	if !ok || perr != nil || p < 0 || p >= sp.parts || tag != "s" {
		return 0, 0, fmt.Errorf("no partition produced asset %q tag %q", asset, tag)
	}
	k = int(rw.ts.Sub(sp.ts) / time.Millisecond)
	if k < 0 || k >= sp.perPart || !rw.ts.Equal(sp.tsOf(k)) {
		return 0, 0, fmt.Errorf("no point of %s was produced at this ts", asset)
	}
	if seen[p][k] {
		return 0, 0, fmt.Errorf("point %d of %s read twice", k, asset)
	}
	day := (24 * time.Hour).Milliseconds()
	if want := cassandra.BucketOf(rw.ts.UnixMilli(), day); bucket.UnixMilli() != want {
		return 0, 0, fmt.Errorf("bucket %s, want %s", bucket.UTC(), time.UnixMilli(want).UTC())
	}
	if err := rw.matches(engine.Point{Value: engine.Int(int64(k))}, sp.tsOf(k)); err != nil {
		return 0, 0, fmt.Errorf("point %d: %w", k, err)
	}
	if len(attrs) > 0 {
		return 0, 0, fmt.Errorf("attrs %v, want none", attrs)
	}
	return p, k, nil
}

// TestKafkaSourceGroupKillCassandra: the cloud tier's scale-out into the
// real Cassandra. 120,000 points (1,000,000 under FLOWD_SOAK), each with its
// own ts, in records of 100 on 6 partitions, are produced over 5 s (30 s)
// while 3 replicas in one group write them to a fresh keyspace. Once 30 % is
// produced and replica 2 has committed offsets and holds at least 1,000
// points not yet written, it is SIGKILLed and a 4th replica started. When
// the group has committed every partition to its end the replicas stop
// (SIGTERM) and the whole table is read back: every point present exactly as
// produced, nothing else. The rows the replicas wrote (the killed one's at
// its last scrape) minus the distinct rows are the duplicates: a lower
// bound, never negative.
func TestKafkaSourceGroupKillCassandra(t *testing.T) {
	brokers := harness.Require(t, "FLOWD_TEST_KAFKA")
	addr := harness.Require(t, "FLOWD_TEST_CASSANDRA")
	total, spread := 120_000, 5*time.Second
	if os.Getenv("FLOWD_SOAK") != "" {
		total, spread = 1_000_000, 30*time.Second
	}
	// Each partition's points straddle a midnight: two buckets.
	midnight := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	sp := seqProducer{parts: 6, per: 100, perPart: total / 6, ts: midnight.Add(-time.Duration(total/12) * time.Millisecond)}
	sess := cassandraSession(t, addr)
	topic := kafkaTopic(t, brokers, int32(sp.parts))
	c := &cloudTier{t: t, brokers: brokers, topic: topic, group: topic + "-group",
		cassandra: addr, keyspace: testKeyspace(t, sess, "e2e_kafka_kill"), dir: t.TempDir()}
	replicas := []*harness.Proc{c.start(1), c.start(2), c.start(3)}

	var produced atomic.Int64 // percent
	under, prodDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(prodDone)
		sp.produce(t, brokers, topic, spread, func(f float64) {
			if produced.Swap(int64(f*100)) < 30 && f >= 0.3 {
				close(under)
			}
		})
	}()
	select {
	case <-under:
	case <-prodDone:
	}
	k := killHolding(t, replicas[1], brokers, c.group, topic, 1000)
	end, ends := int64(sp.recordsPerPart()), map[int32]int64{}
	for p := range sp.parts {
		ends[int32(p)] = end
	}
	t.Logf("SIGKILL replica 2 with %d%% produced: %.0f rows written, %.0f points held, offsets committed %v (end %d)",
		produced.Load(), k.rows, k.inFlight, k.committed, end)
	if sameOffsets(k.committed, ends) {
		t.Fatal("replica 2 had committed its partitions to the end before the kill: the test would prove nothing")
	}
	replicas = []*harness.Proc{replicas[0], replicas[2], c.start(4)}
	<-prodDone
	harness.Eventually(t, 10*time.Minute, func() bool {
		return sameOffsets(ends, groupOffsets(t, brokers, c.group, topic))
	}, "offsets committed to the end (%d records per partition)", end)
	written := int64(k.rows)
	for i, r := range replicas {
		written += c.stop([]string{"replica 1", "replica 3", "replica 4"}[i], r)
	}
	for _, f := range c.deadFiles {
		if b, err := os.ReadFile(f); err == nil && len(b) > 0 {
			t.Errorf("%s holds dead letters:\n%s", filepath.Base(f), b[:min(len(b), 1000)])
		}
	}
	distinct := checkProducedRows(t, sess, c.keyspace, sp)
	dups := written - int64(distinct)
	t.Logf("%d points produced, %d rows in Cassandra, %d rows written by the replicas: at least %d duplicates (rewritten after the kill)",
		sp.parts*sp.perPart, distinct, written, dups)
	if dups < 0 {
		t.Errorf("the replicas wrote %d rows, fewer than the %d distinct rows in the table: a rows-written count is short", written, distinct)
	}
}
