package cassandra

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/flowd/flowd/engine"
)

func baseConfig() Config {
	return Config{
		Hosts: []string{"127.0.0.1"}, Keyspace: "flowd", Table: "points", Consistency: "LOCAL_QUORUM",
		Bucket: 24 * time.Hour, MaxInFlight: 16, MaxBatchRows: 100, Retries: 3,
		Timeout: 12 * time.Second, ConnectTimeout: 10 * time.Second, Connections: 2,
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		field string
		edit  func(*Config)
	}{
		{"hosts", func(c *Config) { c.Hosts = nil }},
		{"hosts", func(c *Config) { c.Hosts = []string{"h:99999"} }},
		{"keyspace", func(c *Config) { c.Keyspace = "bad-name" }},
		{"table", func(c *Config) { c.Table = "x; DROP TABLE y" }},
		{"consistency", func(c *Config) { c.Consistency = "MOST" }},
		{"bucket", func(c *Config) { c.Bucket = 90 * time.Second }},
		{"bucket", func(c *Config) { c.Bucket = 0 }},
		{"ttl", func(c *Config) { c.TTL = 1500 * time.Millisecond }},
		{"max_in_flight", func(c *Config) { c.MaxInFlight = 0 }},
		{"max_batch_rows", func(c *Config) { c.MaxBatchRows = 0 }},
		{"password", func(c *Config) { c.Username = "u" }},
		{"tls", func(c *Config) { c.TLS = &TLSConfig{CertFile: "c.pem"} }},
		{"replication", func(c *Config) { c.Replication = map[string]string{"dc1": "3"} }},
		{"replication", func(c *Config) {
			c.Replication = map[string]string{"class": "SimpleStrategy", "replication_factor": "1'}"}
		}},
	}
	for _, tc := range cases {
		c := baseConfig()
		tc.edit(&c)
		_, err := New(&c, nil)
		var fe *engine.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: got %v, want an error on %s", c, err, tc.field)
		}
	}
	c := baseConfig()
	if _, err := New(&c, nil); err != nil {
		t.Fatalf("valid config: %v", err)
	}
}

func TestSchemaCQL(t *testing.T) {
	for _, tc := range []struct {
		bucket time.Duration
		window string
	}{
		{24 * time.Hour, "'compaction_window_unit': 'DAYS', 'compaction_window_size': '1'"},
		{7 * 24 * time.Hour, "'compaction_window_unit': 'DAYS', 'compaction_window_size': '7'"},
		{6 * time.Hour, "'compaction_window_unit': 'HOURS', 'compaction_window_size': '6'"},
		{90 * time.Minute, "'compaction_window_unit': 'MINUTES', 'compaction_window_size': '90'"},
	} {
		cql := TableCQL("ks", "tbl", tc.bucket)
		for _, want := range []string{"CREATE TABLE IF NOT EXISTS ks.tbl", "PRIMARY KEY ((asset, tag, bucket), ts)", "CLUSTERING ORDER BY (ts DESC)", "TimeWindowCompactionStrategy", tc.window} {
			if !strings.Contains(cql, want) {
				t.Errorf("bucket %s: %q missing from\n%s", tc.bucket, want, cql)
			}
		}
	}
	if got, want := KeyspaceCQL("ks", nil), "CREATE KEYSPACE IF NOT EXISTS ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': '1'}"; got != want {
		t.Errorf("keyspace:\n got %s\nwant %s", got, want)
	}
	got := KeyspaceCQL("ks", map[string]string{"dc2": "2", "class": "NetworkTopologyStrategy", "dc1": "3"})
	if want := "{'class': 'NetworkTopologyStrategy', 'dc1': '3', 'dc2': '2'}"; !strings.HasSuffix(got, want) {
		t.Errorf("keyspace: got %s, want suffix %s", got, want)
	}
	if q := InsertCQL("ks", "t", 0); strings.Contains(q, "TTL") {
		t.Errorf("no ttl: %s", q)
	}
	if q := InsertCQL("ks", "t", 90*24*time.Hour); !strings.HasSuffix(q, "USING TTL 7776000") {
		t.Errorf("ttl: %s", q)
	}
}

func TestBucketOf(t *testing.T) {
	day := (24 * time.Hour).Milliseconds()
	ts := time.Date(2026, 11, 22, 10, 0, 0, 123e6, time.UTC)
	if got, want := BucketOf(ts.UnixMilli(), day), time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC).UnixMilli(); got != want {
		t.Errorf("day bucket %d, want %d", got, want)
	}
	if got := BucketOf(-1, day); got != -day {
		t.Errorf("before the epoch: %d, want %d", got, -day)
	}
	if got := BucketOf(0, day); got != 0 {
		t.Errorf("epoch: %d", got)
	}
	if got := tsMillis(-1); got != -1 {
		t.Errorf("tsMillis(-1 ns) = %d, want -1", got)
	}
}

func newTestSink(t testing.TB, edit func(*Config)) *Sink {
	t.Helper()
	c := baseConfig()
	if edit != nil {
		edit(&c)
	}
	s, err := New(&c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s.(*Sink)
}

func TestPlanGroupsOnlyWithinAPartition(t *testing.T) {
	s := newTestSink(t, func(c *Config) { c.MaxBatchRows = 3 })
	day := 24 * time.Hour
	t0 := time.Date(2026, 11, 22, 23, 59, 59, 0, time.UTC).UnixNano()
	pts := []engine.Point{
		{Asset: "a", Tag: "x", TS: t0},
		{Asset: "b", Tag: "x", TS: t0},
		{Asset: "a", Tag: "x", TS: t0 + int64(time.Millisecond)},
		{Asset: "a", Tag: "x", TS: t0 + int64(2*time.Second)}, // next day: another partition
		{Asset: "a", Tag: "y", TS: t0},
		{Asset: "a", Tag: "x", TS: t0 - int64(time.Second)},
		{Asset: "a", Tag: "x", TS: t0 - int64(2*time.Second)},
	}
	idx := []int32{0, 1, 2, 3, 4, 5, 6}
	units := s.plan(pts, idx, nil)
	seen := 0
	for _, u := range units {
		if n := u.to - u.from; n < 1 || n > 3 {
			t.Errorf("unit of %d rows", n)
		}
		first := &pts[idx[u.from]]
		for _, i := range idx[u.from:u.to] {
			if !samePartition(first, &pts[i], day.Milliseconds()) {
				t.Errorf("unit mixes partitions: %+v and %+v", *first, pts[i])
			}
			seen++
		}
	}
	if seen != len(pts) {
		t.Errorf("planned %d rows of %d", seen, len(pts))
	}
	// a/x today has 4 rows: a batch of 3 and a single; a/x tomorrow, a/y, b/x: singles.
	if len(units) != 5 {
		t.Errorf("%d units, want 5: %v", len(units), units)
	}
	s1 := newTestSink(t, func(c *Config) { c.MaxBatchRows = 1 })
	if u := s1.plan(pts, idx, nil); len(u) != len(pts) {
		t.Errorf("max_batch_rows = 1: %d units, want %d", len(u), len(pts))
	}
}

func TestBindTypedColumns(t *testing.T) {
	s := newTestSink(t, nil)
	ts := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	cases := []struct {
		v   engine.Value
		col int // 4 double, 5 bigint, 6 boolean, 7 text; -1 none
		out any
	}{
		{engine.Float(21.5), 4, 21.5},
		{engine.Int(-7), 5, int64(-7)},
		{engine.Bool(true), 6, true},
		{engine.String("auto"), 7, "auto"},
		{engine.Null(), -1, nil},
		// no CQL type holds it but varint (a schema change) and text
		{engine.Uint(math.MaxUint64), 7, "18446744073709551615"},
	}
	for _, tc := range cases {
		p := engine.Point{Asset: "line1", Tag: "t", Value: tc.v, Quality: engine.Uncertain, Status: 0x40000000, TS: ts.UnixNano()}
		args := s.bind(&p)
		if len(args) != 11 {
			t.Fatalf("%d args", len(args))
		}
		if args[0] != "line1" || args[1] != "t" || args[3] != ts.UnixMilli() || args[2] != time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC).UnixMilli() {
			t.Errorf("key columns %v", args[:4])
		}
		if args[8] != "uncertain" || args[9] != int64(0x40000000) || args[10] != gocql.UnsetValue {
			t.Errorf("quality/status/attrs %v", args[8:])
		}
		for c := 4; c <= 7; c++ {
			if c == tc.col {
				if args[c] != tc.out {
					t.Errorf("%v: column %d = %v, want %v", tc.v, c, args[c], tc.out)
				}
			} else if args[c] != gocql.UnsetValue {
				t.Errorf("%v: column %d = %v, want unset", tc.v, c, args[c])
			}
		}
	}
}

func TestCheckPoint(t *testing.T) {
	bad := []engine.Point{
		{Tag: ""},
		{Tag: "t\xff"},
		{Asset: "a", Tag: "t", Value: engine.String("bad \xc3")},
		{Asset: strings.Repeat("a", 70000), Tag: "t"},
		{Tag: "t", Attrs: map[string]string{"k": "\xff"}},
	}
	for _, p := range bad {
		if checkPoint(&p) == nil {
			t.Errorf("accepted %q/%q", p.Asset[:min(len(p.Asset), 10)], p.Tag)
		}
	}
	ok := engine.Point{Tag: "temperature", Value: engine.String("héllo"), Attrs: map[string]string{"unit": "°C"}}
	if err := checkPoint(&ok); err != nil {
		t.Errorf("rejected a good point: %v", err)
	}
}

type fakeRequestError struct{ code int }

func (e fakeRequestError) Code() int       { return e.code }
func (e fakeRequestError) Message() string { return "m" }
func (e fakeRequestError) Error() string   { return fmt.Sprintf("code %x", e.code) }

func TestRetryType(t *testing.T) {
	r := &retryPolicy{}
	for err, want := range map[error]gocql.RetryType{
		fakeRequestError{gocql.ErrCodeInvalid}:      gocql.Rethrow,
		fakeRequestError{gocql.ErrCodeSyntax}:       gocql.Rethrow,
		fakeRequestError{gocql.ErrCodeWriteTimeout}: gocql.Retry,
		fakeRequestError{gocql.ErrCodeOverloaded}:   gocql.Retry,
		errors.New("connection reset"):              gocql.RetryNextHost,
		context.Canceled:                            gocql.Rethrow,
	} {
		if got := r.GetRetryType(err); got != want {
			t.Errorf("%v: %v, want %v", err, got, want)
		}
	}
	if !rowError(gocql.MarshalError("bad")) || !rowError(fakeRequestError{gocql.ErrCodeInvalid}) || rowError(fakeRequestError{gocql.ErrCodeWriteTimeout}) {
		t.Error("rowError classification")
	}
}

type fakeQuery struct {
	attempts int
	ctx      context.Context
}

func (q *fakeQuery) Attempts() int                    { return q.attempts }
func (q *fakeQuery) SetConsistency(gocql.Consistency) {}
func (q *fakeQuery) GetConsistency() gocql.Consistency {
	return gocql.One
}
func (q *fakeQuery) Context() context.Context { return q.ctx }

func TestRetryAttemptStopsWithContext(t *testing.T) {
	r := &retryPolicy{n: 3, min: time.Hour, max: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r.Attempt(&fakeQuery{attempts: 1, ctx: ctx}) {
		t.Error("retried after the context ended")
	}
	if r.Attempt(&fakeQuery{attempts: 4, ctx: context.Background()}) {
		t.Error("retried past the limit")
	}
	r.min, r.max = time.Millisecond, time.Millisecond
	if !r.Attempt(&fakeQuery{attempts: 1, ctx: context.Background()}) {
		t.Error("no retry on the first failure")
	}
}

// The driver's retries double from min up to max with the upper half random,
// as the engine's own retries do.
func TestRetryDelayDoublesToMax(t *testing.T) {
	r := &retryPolicy{n: 100, min: 100 * time.Millisecond, max: 5 * time.Second}
	for attempts, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond,
		4: 800 * time.Millisecond, 6: 3200 * time.Millisecond, 7: 5 * time.Second, 17: 5 * time.Second, 100: 5 * time.Second} {
		for range 100 {
			if d := r.delay(attempts); d < want/2 || d > want {
				t.Fatalf("after %d attempts: %s, want within [%s, %s]", attempts, d, want/2, want)
			}
		}
	}
}

// The tests below need a real Cassandra (e2e/services.sh up cassandra).

func realSink(t testing.TB, edit func(*Config)) (*Sink, *gocql.Session) {
	t.Helper()
	addr := os.Getenv("FLOWD_TEST_CASSANDRA")
	if addr == "" {
		t.Skip("FLOWD_TEST_CASSANDRA is not set: run `eval \"$(e2e/services.sh up cassandra)\"` first (make test does)")
	}
	ks := fmt.Sprintf("unit_%d_%d", time.Now().UnixNano()%1e9, rand.IntN(1e6))
	s := newTestSink(t, func(c *Config) {
		c.Hosts = []string{addr}
		c.Keyspace = ks
		c.CreateSchema = true
		c.Consistency = "ONE"
		if edit != nil {
			edit(c)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.session.Query("DROP KEYSPACE IF EXISTS " + ks).Exec()
		s.Close(context.Background())
	})
	return s, s.session
}

// The sink keeps several writes in flight (engine.AsyncSink) and their
// requests share max_in_flight: writes started together all settle, every
// row is stored, and the request bound is never exceeded.
func TestRealWriteAsyncShareRequestBound(t *testing.T) {
	s, sess := realSink(t, func(c *Config) { c.MaxInFlight = 4 })
	var as engine.AsyncSink = s
	if as.MaxInFlight() < 2 {
		t.Fatalf("MaxInFlight() = %d: writes would not overlap", as.MaxInFlight())
	}
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).UnixNano()
	const writes, per = 4, 200
	done := make(chan error, writes)
	stop := make(chan struct{})
	peak := make(chan int, 1)
	go func() {
		hi := 0
		for {
			select {
			case <-stop:
				peak <- hi
				return
			default:
				hi = max(hi, len(s.sem))
				runtime.Gosched()
			}
		}
	}()
	for w := range writes {
		pts := make([]engine.Point, per)
		for i := range pts {
			pts[i] = engine.Point{Asset: fmt.Sprintf("tracker-%d", w), Tag: fmt.Sprintf("t%d", i), Value: engine.Float(float64(i)), TS: t0}
		}
		as.WriteAsync(context.Background(), pts, func(err error) { done <- err })
	}
	for range writes {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(time.Minute):
			t.Fatal("a write did not settle within a minute")
		}
	}
	close(stop)
	if hi := <-peak; hi > 4 || hi == 0 {
		t.Errorf("peak requests outstanding %d, want 1..4 (max_in_flight)", hi)
	}
	var n int
	if err := sess.Query(fmt.Sprintf("SELECT COUNT(*) FROM %s.points", s.cfg.Keyspace)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != writes*per {
		t.Errorf("%d rows, want %d", n, writes*per)
	}
}

func TestRealWriteBatchesAndSingles(t *testing.T) {
	s, sess := realSink(t, func(c *Config) { c.MaxBatchRows = 4; c.TTL = time.Hour })
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).UnixNano()
	var pts []engine.Point
	for i := range 10 { // one partition: batches of 4, 4, 2
		pts = append(pts, engine.Point{Asset: "line1", Tag: "temperature", Value: engine.Float(float64(i) + 0.5), TS: t0 + int64(i)*int64(time.Second)})
	}
	pts = append(pts,
		engine.Point{Asset: "line1", Tag: "running", Value: engine.Bool(true), TS: t0},
		engine.Point{Tag: "mode", Value: engine.String("auto"), Quality: engine.Bad, Status: 0x80000000, TS: t0, Attrs: map[string]string{"unit": "-"}},
		engine.Point{Asset: "line1", Tag: "cycles", Value: engine.Int(42), TS: t0},
		engine.Point{Asset: "line1", Tag: "empty", Value: engine.Null(), TS: t0},
	)
	ctx := context.Background()
	if err := s.Write(ctx, pts); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, pts); err != nil { // a retried batch: idempotent
		t.Fatal(err)
	}
	var n int
	if err := sess.Query(fmt.Sprintf("SELECT COUNT(*) FROM %s.points", s.cfg.Keyspace)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(pts) {
		t.Errorf("%d rows, want %d", n, len(pts))
	}
	var (
		d       float64
		ts      time.Time
		ttl     int
		quality string
	)
	q := fmt.Sprintf("SELECT ts, value_double, quality, TTL(value_double) FROM %s.points WHERE asset = 'line1' AND tag = 'temperature' AND bucket = ? LIMIT 1", s.cfg.Keyspace)
	if err := sess.Query(q, BucketOf(t0/1e6, 86400000)).Scan(&ts, &d, &quality, &ttl); err != nil {
		t.Fatal(err)
	}
	if !ts.Equal(time.Unix(0, t0+9*int64(time.Second))) || d != 9.5 || quality != "good" || ttl <= 0 || ttl > 3600 {
		t.Errorf("newest row: ts %s value %v quality %s ttl %d", ts, d, quality, ttl)
	}
	var (
		text   string
		status int64
		attrs  map[string]string
	)
	q = fmt.Sprintf("SELECT value_text, quality, status, attrs FROM %s.points WHERE asset = '' AND tag = 'mode' AND bucket = ?", s.cfg.Keyspace)
	if err := sess.Query(q, BucketOf(t0/1e6, 86400000)).Scan(&text, &quality, &status, &attrs); err != nil {
		t.Fatal(err)
	}
	if text != "auto" || quality != "bad" || status != 0x80000000 || attrs["unit"] != "-" {
		t.Errorf("mode row: %q %q %x %v", text, quality, status, attrs)
	}
}

func TestRealBadPointsDoNotBlock(t *testing.T) {
	s, sess := realSink(t, nil)
	t0 := time.Now().UnixNano()
	pts := []engine.Point{
		{Asset: "a", Tag: "ok", Value: engine.Float(1), TS: t0},
		{Asset: "a", Tag: "bad\xff", Value: engine.Float(2), TS: t0},
		{Asset: "a", Tag: "", Value: engine.Float(3), TS: t0},
		{Asset: "a", Tag: "ok", Value: engine.String("x\xfe"), TS: t0 + 1e6},
	}
	// The bad points are reported rejected, by index, for the engine to
	// dead-letter; nothing is to be retried.
	err := s.Write(context.Background(), pts)
	var we *engine.WriteError
	if !errors.As(err, &we) || we.Err != nil || len(we.Retries()) != 0 {
		t.Fatalf("Write = %v, want only rejections", err)
	}
	var got []int
	for _, r := range we.Rejections() {
		got = append(got, r.Index)
		if r.Reason != "invalid" || r.Err == nil {
			t.Errorf("rejection %+v", r)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("rejected %v, want [1 2 3]", got)
	}
	var n int
	if err := sess.Query(fmt.Sprintf("SELECT COUNT(*) FROM %s.points", s.cfg.Keyspace)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d rows, want only the good one", n)
	}
}

func TestRealMissingTableFailsConnect(t *testing.T) {
	addr := os.Getenv("FLOWD_TEST_CASSANDRA")
	if addr == "" {
		t.Skip("FLOWD_TEST_CASSANDRA is not set")
	}
	s := newTestSink(t, func(c *Config) { c.Hosts = []string{addr}; c.Keyspace = "no_such_keyspace_here" })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := s.Connect(ctx)
	if err == nil {
		s.Close(ctx)
		t.Fatal("connected to a missing table")
	}
	if !strings.Contains(err.Error(), "no_such_keyspace_here") {
		t.Errorf("error does not name the table: %v", err)
	}
}

func benchPoints(n int) []engine.Point {
	pts := make([]engine.Point, n)
	t0 := time.Now().UnixNano()
	for i := range pts {
		pts[i] = engine.Point{Asset: fmt.Sprintf("asset%d", i%50), Tag: fmt.Sprintf("tag%d", i/50%20), Value: engine.Float(float64(i)), TS: t0 + int64(i/1000)*int64(time.Millisecond)}
	}
	return pts
}

func BenchmarkPlan(b *testing.B) {
	s := newTestSink(b, nil)
	pts := benchPoints(1000)
	idx := make([]int32, len(pts))
	var units []unit
	b.ReportAllocs()
	for b.Loop() {
		for i := range idx {
			idx[i] = int32(i)
		}
		units = s.plan(pts, idx, units[:0])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pts)), "ns/point")
}

func BenchmarkBind(b *testing.B) {
	s := newTestSink(b, nil)
	p := engine.Point{Asset: "line1", Tag: "temperature", Value: engine.Float(21.5), TS: time.Now().UnixNano()}
	b.ReportAllocs()
	for b.Loop() {
		_ = s.bind(&p)
	}
}

// BenchmarkRealWrite writes batches of 1,000 points into the test node:
// "spread" is a sim step of 50 assets × 20 tags (1,000 partitions, a row
// each); "grouped" is 10 partitions of 100 rows (one unlogged batch each, or
// 100 inserts with max_batch_rows = 1).
func BenchmarkRealWrite(b *testing.B) {
	for _, bc := range []struct {
		name            string
		partitions      int
		inFlight, batch int
	}{
		{"spread/in_flight=16", 1000, 16, 100},
		{"spread/in_flight=64", 1000, 64, 100},
		{"spread/in_flight=256", 1000, 256, 100},
		{"grouped/batch=100", 10, 256, 100},
		{"grouped/batch=1", 10, 256, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, _ := realSink(b, func(c *Config) { c.MaxInFlight = bc.inFlight; c.MaxBatchRows = bc.batch })
			pts := make([]engine.Point, 1000)
			t0 := time.Now().UnixNano()
			for i := range pts {
				part := i % bc.partitions
				pts[i] = engine.Point{Asset: fmt.Sprintf("asset%d", part/20), Tag: fmt.Sprintf("tag%d", part%20), Value: engine.Float(float64(i)), TS: t0 + int64(i)*int64(time.Millisecond)}
			}
			ctx := context.Background()
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				for i := range pts {
					pts[i].TS += int64(time.Second)
				}
				if err := s.Write(ctx, pts); err != nil {
					b.Fatal(err)
				}
				n += len(pts)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "points/s")
		})
	}
}

// BenchmarkRealWriteInFlight compares, in one run, writes of 5,000 spread
// points (5,000 partitions, a row each — the trackers' shape) one at a time
// (writes=1) with two kept in flight as the engine drives an AsyncSink (a
// write starts as soon as the oldest of two settled), both under
// max_in_flight = 64 requests.
func BenchmarkRealWriteInFlight(b *testing.B) {
	for _, writes := range []int{1, 2} {
		b.Run(fmt.Sprintf("writes=%d", writes), func(b *testing.B) {
			s, _ := realSink(b, nil)
			const per = 5000
			// writes+1 batches: the one refilled is older than every write
			// still in flight, so it has settled.
			batches := make([][]engine.Point, writes+1)
			t0 := time.Now().UnixNano()
			for w := range batches {
				batches[w] = make([]engine.Point, per)
				for i := range per {
					batches[w][i] = engine.Point{Asset: fmt.Sprintf("tracker-%d-%d", w, i/5), Tag: fmt.Sprintf("t%d", i%5), Value: engine.Float(float64(i)), TS: t0}
				}
			}
			ctx := context.Background()
			var fifo []chan error
			wait := func() {
				if err := <-fifo[0]; err != nil {
					b.Fatal(err)
				}
				fifo = fifo[1:]
			}
			n := 0
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if len(fifo) == writes {
					wait()
				}
				pts := batches[i%len(batches)]
				for k := range pts {
					pts[k].TS += int64(time.Minute)
				}
				done := make(chan error, 1)
				s.WriteAsync(ctx, pts, func(err error) { done <- err })
				fifo = append(fifo, done)
				n += per
			}
			for len(fifo) > 0 {
				wait()
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "points/s")
		})
	}
}

func TestTLSConfigFromFiles(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cassandra"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)

	tc, err := tlsConfig(&TLSConfig{CAFile: certFile, CertFile: certFile, KeyFile: keyFile, ServerName: "cassandra"})
	if err != nil {
		t.Fatal(err)
	}
	if tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.ServerName != "cassandra" || tc.InsecureSkipVerify {
		t.Errorf("tls config %+v", tc)
	}
	if _, err := tlsConfig(&TLSConfig{CAFile: keyFile}); err == nil {
		t.Error("a key file accepted as CA")
	}
	if _, err := tlsConfig(&TLSConfig{CAFile: filepath.Join(dir, "missing.pem")}); err == nil {
		t.Error("a missing CA file accepted")
	}
	s := newTestSink(t, func(c *Config) {
		c.TLS = &TLSConfig{CAFile: certFile}
		c.Username, c.Password = "flowd", "secret"
		c.LocalDC = "dc1"
	})
	cl, err := s.cluster()
	if err != nil {
		t.Fatal(err)
	}
	if cl.SslOpts == nil || cl.SslOpts.Config.RootCAs == nil || !cl.SslOpts.EnableHostVerification {
		t.Errorf("ssl options %+v", cl.SslOpts)
	}
	if pa, ok := cl.Authenticator.(gocql.PasswordAuthenticator); !ok || pa.Username != "flowd" || pa.Password != "secret" {
		t.Errorf("authenticator %+v", cl.Authenticator)
	}
	if cl.Consistency != gocql.LocalQuorum || !cl.DefaultIdempotence || cl.PoolConfig.HostSelectionPolicy == nil {
		t.Errorf("cluster consistency %v idempotent %v", cl.Consistency, cl.DefaultIdempotence)
	}
}
