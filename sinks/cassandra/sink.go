package cassandra

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/flowd/flowd/engine"
	"github.com/prometheus/client_golang/prometheus"
)

// Sink writes points to Cassandra.
type Sink struct {
	cfg     Config
	env     *engine.Env
	cons    gocql.Consistency
	schema  schema
	session *gocql.Session

	requests *prometheus.CounterVec
	rows     prometheus.Counter
	retries  prometheus.Counter

	// sem holds a token per request outstanding, across all writes in
	// flight: max_in_flight bounds the requests, not the requests of one
	// write, so the next write's requests start while the last ones of the
	// previous write are still out (no drain to zero between writes).
	sem chan struct{}
	// plans are request plans reused between writes.
	plans sync.Pool
}

// plan is one write's request plan: the rows to send (indexes into the
// points) and how they split into requests.
type plan struct {
	idx   []int32
	units []unit
}

// unit is one request: a run of idx (rows of one partition when longer than 1).
type unit struct{ from, to int }

// Connect opens the session (gocql bounds it with connect_timeout) and, with
// create_schema, creates the keyspace and the table.
func (s *Sink) Connect(ctx context.Context) error {
	if s.session != nil {
		return nil
	}
	cluster, err := s.cluster()
	if err != nil {
		return err
	}
	sess, err := cluster.CreateSession()
	if err != nil {
		return fmt.Errorf("cassandra: connect %s: %w", strings.Join(s.cfg.Hosts, ","), err)
	}
	if s.cfg.CreateSchema {
		for _, stmt := range []string{s.schema.keyspace, s.schema.table} {
			if err := sess.Query(stmt).Consistency(gocql.All).ExecContext(ctx); err != nil {
				sess.Close()
				return fmt.Errorf("cassandra: create schema: %w", err)
			}
		}
		if err := sess.AwaitSchemaAgreement(ctx); err != nil {
			sess.Close()
			return fmt.Errorf("cassandra: schema agreement: %w", err)
		}
	}
	// Preparing the INSERT now checks that the table exists with the
	// expected columns, so that a missing table fails here and not row by row.
	if _, err := sess.StatementMetadata(ctx, s.schema.insert, s.cfg.Keyspace); err != nil {
		sess.Close()
		return fmt.Errorf("cassandra: prepare insert into %s.%s: %w", s.cfg.Keyspace, s.cfg.Table, err)
	}
	s.session = sess
	return nil
}

func (s *Sink) cluster() (*gocql.ClusterConfig, error) {
	c := gocql.NewCluster(s.cfg.Hosts...)
	c.Consistency = s.cons
	c.Timeout = s.cfg.Timeout
	c.ConnectTimeout = s.cfg.ConnectTimeout
	c.NumConns = s.cfg.Connections
	c.DefaultIdempotence = true
	c.RetryPolicy = &retryPolicy{n: s.cfg.Retries, min: 100 * time.Millisecond, max: 5 * time.Second, retries: s.retries}
	c.ReconnectInterval = 5 * time.Second
	c.ReconnectionPolicy = &gocql.ExponentialReconnectionPolicy{MaxRetries: 10, InitialInterval: 200 * time.Millisecond, MaxInterval: 5 * time.Second}
	var fallback gocql.HostSelectionPolicy = gocql.RoundRobinHostPolicy()
	if s.cfg.LocalDC != "" {
		fallback = gocql.DCAwareRoundRobinPolicy(s.cfg.LocalDC)
	}
	c.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(fallback, gocql.ShuffleReplicas())
	if s.cfg.Username != "" {
		c.Authenticator = gocql.PasswordAuthenticator{Username: s.cfg.Username, Password: s.cfg.Password}
	}
	if s.cfg.TLS != nil {
		tc, err := tlsConfig(s.cfg.TLS)
		if err != nil {
			return nil, err
		}
		c.SslOpts = &gocql.SslOptions{Config: tc, EnableHostVerification: !s.cfg.TLS.InsecureSkipVerify}
	}
	if s.env != nil && s.env.Logger != nil {
		c.Logger = newSlogAdapter(s.env.Logger)
	}
	return c, nil
}

func tlsConfig(t *TLSConfig) (*tls.Config, error) {
	tc, err := t.Config()
	if err != nil {
		return nil, fmt.Errorf("cassandra: %w", err)
	}
	return tc, nil
}

// WriteSize asks the engine to merge queued batches into writes of this many
// points (engine.WriteSizer).
func (s *Sink) WriteSize() int { return s.cfg.CoalescePoints }

// writesInFlight is how many writes (coalesced batches) the engine keeps in
// flight by default (engine.AsyncSink): two keep the requests flowing from
// one write into the next; more only hold more points in memory.
const writesInFlight = 2

// MaxInFlight is the default number of writes in flight (engine.AsyncSink);
// the requests of all of them share max_in_flight.
func (s *Sink) MaxInFlight() int { return writesInFlight }

// WriteAsync writes points like Write and settles with its outcome, without
// holding back the next write (engine.AsyncSink).
func (s *Sink) WriteAsync(ctx context.Context, points []engine.Point, settle func(error)) {
	sess := s.session
	if sess == nil {
		settle(errNoSession)
		return
	}
	go func() { settle(s.write(ctx, sess, points)) }()
}

// Write inserts every point and returns nil only once Cassandra acknowledged
// every row at the configured consistency. Points Cassandra can never take
// (invalid UTF-8, an oversized key) are reported rejected, and only the rows
// of requests that failed are reported for retry (engine.WriteError).
func (s *Sink) Write(ctx context.Context, points []engine.Point) error {
	sess := s.session
	if sess == nil {
		return errNoSession
	}
	return s.write(ctx, sess, points)
}

func (s *Sink) write(ctx context.Context, sess *gocql.Session, points []engine.Point) error {
	var out outcome
	pl, _ := s.plans.Get().(*plan)
	if pl == nil {
		pl = new(plan)
	}
	defer s.plans.Put(pl)
	pl.idx = pl.idx[:0]
	for i := range points {
		if err := checkPoint(&points[i]); err != nil {
			out.we.Reject(i, "invalid", err)
			continue
		}
		pl.idx = append(pl.idx, int32(i))
	}
	pl.units = s.plan(points, pl.idx, pl.units[:0])
	var wg sync.WaitGroup
	for k, u := range pl.units {
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			// Shutdown: the requests not sent are retried (the engine
			// settles them as dropped when it gives up).
			for _, u := range pl.units[k:] {
				out.retry(pl.idx[u.from:u.to], ctx.Err())
			}
			wg.Wait()
			return out.we.Result()
		}
		rows := pl.idx[u.from:u.to]
		wg.Add(1)
		go func() {
			defer func() { <-s.sem; wg.Done() }()
			if err := s.exec(ctx, sess, points, rows, &out); err != nil {
				out.retry(rows, err)
			}
		}()
	}
	wg.Wait()
	return out.we.Result()
}

// outcome collects the rows of one Write that were not delivered, from the
// concurrent requests.
type outcome struct {
	mu sync.Mutex
	we engine.WriteError
}

func (o *outcome) reject(row int32, err error) {
	o.mu.Lock()
	o.we.Reject(int(row), "invalid", err)
	o.mu.Unlock()
}

func (o *outcome) retry(rows []int32, err error) {
	o.mu.Lock()
	for _, r := range rows {
		o.we.Retry(int(r))
	}
	if o.we.Err == nil {
		o.we.Err = err
	}
	o.mu.Unlock()
}

// plan splits the rows into requests: with batching, rows are sorted by
// partition and each run of one partition (up to max_batch_rows) is one
// unlogged batch; otherwise every row is its own request.
func (s *Sink) plan(points []engine.Point, idx []int32, units []unit) []unit {
	if s.cfg.MaxBatchRows <= 1 || len(idx) < 2 {
		for i := range idx {
			units = append(units, unit{i, i + 1})
		}
		return units
	}
	bms := s.schema.bucketMS
	slices.SortFunc(idx, func(a, b int32) int {
		pa, pb := &points[a], &points[b]
		if c := strings.Compare(pa.Asset, pb.Asset); c != 0 {
			return c
		}
		if c := strings.Compare(pa.Tag, pb.Tag); c != 0 {
			return c
		}
		return cmp.Compare(BucketOf(tsMillis(pa.TS), bms), BucketOf(tsMillis(pb.TS), bms))
	})
	from := 0
	for i := 1; i <= len(idx); i++ {
		if i < len(idx) && i-from < s.cfg.MaxBatchRows && samePartition(&points[idx[from]], &points[idx[i]], bms) {
			continue
		}
		units = append(units, unit{from, i})
		from = i
	}
	return units
}

func samePartition(a, b *engine.Point, bucketMS int64) bool {
	return a.Asset == b.Asset && a.Tag == b.Tag && BucketOf(tsMillis(a.TS), bucketMS) == BucketOf(tsMillis(b.TS), bucketMS)
}

// exec sends one request: an insert, or an unlogged batch of one partition.
// A row Cassandra can never take is reported to out; an error means the
// rows not yet reported must be retried.
func (s *Sink) exec(ctx context.Context, sess *gocql.Session, points []engine.Point, rows []int32, out *outcome) error {
	if len(rows) == 1 {
		p := &points[rows[0]]
		err := sess.Query(s.schema.insert, s.bind(p)...).Consistency(s.cons).Idempotent(true).ExecContext(ctx)
		s.count("insert", err)
		if err != nil {
			if rowError(err) {
				out.reject(rows[0], fmt.Errorf("cassandra: %w", err))
				return nil
			}
			return fmt.Errorf("cassandra: insert: %w", err)
		}
		s.rows.Inc()
		return nil
	}
	b := sess.Batch(gocql.UnloggedBatch).Consistency(s.cons)
	b.Entries = make([]gocql.BatchEntry, 0, len(rows))
	for _, i := range rows {
		b.Entries = append(b.Entries, gocql.BatchEntry{Stmt: s.schema.insert, Args: s.bind(&points[i]), Idempotent: true})
	}
	err := b.ExecContext(ctx)
	s.count("batch", err)
	if err != nil {
		if rowError(err) {
			// One row spoils the batch: send them one by one to find it.
			for k, i := range rows {
				if err := s.exec(ctx, sess, points, []int32{i}, out); err != nil {
					out.retry(rows[k:], err)
					return nil
				}
			}
			return nil
		}
		return fmt.Errorf("cassandra: batch of %d rows: %w", len(rows), err)
	}
	s.rows.Add(float64(len(rows)))
	return nil
}

func (s *Sink) count(typ string, err error) {
	res := "ok"
	if err != nil {
		res = "error"
	}
	s.requests.WithLabelValues(typ, res).Inc()
}

// bind returns the INSERT's values for a point. Value columns of other types
// are left unset (not null), so a write creates no tombstones.
func (s *Sink) bind(p *engine.Point) []any {
	ms := tsMillis(p.TS)
	var vd, vi, vb, vt any = gocql.UnsetValue, gocql.UnsetValue, gocql.UnsetValue, gocql.UnsetValue
	switch p.Value.Kind() {
	case engine.KindFloat:
		f, _ := p.Value.Float64()
		vd = f
	case engine.KindInt:
		i, _ := p.Value.Int64()
		vi = i
	case engine.KindBool:
		b, _ := p.Value.AsBool()
		vb = b
	case engine.KindString:
		str, _ := p.Value.Str()
		vt = str
	case engine.KindUint:
		// Above bigint's range: CQL has no unsigned type and double would
		// round it, so the exact decimal digits go to value_text (a varint
		// column would need every existing table altered).
		vt = p.Value.String()
	}
	var attrs any = gocql.UnsetValue
	if len(p.Attrs) > 0 {
		attrs = p.Attrs
	}
	return []any{p.Asset, p.Tag, BucketOf(ms, s.schema.bucketMS), ms, vd, vi, vb, vt, p.Quality.String(), int64(p.Status), attrs}
}

// tsMillis converts Unix nanoseconds to Unix milliseconds, rounding down.
func tsMillis(ns int64) int64 {
	ms := ns / 1e6
	if ns < 0 && ns%1e6 != 0 {
		ms--
	}
	return ms
}

// maxKey is Cassandra's limit on a partition key component.
const maxKey = 65535

// checkPoint finds what Cassandra would refuse, before sending it.
func checkPoint(p *engine.Point) error {
	switch {
	case p.Tag == "":
		return errors.New("empty tag")
	case len(p.Asset)+len(p.Tag) > maxKey-64:
		return fmt.Errorf("asset and tag are %d bytes, more than a partition key may hold", len(p.Asset)+len(p.Tag))
	case !utf8.ValidString(p.Asset) || !utf8.ValidString(p.Tag):
		return errors.New("asset or tag is not valid UTF-8")
	}
	if str, ok := p.Value.Str(); ok && !utf8.ValidString(str) {
		return errors.New("string value is not valid UTF-8")
	}
	for k, v := range p.Attrs {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return errors.New("attribute is not valid UTF-8")
		}
	}
	return nil
}

// rowError reports whether Cassandra refused a row for what it holds (it will
// refuse it again), as opposed to a failure worth retrying.
func rowError(err error) bool {
	var me gocql.MarshalError
	if errors.As(err, &me) {
		return true
	}
	var re gocql.RequestError
	if errors.As(err, &re) && re.Code() == gocql.ErrCodeInvalid {
		msg := strings.ToLower(re.Message())
		// a dropped table or keyspace is not the row's fault
		return !strings.Contains(msg, "table") && !strings.Contains(msg, "keyspace")
	}
	return false
}

// Close closes the session, or gives up when ctx ends. gocql's
// Session.Close takes no context and waits for the control connection,
// which a node that stopped answering holds indefinitely: past ctx the
// session is left to finish closing on its own, so a shutdown (or a
// reload) is not held by a silent node.
func (s *Sink) Close(ctx context.Context) error {
	if s.session == nil {
		return nil
	}
	sess := s.session
	s.session = nil
	done := make(chan struct{})
	go func() {
		defer close(done)
		sess.Close()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cassandra: the session is still closing: %w", ctx.Err())
	}
}

// retryPolicy is gocql's RetryPolicy over engine.Backoff: it retries
// idempotent writes with exponential backoff and jitter, waiting on the
// request's context; errors about the request itself are not retried.
type retryPolicy struct {
	n        int
	min, max time.Duration
	retries  prometheus.Counter
}

func (r *retryPolicy) Attempt(q gocql.RetryableQuery) bool {
	if q.Attempts() > r.n {
		return false
	}
	t := time.NewTimer(r.delay(q.Attempts()))
	defer t.Stop()
	select {
	case <-t.C:
		if r.retries != nil {
			r.retries.Inc()
		}
		return true
	case <-q.Context().Done():
		return false
	}
}

// delay is the wait before the next try after attempts tries (gocql counts
// the first one).
func (r *retryPolicy) delay(attempts int) time.Duration {
	return engine.Backoff(r.min, r.max, attempts-1)
}

func (r *retryPolicy) GetRetryType(err error) gocql.RetryType {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return gocql.Rethrow
	}
	var re gocql.RequestError
	if errors.As(err, &re) {
		switch re.Code() {
		case gocql.ErrCodeSyntax, gocql.ErrCodeInvalid, gocql.ErrCodeUnauthorized, gocql.ErrCodeConfig,
			gocql.ErrCodeCredentials, gocql.ErrCodeAlreadyExists, gocql.ErrCodeProtocol:
			return gocql.Rethrow
		case gocql.ErrCodeWriteTimeout, gocql.ErrCodeOverloaded, gocql.ErrCodeUnavailable, gocql.ErrCodeTruncate:
			return gocql.Retry
		}
	}
	return gocql.RetryNextHost
}

// slogAdapter sends the driver's log lines to the component's logger: its
// info as debug, and its errors and warnings at most one per 5 s (the driver
// reports every failed reconnection while a node is down).
type slogAdapter struct {
	l   *slog.Logger
	lim *engine.LogLimiter
}

func newSlogAdapter(l *slog.Logger) slogAdapter {
	return slogAdapter{l: l, lim: &engine.LogLimiter{Every: 5 * time.Second}}
}

func (a slogAdapter) allow() bool {
	ok, _ := a.lim.Allow(engine.Now())
	return ok
}

func attrs(fields []gocql.LogField) []any {
	out := make([]any, 0, len(fields))
	for _, f := range fields {
		out = append(out, slog.Any(f.Name, f.Value.Any()))
	}
	return out
}

func (a slogAdapter) Error(msg string, f ...gocql.LogField) {
	if a.allow() {
		a.l.Error("cassandra driver: "+msg, attrs(f)...)
	}
}

func (a slogAdapter) Warning(msg string, f ...gocql.LogField) {
	if a.allow() {
		a.l.Warn("cassandra driver: "+msg, attrs(f)...)
	}
}

func (a slogAdapter) Info(msg string, f ...gocql.LogField) {
	a.l.Debug("cassandra driver: "+msg, attrs(f)...)
}
func (a slogAdapter) Debug(msg string, f ...gocql.LogField) {
	a.l.Debug("cassandra driver: "+msg, attrs(f)...)
}
