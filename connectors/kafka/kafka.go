// Package kafka is the kafka source: a member of a Kafka consumer group
// (franz-go, cooperative-sticky rebalancing) whose records are decoded by the
// shared payload decoder. Offsets are committed by hand, at least once: a
// partition's offset moves only past records whose points every sink has
// taken (dead letters included).
package kafka

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	ckafka "github.com/flowd/flowd/common/kafka"
	"github.com/flowd/flowd/common/payload"
	"github.com/flowd/flowd/engine"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Config is the kafka source's configuration.
type Config struct {
	Brokers          []string `hcl:"brokers" doc:"seed brokers, host:port (not with connection_string)"`
	ConnectionString string   `hcl:"connection_string" doc:"Azure Event Hubs: a namespace or hub connection string (Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…[;EntityPath=hub]) read over the namespace's Kafka endpoint (port 9093, SASL_SSL, the service's client limits); replaces brokers and sasl. Use env(\"NAME\") or file(\"path\")"`
	Topics           []string `hcl:"topics" doc:"topics to consume (with topic_regex: regular expressions; for Event Hubs: event hubs; default: the connection string's EntityPath)"`
	TopicRegex       bool     `hcl:"topic_regex" doc:"topics are regular expressions matched against every topic of the cluster (new matching topics are picked up at the next metadata refresh)"`
	Group            string   `hcl:"group,required" doc:"consumer group id: every replica with the same group shares the partitions"`
	StartOffset      string   `hcl:"start_offset" default:"earliest" enum:"earliest|latest" doc:"where a partition without a committed offset starts (also when the committed offset is out of range)"`

	Format      string                 `hcl:"format" default:"json" enum:"json|map|raw" doc:"json: a point object (the kafka sink's json), an array of them (json_batch), an asset_json object ({\"asset\":…,\"points\":{tag:{value,quality,ts}}}) or a tag map; map: the map attribute picks fields out of any JSON object; raw: the record value as a string"`
	Asset       string                 `hcl:"asset" doc:"asset of points that carry none"`
	AssetExpr   engine.Expr            `hcl:"asset_expr" doc:"expression giving the asset of points that carry none, over topic (topic[0] is the record's topic)"`
	Tag         string                 `hcl:"tag" doc:"tag of points that carry none"`
	TagExpr     engine.Expr            `hcl:"tag_expr" doc:"expression giving the tag of points that carry none, over topic"`
	Map         map[string]engine.Expr `hcl:"map" doc:"format map: asset, tag, value (or values: an object whose entries become one point each), quality and ts, each an expression over payload and topic"`
	MaxPayload  engine.Size            `hcl:"max_payload" default:"1MiB" doc:"larger record values are dead-lettered (at most 256MiB)"`
	RecordAttrs bool                   `hcl:"record_attrs" doc:"give every point the attrs kafka_topic, kafka_partition, kafka_offset, kafka_key, kafka_timestamp (Unix ms) and kafka_header_NAME for each header, for expressions downstream (one map per record, shared by its points)"`

	BatchSize              int         `hcl:"batch_size" default:"5000" doc:"most points handed to the pipeline at once (a batch holds whole records of one partition; at most 1,000,000)"`
	MaxPollRecords         int         `hcl:"max_poll_records" default:"5000" doc:"most records taken from the client per poll (at most 1,000,000)"`
	MaxInFlight            int         `hcl:"max_in_flight" default:"250000" doc:"points handed to the pipeline and not yet acknowledged; at this bound the source stops polling, so fetching pauses and memory stays bounded whatever the lag (at most 10,000,000); keep it above what the sinks hold in their writes in flight (cassandra: 2 writes of up to coalesce_points), or the source waits for a whole write to finish before it polls again"`
	MaxInFlightBytes       engine.Size `hcl:"max_in_flight_bytes" default:"64MiB" doc:"estimated bytes (as the memory buffer counts them: points, strings, attrs) of the points handed to the pipeline and not yet acknowledged; at this bound the source stops polling too, whichever bound comes first (a record larger than it still goes through alone; 1KiB to 16GiB)"`
	FetchMaxBytes          engine.Size `hcl:"fetch_max_bytes" default:"16MiB" doc:"most bytes a fetch response may carry (the client buffers about one per broker while the source is paused; at most 1GiB)"`
	FetchMaxPartitionBytes engine.Size `hcl:"fetch_max_partition_bytes" default:"1MiB" doc:"most bytes per partition in a fetch response"`

	CommitInterval   time.Duration `hcl:"commit_interval" default:"1s" doc:"how often acknowledged offsets are committed (also on revoke and at shutdown)"`
	SessionTimeout   time.Duration `hcl:"session_timeout" default:"45s" doc:"a replica that has not heartbeated for this long loses its partitions (Event Hubs: 30s)"`
	RebalanceTimeout time.Duration `hcl:"rebalance_timeout" default:"60s" doc:"how long a rebalance may take"`
	DrainTimeout     time.Duration `hcl:"drain_timeout" default:"10s" doc:"at shutdown, how long to wait for the points in flight to be acknowledged before the last commit"`

	// client_id, tls and sasl, shared with the kafka sink.
	ckafka.Client `doc.tls:"connect with TLS (Event Hubs: always; this block may add a CA)"`
}

// Spec declares the kafka source.
var Spec = engine.SourceSpec(engine.Info{
	Type:    "kafka",
	Summary: "Consumes Kafka topics (or Azure Event Hubs over its Kafka endpoint) in a consumer group; at least once, offsets committed after every sink took the points.",
	Description: "Replicas with the same group share the topics' partitions (cooperative-sticky rebalancing: a rebalance moves only the partitions " +
		"that change owner). Each record value is decoded with format (the same decoder as the mqtt, http and udp sources); a record's points " +
		"take the record timestamp when the payload carries none. Points of one partition reach the pipeline in offset order. " +
		"A partition's offset is committed only past records whose points every sink acknowledged, and past undecodable records only once " +
		"their dead letter (reason decode, with topic/partition/offset in the error) is taken by the dead-letter sink. On revoke the " +
		"acknowledged offsets are committed and the partition's unacknowledged points are left to the next owner (they may arrive twice). " +
		"A sink that gives up on points makes the source restart from the last committed offset. " +
		"When max_in_flight points or max_in_flight_bytes estimated bytes are unacknowledged the source stops polling: fetching pauses and memory stays bounded. " +
		"Metrics: flowd_kafka_records_total{result}, flowd_kafka_consumer_lag{topic,partition} (records behind the end of the partition, at each fetch and every 5 s while paused), flowd_kafka_committed_offset{topic,partition}, flowd_kafka_in_flight_points, flowd_kafka_in_flight_bytes, flowd_kafka_commits_total{result}. " +
		"Event Hubs: set connection_string (and topics to the event hub, or EntityPath); group is the consumer group, which must exist in the hub.",
	Example: `source "kafka" "telemetry" {
  brokers = ["127.0.0.1:9092"]
  topics  = ["plant.telemetry"]
  group   = "flowd-cloud"
  format  = "json"
}`,
}, New)

// Bounds of max_in_flight_bytes: below a kilobyte a single small point
// fills it; above 16 GiB it bounds nothing a gateway could hold.
const (
	minInFlightBytes = 1 << 10
	maxInFlightBytes = 16 << 30
)

// lagRefresh is how often the end offsets are asked for (fetches report
// them too, but not while the source is paused).
const lagRefresh = 5 * time.Second

// Source is a consumer group member.
type Source struct {
	cfg  Config
	env  *engine.Env
	dec  *payload.Decoder
	set  ckafka.Settings
	opts []kgo.Opt

	mu    sync.Mutex
	parts map[tp]*partState // assigned partitions

	inflight      atomic.Int64  // points handed to the pipeline, not yet acknowledged
	inflightBytes atomic.Int64  // their engine.EstimateBytes
	wake          chan struct{} // an acknowledgement released in-flight room
	failed        atomic.Pointer[string]
	run           atomic.Int64 // Run's generation: a late ack of an earlier run fails nothing

	records                *prometheus.CounterVec
	recOK, recRejected     prometheus.Counter
	lag, committedOff      *prometheus.GaugeVec
	inflightGauge          prometheus.GaugeFunc
	inflightBytesGauge     prometheus.GaugeFunc
	commits                *prometheus.CounterVec
	commitOK, commitFailed prometheus.Counter
}

type tp struct {
	topic     string
	partition int32
}

// partState is one assigned partition: its tracker once a record arrived,
// and the last offset committed.
type partState struct {
	tr        *partTracker
	committed int64 // -1: nothing committed by this member
	lag       int64 // end offset - next, at the last fetch or lag refresh
	next      int64 // offset after the last fetched record; -1: none yet
	labels    [2]string
}

// New validates the config and builds the source.
func New(c *Config, env *engine.Env) (engine.Source, error) {
	var bad engine.Problems
	set := c.Client.Settings()
	set.Logger = env.Logger
	topics, sessionTimeout := c.connection(&set, &bad)
	c.checkSubscription(topics, &bad)
	c.checkLimits(&bad)
	if err := bad.Err(); err != nil {
		return nil, err
	}
	if _, err := set.Opts(); err != nil {
		return nil, err
	}
	dec, err := payload.New(payload.Options{Format: c.Format, Codecs: env.Codecs, MaxPayload: int(c.MaxPayload), Subject: "topic", Values: true,
		Asset: c.Asset, AssetExpr: c.AssetExpr, Tag: c.Tag, TagExpr: c.TagExpr, Map: c.Map})
	if err != nil {
		return nil, err
	}
	s := &Source{cfg: *c, env: env, dec: dec, set: set, parts: map[tp]*partState{}, wake: make(chan struct{}, 1)}
	s.opts = s.consumerOpts(topics, sessionTimeout)
	s.registerMetrics(env)
	return s, nil
}

// connection applies brokers or an Event Hubs connection string to set. A
// connection string may name the topic (EntityPath) and caps the session
// timeout at the service's limit, so it returns the topics and session
// timeout to use.
func (c *Config) connection(set *ckafka.Settings, bad *engine.Problems) (topics []string, sessionTimeout time.Duration) {
	topics = c.Topics
	sessionTimeout = c.SessionTimeout
	switch {
	case c.ConnectionString != "" && len(c.Brokers) > 0:
		bad.Add("connection_string", errors.New("set brokers or connection_string, not both"))
	case c.ConnectionString != "" && c.SASL != nil:
		bad.Add("sasl", errors.New("connection_string authenticates itself; remove the sasl block"))
	case c.ConnectionString != "":
		cs, err := ckafka.ParseConnectionString(c.ConnectionString)
		if err != nil {
			bad.Add("connection_string", err)
			break
		}
		set.ApplyEventHubs(cs, c.ConnectionString)
		if len(topics) == 0 && cs.EntityPath != "" {
			topics = []string{cs.EntityPath}
		}
		sessionTimeout = min(sessionTimeout, ckafka.EventHubsSessionTimeout)
	case len(c.Brokers) == 0:
		bad.Add("brokers", errors.New("set brokers (or connection_string for Event Hubs)"))
	default:
		set.Brokers = c.Brokers
	}
	return topics, sessionTimeout
}

// checkSubscription checks what the group consumes. It runs right after
// connection, whose problems it looks at.
func (c *Config) checkSubscription(topics []string, bad *engine.Problems) {
	// Without a usable connection string its hub is unknown: topics may be
	// missing only because of that.
	if len(topics) == 0 && (c.ConnectionString == "" || len(*bad) == 0) {
		bad.Add("topics", errors.New("no topics to consume"))
	}
	if c.TopicRegex {
		for _, t := range topics {
			if _, err := regexp.Compile(t); err != nil {
				bad.Add("topics", fmt.Errorf("topic regex %q: %w", t, err))
			}
		}
	}
	if c.Group == "" {
		bad.Add("group", errors.New("must not be empty"))
	}
}

// checkLimits checks the bounds on batches, memory in flight, fetch sizes
// and timings.
func (c *Config) checkLimits(bad *engine.Problems) {
	bad.Between("batch_size", int64(c.BatchSize), 1, engine.MaxBatchSize)
	bad.Between("max_poll_records", int64(c.MaxPollRecords), 1, engine.MaxBatchSize)
	bad.Between("max_in_flight", int64(c.MaxInFlight), 1, engine.MaxPendingPoints)
	if c.MaxInFlightBytes < minInFlightBytes || c.MaxInFlightBytes > maxInFlightBytes {
		bad.Add("max_in_flight_bytes", errors.New("must be between 1KiB and 16GiB"))
	}
	if c.MaxPayload < 0 || c.MaxPayload > engine.MaxMessageSize { // 0: no limit of its own
		bad.Add("max_payload", errors.New("must be between 0 and 256MiB"))
	}
	if c.FetchMaxBytes < 1 || c.FetchMaxBytes > 1<<30 {
		bad.Add("fetch_max_bytes", errors.New("must be between 1 byte and 1GiB"))
	} else if c.FetchMaxPartitionBytes < 1 || c.FetchMaxPartitionBytes > c.FetchMaxBytes {
		bad.Add("fetch_max_partition_bytes", errors.New("must be between 1 byte and fetch_max_bytes"))
	}
	if c.CommitInterval <= 0 {
		bad.Add("commit_interval", errors.New("must be positive"))
	}
	if c.DrainTimeout < 0 {
		bad.Add("drain_timeout", errors.New("must not be negative"))
	}
}

// consumerOpts are the consumer group options added to the client's own
// (brokers, TLS, SASL): offsets are committed by hand, so the partition
// callbacks of s take part.
func (s *Source) consumerOpts(topics []string, sessionTimeout time.Duration) []kgo.Opt {
	c := &s.cfg
	start := kgo.NewOffset().AtStart()
	if c.StartOffset == "latest" {
		start = kgo.NewOffset().AtEnd()
	}
	opts := []kgo.Opt{
		kgo.ConsumerGroup(c.Group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(start),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
		kgo.FetchMaxBytes(int32(c.FetchMaxBytes)),
		kgo.FetchMaxPartitionBytes(int32(c.FetchMaxPartitionBytes)),
		kgo.SessionTimeout(sessionTimeout),
		kgo.RebalanceTimeout(c.RebalanceTimeout),
	}
	if c.TopicRegex {
		opts = append(opts, kgo.ConsumeRegex())
	}
	return opts
}

// registerMetrics creates the source's metrics and registers them with env.
func (s *Source) registerMetrics(env *engine.Env) {
	s.records = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flowd_kafka_records_total", Help: "Records read by the kafka source, by result (ok, rejected: did not decode, dead-lettered).",
	}, []string{"result"})
	s.recOK, s.recRejected = s.records.WithLabelValues("ok"), s.records.WithLabelValues("rejected")
	s.lag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "flowd_kafka_consumer_lag", Help: "Records of an assigned partition behind its end offset (at each fetch, and every 5 s while the source is paused).",
	}, []string{"topic", "partition"})
	s.committedOff = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "flowd_kafka_committed_offset", Help: "Last offset committed by this member for an assigned partition.",
	}, []string{"topic", "partition"})
	s.inflightGauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "flowd_kafka_in_flight_points", Help: "Points handed to the pipeline and not yet acknowledged.",
	}, func() float64 { return float64(s.inflight.Load()) })
	s.inflightBytesGauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "flowd_kafka_in_flight_bytes", Help: "Estimated bytes of the points handed to the pipeline and not yet acknowledged (as the memory buffer counts them).",
	}, func() float64 { return float64(s.inflightBytes.Load()) })
	s.commits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flowd_kafka_commits_total", Help: "Offset commits, by result (ok, failed).",
	}, []string{"result"})
	s.commitOK, s.commitFailed = s.commits.WithLabelValues("ok"), s.commits.WithLabelValues("failed")
	env.MustRegister(s.records, s.lag, s.committedOff, s.inflightGauge, s.inflightBytesGauge, s.commits)
}

// Run consumes until ctx ends or a sink gives up on points (then it returns
// an error and the engine starts it again from the committed offsets).
func (s *Source) Run(ctx context.Context, out engine.Output) error {
	cl, err := s.set.NewClient(s.opts...)
	if err != nil {
		s.env.SetState(engine.StateFailing, err)
		return err
	}
	s.run.Add(1)
	s.failed.Store(nil)
	s.env.SetState(engine.StateConnecting, nil)
	err = s.consume(ctx, cl, out)
	s.drain()
	// Commit what was acknowledged, then leave the group; the revoke that
	// leaving triggers commits nothing more.
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	s.commit(cctx, cl)
	cancel()
	cl.Close()
	s.mu.Lock()
	for k, ps := range s.parts {
		ps.tr.retire()
		s.forget(k, ps)
	}
	s.mu.Unlock()
	if ctx.Err() != nil {
		s.env.SetState(engine.StateStopped, nil)
		return nil
	}
	s.env.SetState(engine.StateFailing, err)
	return err
}

// consume is the poll loop.
func (s *Source) consume(ctx context.Context, cl *kgo.Client, out engine.Output) error {
	tick := time.NewTicker(s.cfg.CommitInterval)
	defer tick.Stop()
	lagTick := time.NewTicker(lagRefresh)
	defer lagTick.Stop()
	dec := s.dec.Clone()
	b := batcher{s: s, out: out, dec: dec}
	connected := false
	for {
		if f := s.failed.Load(); f != nil {
			return errors.New(*f)
		}
		// Backpressure: no poll while the window is full, so the client
		// fetches no further than the one response per broker it buffers.
		for s.full() {
			select {
			case <-s.wake:
			case <-tick.C:
				s.commit(ctx, cl)
			case <-lagTick.C:
				s.refreshLag(ctx, cl)
			case <-ctx.Done():
				return nil
			}
		}
		select {
		case <-tick.C:
			s.commit(ctx, cl)
		case <-lagTick.C:
			s.refreshLag(ctx, cl)
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, s.cfg.CommitInterval)
		fs := cl.PollRecords(pctx, s.cfg.MaxPollRecords)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if fs.IsClientClosed() {
			return errors.New("client closed")
		}
		var ferr error
		fs.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			if ferr == nil {
				ferr = fmt.Errorf("fetch %s/%d: %w", topic, p, err)
			}
		})
		if ferr != nil {
			s.env.Logger.Warn("kafka fetch", "err", ferr)
			s.env.SetState(engine.StateConnecting, ferr)
			connected = false
		} else if !connected {
			s.env.SetState(engine.StateConnected, nil)
			connected = true
		}
		var err error
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if err == nil && len(p.Records) > 0 {
				err = b.partition(ctx, p)
			}
		})
		if err != nil {
			return nil // Emit fails only at shutdown
		}
	}
}

// full reports whether either in-flight bound is reached. With nothing in
// flight it is never full (max_in_flight_bytes is at least 1KiB), so a
// record larger than the byte bound still goes through alone, as a batch
// larger than the memory buffer's max_size does.
func (s *Source) full() bool {
	return s.inflight.Load() >= int64(s.cfg.MaxInFlight) || s.inflightBytes.Load() >= int64(s.cfg.MaxInFlightBytes)
}

// partition hands one fetched partition's records to the pipeline in order.
func (s *Source) partition(p kgo.FetchTopicPartition) (*partState, bool) {
	k := tp{p.Topic, p.Partition}
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, ok := s.parts[k]
	if !ok {
		return nil, false // revoked since the fetch
	}
	if ps.tr == nil {
		ps.tr = newPartTracker(p.Records[0].Offset)
		ps.committed = p.Records[0].Offset // the group's position already
	}
	ps.next = p.Records[len(p.Records)-1].Offset + 1
	if p.HighWatermark >= 0 {
		s.setLag(ps, p.HighWatermark)
	}
	return ps, true
}

// setLag records a partition's lag against its end offset; called with mu held.
func (s *Source) setLag(ps *partState, end int64) {
	if ps.next < 0 {
		return
	}
	ps.lag = max(end-ps.next, 0)
	s.lag.WithLabelValues(ps.labels[0], ps.labels[1]).Set(float64(ps.lag))
}

// refreshLag asks the brokers for the end offsets of the assigned
// partitions: while the source is paused no fetch reports them, and the
// lag must still grow.
func (s *Source) refreshLag(ctx context.Context, cl *kgo.Client) {
	s.mu.Lock()
	seen := map[string]bool{}
	var topics []string
	for k := range s.parts {
		if !seen[k.topic] {
			seen[k.topic] = true
			topics = append(topics, k.topic)
		}
	}
	s.mu.Unlock()
	if len(topics) == 0 {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(lctx, topics...)
	if err != nil {
		return
	}
	// A partition not fetched from yet (paused before its first fetch)
	// starts at the group's committed offset, or else at start_offset.
	committed := cl.CommittedOffsets()
	var starts kadm.ListedOffsets
	if s.cfg.StartOffset != "latest" {
		starts, _ = adm.ListStartOffsets(lctx, topics...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ends.Each(func(o kadm.ListedOffset) {
		ps, ok := s.parts[tp{o.Topic, o.Partition}]
		if !ok || o.Err != nil || o.Offset < 0 {
			return
		}
		if ps.next < 0 {
			pos := o.Offset // latest
			if c, ok := committed[o.Topic][o.Partition]; ok && c.Offset >= 0 {
				pos = c.Offset
			} else if st, ok := starts.Lookup(o.Topic, o.Partition); ok && st.Err == nil && st.Offset >= 0 {
				pos = st.Offset
			}
			ps.lag = max(o.Offset-pos, 0)
			s.lag.WithLabelValues(ps.labels[0], ps.labels[1]).Set(float64(ps.lag))
			return
		}
		s.setLag(ps, o.Offset)
	})
}

// batcher decodes records into batches of whole records.
type batcher struct {
	s   *Source
	out engine.Output
	dec *payload.Decoder
	pts []engine.Point
}

func (b *batcher) partition(ctx context.Context, p kgo.FetchTopicPartition) error {
	s := b.s
	ps, ok := s.partition(p)
	if !ok {
		return nil
	}
	tr := ps.tr
	var attrs map[string]string
	end := int64(-1) // offset after the last record in b.pts
	for _, r := range p.Records {
		if b.pts == nil {
			b.pts = engine.GetPoints(s.cfg.BatchSize)
		}
		n := len(b.pts)
		var err error
		b.pts, err = b.dec.Decode(b.pts, r.Topic, r.Value, r.Timestamp.UnixNano())
		if err != nil {
			if err := b.flush(ctx, tr, end); err != nil {
				return err
			}
			end = -1
			s.recRejected.Inc()
			s.deadLetter(tr, r, err)
			continue
		}
		s.recOK.Inc()
		if s.cfg.RecordAttrs {
			attrs = recordAttrs(r)
			for i := n; i < len(b.pts); i++ {
				b.pts[i].Attrs = mergeAttrs(b.pts[i].Attrs, attrs)
			}
		}
		end = r.Offset + 1
		if len(b.pts) >= s.cfg.BatchSize {
			if err := b.flush(ctx, tr, end); err != nil {
				return err
			}
			end = -1
		}
	}
	err := b.flush(ctx, tr, end)
	return err
}

// flush emits the pending points as one span ending at end.
func (b *batcher) flush(ctx context.Context, tr *partTracker, end int64) error {
	if end < 0 {
		return nil
	}
	s := b.s
	pts := b.pts
	b.pts = nil
	// Sized before Emit: the pipeline owns the points after it.
	return b.out.Emit(ctx, pts, s.hold(tr, tr.add(end), pts, end, nil))
}

// hold counts pts in flight for span seq of tr (the records before offset
// end, or the dead letter of record dead) and returns their ack callback,
// which marks the span and releases exactly what was counted, also after a
// revoke or a lost partition: it runs once whatever happened to the
// partition. One closure per span, as before the byte count.
func (s *Source) hold(tr *partTracker, seq uint64, pts []engine.Point, end int64, dead *kgo.Record) func(error) {
	n, nb := int64(len(pts)), engine.EstimateBytes(pts)
	s.inflight.Add(n)
	s.inflightBytes.Add(nb)
	run := s.run.Load()
	return func(err error) {
		// Rejected points were settled for good (dead-lettered, or dropped
		// and counted): commit past them, consuming again would not help.
		settled := err == nil || errors.Is(err, engine.ErrRejected)
		tr.ack(seq, settled)
		s.release(n, nb)
		if !settled && !errors.Is(err, engine.ErrShutdown) && s.run.Load() == run {
			s.fail(err, end, dead)
		}
	}
}

// fail makes the poll loop stop: the points before offset end, or the dead
// letter of record dead, were not taken.
func (s *Source) fail(err error, end int64, dead *kgo.Record) {
	msg := fmt.Sprintf("points before offset %d not delivered (%v)", end, err)
	if dead != nil {
		msg = fmt.Sprintf("dead letter of %s/%d@%d not taken (%v)", dead.Topic, dead.Partition, dead.Offset, err)
	}
	msg += "; consuming again from the committed offset"
	s.failed.CompareAndSwap(nil, &msg)
}

func (s *Source) release(n, nb int64) {
	s.inflight.Add(-n)
	s.inflightBytes.Add(-nb)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// deadLetter sends an undecodable record to the dead-letter sink as its own
// span: the offset moves past it once the dead letter is taken.
func (s *Source) deadLetter(tr *partTracker, r *kgo.Record, derr error) {
	seq := tr.add(r.Offset + 1)
	pts := []engine.Point{engine.RawPoint("kafka", r.Value, recordAttrs(r))}
	done := s.hold(tr, seq, pts, r.Offset+1, r)
	s.env.RejectAck(pts, "decode", fmt.Errorf("record %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, derr), done)
}

// recordAttrs are a record's coordinates, key, timestamp and headers.
func recordAttrs(r *kgo.Record) map[string]string {
	m := make(map[string]string, 5+len(r.Headers))
	m["kafka_topic"] = r.Topic
	m["kafka_partition"] = strconv.Itoa(int(r.Partition))
	m["kafka_offset"] = strconv.FormatInt(r.Offset, 10)
	if r.Key != nil {
		m["kafka_key"] = string(r.Key)
	}
	m["kafka_timestamp"] = strconv.FormatInt(r.Timestamp.UnixMilli(), 10)
	for _, h := range r.Headers {
		m["kafka_header_"+h.Key] = string(h.Value)
	}
	return m
}

// mergeAttrs adds the record's attrs to a point's own (the point's win).
func mergeAttrs(own, rec map[string]string) map[string]string {
	if len(own) == 0 {
		return rec
	}
	m := make(map[string]string, len(own)+len(rec))
	for k, v := range rec {
		m[k] = v
	}
	for k, v := range own {
		m[k] = v
	}
	return m
}

// drain waits up to drain_timeout for the points in flight.
func (s *Source) drain() {
	deadline := time.NewTimer(s.cfg.DrainTimeout)
	defer deadline.Stop()
	for s.inflight.Load() > 0 {
		select {
		case <-s.wake:
		case <-deadline.C:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// commit commits every assigned partition whose acknowledged offset moved.
func (s *Source) commit(ctx context.Context, cl *kgo.Client) {
	s.mu.Lock()
	offsets := s.collect(nil)
	s.mu.Unlock()
	s.commitOffsets(ctx, cl, offsets)
}

// collect gathers the committable offsets of the given partitions (nil:
// all assigned); called with mu held.
func (s *Source) collect(only map[string][]int32) map[string]map[int32]kgo.EpochOffset {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	add := func(k tp, ps *partState) {
		if ps.tr == nil {
			return
		}
		off := ps.tr.position()
		if off <= ps.committed {
			return
		}
		if offsets[k.topic] == nil {
			offsets[k.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[k.topic][k.partition] = kgo.EpochOffset{Epoch: -1, Offset: off}
	}
	if only == nil {
		for k, ps := range s.parts {
			add(k, ps)
		}
		return offsets
	}
	for topic, parts := range only {
		for _, p := range parts {
			k := tp{topic, p}
			if ps, ok := s.parts[k]; ok {
				add(k, ps)
			}
		}
	}
	return offsets
}

func (s *Source) commitOffsets(ctx context.Context, cl *kgo.Client, offsets map[string]map[int32]kgo.EpochOffset) {
	if len(offsets) == 0 {
		return
	}
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			s.commitFailed.Inc()
			if ctx.Err() == nil {
				s.env.Logger.Warn("kafka commit", "err", err)
			}
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 {
					s.commitFailed.Inc()
					continue
				}
				off := offsets[t.Topic][p.Partition].Offset
				if ps, ok := s.parts[tp{t.Topic, p.Partition}]; ok && off > ps.committed {
					ps.committed = off
					s.committedOff.WithLabelValues(ps.labels[0], ps.labels[1]).Set(float64(off))
				}
			}
		}
		s.commitOK.Inc()
	})
}

// assigned adds partitions; their trackers start at the first fetched record.
func (s *Source) assigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, parts := range m {
		for _, p := range parts {
			k := tp{topic, p}
			if _, ok := s.parts[k]; !ok {
				s.parts[k] = &partState{committed: -1, next: -1, labels: [2]string{topic, strconv.Itoa(int(p))}}
			}
		}
	}
	s.env.Logger.Info("kafka partitions assigned", "partitions", m)
}

// revoked commits the acknowledged offsets of the revoked partitions and
// retires their trackers: points still in flight for them are never
// committed by this member (the new owner reads them again).
func (s *Source) revoked(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	for topic, parts := range m {
		for _, p := range parts {
			if ps, ok := s.parts[tp{topic, p}]; ok {
				ps.tr.retire()
			}
		}
	}
	offsets := s.collect(m)
	s.mu.Unlock()
	s.commitOffsets(ctx, cl, offsets)
	s.mu.Lock()
	for topic, parts := range m {
		for _, p := range parts {
			k := tp{topic, p}
			if ps, ok := s.parts[k]; ok {
				s.forget(k, ps)
			}
		}
	}
	s.mu.Unlock()
	if len(m) > 0 {
		s.env.Logger.Info("kafka partitions revoked", "partitions", m)
	}
}

// lost retires partitions without committing: the group has moved on.
func (s *Source) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, parts := range m {
		for _, p := range parts {
			k := tp{topic, p}
			if ps, ok := s.parts[k]; ok {
				ps.tr.retire()
				s.forget(k, ps)
			}
		}
	}
	s.env.Logger.Warn("kafka partitions lost", "partitions", m)
}

// forget drops a partition and its metrics; called with mu held.
func (s *Source) forget(k tp, ps *partState) {
	delete(s.parts, k)
	s.lag.DeleteLabelValues(ps.labels[0], ps.labels[1])
	s.committedOff.DeleteLabelValues(ps.labels[0], ps.labels[1])
}

// Lag is the backlog per assigned partition ("topic/partition"), shown on
// the status page.
func (s *Source) Lag() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.parts))
	for _, ps := range s.parts {
		out[ps.labels[0]+"/"+ps.labels[1]] = ps.lag
	}
	return out
}
