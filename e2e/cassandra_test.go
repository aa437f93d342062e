package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/flowd/flowd/connectors/sim"
	"github.com/flowd/flowd/e2e/harness"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/sinks/cassandra"
)

// cassandraSession opens a session to the test node for reading back.
func cassandraSession(t testing.TB, addr string) *gocql.Session {
	t.Helper()
	c := gocql.NewCluster(addr)
	c.Consistency = gocql.One
	c.Timeout = 30 * time.Second
	c.ConnectTimeout = 20 * time.Second
	c.Logger = gocql.NewLogger(gocql.LogLevelNone)
	s, err := c.CreateSession()
	if err != nil {
		t.Fatalf("connect to Cassandra at %s: %v", addr, err)
	}
	t.Cleanup(s.Close)
	return s
}

// simRun is a sim source's shape, enough to regenerate what it emitted.
type simRun struct {
	assets, tags, steps int
	interval            time.Duration
}

func (r simRun) count() int { return r.assets * r.tags * r.steps }

// cassandraPipeline writes the sim run into keyspace ks.
func cassandraPipeline(addr, ks string, r simRun, extra string) string {
	return fmt.Sprintf(`pipeline "cass" {
  source "sim" "plant" {
    assets     = %d
    tags       = %d
    interval   = "%s"
    count      = %d
    fast       = true
    batch_size = 1000
  }
  sink "cassandra" "history" {
    inputs        = [source.plant]
    hosts         = ["%s"]
    keyspace      = "%s"
    create_schema = true
%s
  }
}
`, r.assets, r.tags, r.interval, r.count(), addr, ks, extra)
}

// checkCassandra reads every (asset, tag) partition back and compares each
// row with what the sim generator produces for the same config: the value
// and its type, the quality, and the timestamp (first sample + i × interval,
// the same first sample for every tag).
func checkCassandra(t *testing.T, sess *gocql.Session, ks string, r simRun, from, to time.Time) {
	t.Helper()
	g := sim.NewGenerator(sim.Config{Assets: r.assets, Tags: r.tags, Interval: r.interval, ChangeRatio: 1, Seed: 1, AssetPrefix: "asset"})
	per := g.PointsPerStep()
	want := make([][]engine.Point, per) // by index asset*tags+tag, one point per step
	for step := 0; step < r.steps; step++ {
		pts := g.Fill(nil, 0, per, 0)
		for i := range pts {
			want[i] = append(want[i], pts[i])
		}
		g.Advance()
	}
	day := (24 * time.Hour).Milliseconds()
	var buckets []int64
	for b := cassandra.BucketOf(from.UnixMilli(), day); b <= to.UnixMilli(); b += day {
		buckets = append(buckets, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var first time.Time
	rows, bad := 0, 0
	for i := range want {
		asset, tag := want[i][0].Asset, want[i][0].Tag
		it := sess.Query(fmt.Sprintf(`SELECT ts, value_double, value_bigint, value_boolean, value_text, quality, status
			FROM %s.points WHERE asset = ? AND tag = ? AND bucket IN ?`, ks), asset, tag, buckets).IterContext(ctx)
		var got []row
		var rw row
		for it.Scan(&rw.ts, &rw.d, &rw.i, &rw.b, &rw.s, &rw.quality, &rw.status) {
			got = append(got, rw)
			rw = row{}
		}
		if err := it.Close(); err != nil {
			t.Fatalf("read %s/%s: %v", asset, tag, err)
		}
		rows += len(got)
		if len(got) != r.steps {
			t.Errorf("%s/%s: %d rows, want %d", asset, tag, len(got), r.steps)
			bad++
			continue
		}
		// Rows come newest first within a bucket and buckets in token order:
		// sort by ts, ascending.
		sortRows(got)
		if first.IsZero() {
			first = got[0].ts
			if first.Before(from.Add(-r.interval)) || first.After(to) {
				t.Fatalf("first ts %s outside the run [%s, %s]", first, from, to)
			}
		}
		for k, w := range want[i] {
			if err := got[k].matches(w, first.Add(time.Duration(k)*r.interval)); err != nil {
				if bad < 10 {
					t.Errorf("%s/%s sample %d: %v", asset, tag, k, err)
				}
				bad++
				break
			}
		}
	}
	if rows != r.count() || bad > 0 {
		t.Fatalf("read back %d rows (want %d); %d tags wrong", rows, r.count(), bad)
	}
	t.Logf("read back and checked %d rows in %d partitions", rows, per)
}

type row struct {
	ts      time.Time
	d       *float64
	i       *int64
	b       *bool
	s       *string
	quality string
	status  int64
}

func sortRows(rs []row) {
	slices.SortFunc(rs, func(a, b row) int { return a.ts.Compare(b.ts) })
}

func (r row) matches(w engine.Point, ts time.Time) error {
	if !r.ts.Equal(ts) {
		return fmt.Errorf("ts %s, want %s", r.ts.Format(time.RFC3339Nano), ts.Format(time.RFC3339Nano))
	}
	if r.quality != w.Quality.String() || r.status != int64(w.Status) {
		return fmt.Errorf("quality %q/%d, want %q/%d", r.quality, r.status, w.Quality, w.Status)
	}
	var got engine.Value
	n := 0
	if r.d != nil {
		got, n = engine.Float(*r.d), n+1
	}
	if r.i != nil {
		got, n = engine.Int(*r.i), n+1
	}
	if r.b != nil {
		got, n = engine.Bool(*r.b), n+1
	}
	if r.s != nil {
		got, n = engine.String(*r.s), n+1
	}
	if n > 1 || got.Kind() != w.Value.Kind() || !got.Equal(w.Value) {
		return fmt.Errorf("value %v (%s, %d columns set), want %v (%s)", got, got.Kind(), n, w.Value, w.Value.Kind())
	}
	return nil
}

func testKeyspace(t *testing.T, sess *gocql.Session, prefix string) string {
	ks := fmt.Sprintf("%s_%d_%d", prefix, time.Now().Unix(), rand.IntN(1e6))
	t.Cleanup(func() {
		if !t.Failed() {
			sess.Query("DROP KEYSPACE IF EXISTS " + ks).Exec()
		}
	})
	return ks
}

func delivered(p *harness.Proc) float64 {
	m, err := p.Metrics()
	if err != nil {
		return 0
	}
	return harness.Sum(m, "flowd_points_delivered_total", "sink=history")
}

// finalCounts waits for flowd to end and reads the totals of its last log line.
func finalCounts(t *testing.T, p *harness.Proc, timeout time.Duration) (in, delivered, dropped int64) {
	t.Helper()
	if code := p.Wait(timeout); code != 0 {
		t.Fatalf("flowd exit code %d (-1: still running after %s)", code, timeout)
	}
	for _, line := range strings.Split(p.Stderr.String(), "\n") {
		var rec struct {
			Msg       string `json:"msg"`
			In        int64  `json:"points_in"`
			Delivered int64  `json:"points_delivered"`
			Dropped   int64  `json:"points_dropped"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "flowd stopped" {
			return rec.In, rec.Delivered, rec.Dropped
		}
	}
	t.Fatalf("no final \"flowd stopped\" line in flowd's log")
	return
}

// TestCassandra500k writes 500,000 sim points into a real Cassandra and reads
// every one back.
func TestCassandra500k(t *testing.T) {
	addr := harness.Require(t, "FLOWD_TEST_CASSANDRA")
	sess := cassandraSession(t, addr)
	ks := testKeyspace(t, sess, "e2e_500k")
	r := simRun{assets: 10, tags: 50, steps: 1000, interval: 10 * time.Millisecond}
	dir := t.TempDir()
	cfg := harness.WriteFile(t, dir, "cass.hcl", cassandraPipeline(addr, ks, r, ""))
	from := time.Now()
	p := harness.Start(t, cfg)
	in, del, dropped := finalCounts(t, p, 5*time.Minute)
	if in != int64(r.count()) || del != int64(r.count()) || dropped != 0 {
		t.Fatalf("flowd: %d in, %d delivered, %d dropped; want %d, %d, 0", in, del, dropped, r.count(), r.count())
	}
	took := time.Since(from)
	t.Logf("500,000 points written in %s (%.0f points/s, noisy shared machine: not a benchmark)", took.Round(time.Millisecond), float64(r.count())/took.Seconds())
	checkCassandra(t, sess, ks, r, from, time.Now().Add(time.Duration(r.steps)*r.interval))
}

// TestCassandraRestart restarts Cassandra while flowd writes to it: the
// writes fail, the engine retries them, backpressure holds the source, and
// every point is there afterwards.
func TestCassandraRestart(t *testing.T) { cassandraOutage(t, 0) }

// TestCassandraLongOutageSoak keeps Cassandra down for three minutes while
// flowd holds its backlog (backpressure up to the source), then checks every row.
func TestCassandraLongOutageSoak(t *testing.T) {
	if os.Getenv("FLOWD_SOAK") == "" {
		t.Skip("soak test: set FLOWD_SOAK=1 (make soak)")
	}
	cassandraOutage(t, 3*time.Minute)
}

func cassandraOutage(t *testing.T, downFor time.Duration) {
	addr := harness.Require(t, "FLOWD_TEST_CASSANDRA")
	if addr != "127.0.0.1:19042" {
		t.Skipf("FLOWD_TEST_CASSANDRA=%s is not the node e2e/services.sh manages", addr)
	}
	sess := cassandraSession(t, addr)
	ks := testKeyspace(t, sess, "e2e_restart")
	r := simRun{assets: 10, tags: 10, steps: 1000, interval: 10 * time.Millisecond}
	dir := t.TempDir()
	// A narrow sink (8 requests in flight, no coalescing) so that the run
	// outlasts the stop of Cassandra.
	cfg := harness.WriteFile(t, dir, "cass.hcl", cassandraPipeline(addr, ks, r, `    timeout         = "2s"
    retries         = 1
    max_in_flight   = 8
    coalesce_points = 0`))
	from := time.Now()
	p := harness.Start(t, cfg)
	harness.Eventually(t, 2*time.Minute, func() bool {
		return delivered(p) >= float64(r.count())/10
	}, "a tenth of the points delivered before the restart")
	t.Logf("stopping Cassandra with %v of %d points delivered", delivered(p), r.count())
	harness.Services(t, "down", "cassandra")
	if p.Exited() {
		t.Fatal("flowd delivered everything before Cassandra stopped: the test would prove nothing")
	}
	before := delivered(p)
	harness.Eventually(t, time.Minute, func() bool {
		st, err := p.Status()
		if err != nil {
			return false
		}
		for _, c := range st.Pipelines[0].Components {
			if c.ID == "sink.history" && c.State == engine.StateFailing {
				t.Logf("sink failing while Cassandra is down: %s", c.LastError)
				return true
			}
		}
		return false
	}, "the sink to report failing while Cassandra is down")
	time.Sleep(downFor)
	if d := delivered(p); d != before {
		t.Errorf("%v points reported delivered while Cassandra was down", d-before)
	}
	harness.Services(t, "up", "cassandra")
	t.Logf("Cassandra is back with %v of %d points delivered", delivered(p), r.count())
	in, del, dropped := finalCounts(t, p, 3*time.Minute)
	if in != int64(r.count()) || del != int64(r.count()) || dropped != 0 {
		t.Fatalf("flowd: %d in, %d delivered, %d dropped; want %d, %d, 0", in, del, dropped, r.count(), r.count())
	}
	sess2 := cassandraSession(t, addr)
	checkCassandra(t, sess2, ks, r, from, time.Now().Add(time.Duration(r.steps)*r.interval))
}
