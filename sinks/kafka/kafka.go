// Package kafka is a sink that produces points to an Apache Kafka topic with
// franz-go, acknowledging a batch only when every record of it is acknowledged
// by the brokers.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	ckafka "github.com/flowd/flowd/common/kafka"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/pointexpr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is the Kafka sink's configuration.
type Config struct {
	Brokers   []string    `hcl:"brokers,required" scheme:"none" doc:"seed brokers, host:port"`
	Topic     string      `hcl:"topic" doc:"topic to produce to (this or topic_expr)"`
	TopicExpr engine.Expr `hcl:"topic_expr" doc:"expression giving the topic per point, e.g. \"'plant.' + asset\" (json: per record; json_batch and asset_json: one record per topic). Such topics are not checked at start: a missing one fails the batch until it exists"`
	Format    string      `hcl:"format" default:"json" doc:"a codec that encodes (docs/codecs): json: a record per point; json_batch: a record per batch (a JSON array, split to stay under max_message_bytes); asset_json: a record per asset per batch"`
	Key       string      `hcl:"key" doc:"literal record key for every record"`
	KeyExpr   engine.Expr `hcl:"key_expr" doc:"expression giving the record key per point (json) or per asset from its first point (asset_json), e.g. \"asset + '/' + tag\""`
	KeyBy     string      `hcl:"key_by" default:"none" enum:"none|asset|tag|asset_tag" doc:"key records by the point's asset, tag, or \"asset/tag\" (keeps per-key order within a partition); not with a literal key"`
	Headers   bool        `hcl:"headers" default:"true" doc:"add headers: ts (source timestamp, RFC 3339) with asset and tag (json), asset and the first point's ts (asset_json), the first point's ts (json_batch)"`

	Partitioner string `hcl:"partitioner" default:"default" enum:"default|sticky_key|round_robin|least_backup" doc:"default: keyed records hash like the Java client (murmur2), unkeyed ones fill batches of ~64 KiB per partition; sticky_key: keyed hash, unkeyed sticky; round_robin; least_backup: the partition with the fewest buffered records"`
	Acks        string `hcl:"acks" default:"all" enum:"all|leader|none" doc:"all: every in-sync replica, with the idempotent producer; leader; none (fire and forget — points count as delivered when sent)"`
	Idempotent  bool   `hcl:"idempotent" default:"true" doc:"idempotent producer (needs acks = \"all\"): the client's own retries never duplicate or reorder; a record the engine retries after delivery_timeout may land twice (at-least-once)"`
	Compression string `hcl:"compression" default:"snappy" enum:"none|gzip|snappy|lz4|zstd" doc:"record batch compression (snappy, the Kafka client's own default, readable by every broker and consumer since Kafka 0.8: JSON points shrink several times, and the broker stores and serves fewer bytes; none for a peer that cannot decompress)"`

	Linger             time.Duration `hcl:"linger" default:"0s" doc:"how long a partition's batch may wait to fill before it is sent"`
	BatchMaxBytes      engine.Size   `hcl:"batch_max_bytes" default:"1MiB" doc:"largest record batch per partition in a produce request; the broker's max.message.bytes bounds it"`
	MaxMessageBytes    engine.Size   `hcl:"max_message_bytes" default:"1000000" doc:"largest record value; a json_batch is split below it, a single point above it is rejected (counted); 64 bytes to 256MiB"`
	MaxBufferedRecords int           `hcl:"max_buffered_records" default:"100000" doc:"records the client buffers before Produce blocks (backpressure to the pipeline; at most 10,000,000)"`
	MaxBufferedBytes   engine.Size   `hcl:"max_buffered_bytes" default:"64MiB" doc:"bytes of records (key, value and headers) the client buffers before Produce blocks, whichever of this and max_buffered_records comes first: large points cannot fill memory (at least twice max_message_bytes, at most 16GiB)"`
	DeliveryTimeout    time.Duration `hcl:"delivery_timeout" default:"30s" doc:"the client retries a record for this long; then it fails and the engine retries its points with backoff"`
	RequestTimeout     time.Duration `hcl:"request_timeout" default:"10s" doc:"how long the broker may take to answer a produce request (its acks wait)"`

	CreateTopic       bool `hcl:"create_topic" doc:"create the topic at start when it does not exist (otherwise a missing topic is an error)"`
	Partitions        int  `hcl:"partitions" default:"-1" doc:"partitions of a created topic (-1: the broker's num.partitions)"`
	ReplicationFactor int  `hcl:"replication_factor" default:"-1" doc:"replication factor of a created topic (-1: the broker's default)"`

	// client_id, tls and sasl, shared with the kafka source.
	ckafka.Client
}

// Spec declares the Kafka sink.
var Spec = engine.SinkSpec(engine.Info{
	Type:    "kafka",
	Summary: "Produces points to a Kafka topic (franz-go); a batch is acknowledged when every record is.",
	Description: "Every record of a batch is produced, then the sink waits for all acknowledgements: the batch " +
		"is acknowledged upstream only when all are in, and on any failure (after the client's own retries " +
		"within delivery_timeout) the engine retries the points of the records that failed with backoff (the " +
		"records acknowledged are not produced again) — at-least-once, never a silent drop. The client's buffer (max_buffered_records, max_buffered_bytes) blocks producing when full, which is the " +
		"pipeline's backpressure. The topic must exist at start unless create_topic is set.",
	Example: `sink "kafka" "cloud" {
  inputs  = [transform.changes]
  brokers = ["127.0.0.1:9092"]
  topic   = "plant.telemetry"
  format  = "json"
  key_by  = "asset_tag"
}`,
}, New)

// New validates the config and builds the sink; the client is made on Connect.
func New(c *Config, env *engine.Env) (engine.Sink, error) {
	cod, err := env.Codecs.Encoder(c.Format)
	if err != nil {
		return nil, &engine.FieldError{Field: "format", Offset: -1, Err: err}
	}
	var bad engine.Problems
	enc := ckafka.Encoding{
		Topic: c.Topic, Codec: cod, Key: c.Key, KeyBy: c.KeyBy,
		Headers: c.Headers, MaxRecordBytes: int(c.MaxMessageBytes),
	}
	compiled := true
	if c.TopicExpr.Src != "" {
		p, err := pointexpr.Compile("topic_expr", c.TopicExpr, engine.KindString)
		if err != nil {
			bad = append(bad, err)
			compiled = false
		}
		enc.TopicExpr = p
	}
	if c.KeyExpr.Src != "" {
		p, err := pointexpr.Compile("key_expr", c.KeyExpr, engine.KindString)
		if err != nil {
			bad = append(bad, err)
			compiled = false
		}
		enc.KeyExpr = p
	}
	// The encoding's checks look at the compiled expressions.
	if compiled {
		if field, err := ckafka.CheckEncoding(&enc); err != nil {
			bad.Add(field, err)
		}
	}
	if c.CreateTopic && c.Topic == "" {
		bad.Add("create_topic", errors.New("creates the fixed topic only; topic_expr topics must exist"))
	}
	if len(c.Brokers) == 0 {
		bad.Add("brokers", errors.New("needs at least one broker"))
	}
	if c.Idempotent && c.Acks != "all" {
		bad.Add("idempotent", errors.New("the idempotent producer needs acks = \"all\" (set idempotent = false)"))
	}
	bad.Between("max_buffered_records", int64(c.MaxBufferedRecords), 1, engine.MaxPendingPoints)
	if err := ckafka.CheckBufferedBytes(c.MaxBufferedBytes, c.MaxMessageBytes); err != nil {
		bad.Add("max_buffered_bytes", err)
	}
	if c.DeliveryTimeout <= 0 {
		bad.Add("delivery_timeout", errors.New("must be positive"))
	}
	if c.BatchMaxBytes < 1024 || c.BatchMaxBytes > 1<<30 {
		bad.Add("batch_max_bytes", errors.New("must be between 1KiB and 1GiB"))
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	if c.TLS != nil {
		if _, err := c.TLS.Config(); err != nil {
			return nil, &engine.FieldError{Field: "tls", Offset: -1, Err: err}
		}
	}
	if c.SASL != nil {
		if _, err := ckafka.Mechanism(c.SASL); err != nil {
			return nil, &engine.FieldError{Field: "sasl", Offset: -1, Err: err}
		}
	}
	set := Settings(c)
	set.Logger = env.Logger
	if _, err := set.Opts(); err != nil {
		return nil, &engine.FieldError{Field: "brokers", Offset: -1, Err: err}
	}
	s := &Sink{cfg: *c, env: env, set: set, enc: enc}
	s.records = prometheus.NewCounter(prometheus.CounterOpts{Name: "flowd_kafka_records_produced_total", Help: "Records the Kafka sink produced and had acknowledged."})
	s.failures = prometheus.NewCounter(prometheus.CounterOpts{Name: "flowd_kafka_produce_failures_total", Help: "Batches whose produce failed and were handed back for retry."})
	env.MustRegister(s.records, s.failures)
	return s, nil
}

// Settings maps the config onto the shared client settings.
func Settings(c *Config) ckafka.Settings {
	set := c.Client.Settings()
	set.Brokers = c.Brokers
	set.Compression, set.Acks, set.Idempotent, set.Partitioner = c.Compression, c.Acks, c.Idempotent, c.Partitioner
	set.Linger, set.BatchMaxBytes, set.MaxBufferedRecords = c.Linger, int32(c.BatchMaxBytes), c.MaxBufferedRecords
	set.MaxBufferedBytes = int(c.MaxBufferedBytes)
	set.DeliveryTimeout, set.RequestTimeout = c.DeliveryTimeout, c.RequestTimeout
	return set
}

// Sink produces to Kafka.
type Sink struct {
	cfg      Config
	env      *engine.Env
	set      ckafka.Settings
	enc      ckafka.Encoding
	cl       *kgo.Client
	w        *ckafka.Writer
	records  prometheus.Counter
	failures prometheus.Counter
	out      engine.WriteError // the current Write's outcome, reused
	rejectFn func(int, error)
	retryFn  func(int)    // s.out.Retry
	pool     *ckafka.Pool // the encoders of WriteAsync, of the current client
}

// Connect makes the client and checks (or creates) the topic.
func (s *Sink) Connect(ctx context.Context) error {
	if s.cl != nil {
		return nil
	}
	cl, err := s.set.NewClient()
	if err != nil {
		return err
	}
	if s.cfg.Topic != "" {
		if err := ckafka.EnsureTopic(ctx, cl, s.cfg.Topic, s.cfg.CreateTopic, int32(s.cfg.Partitions), int16(s.cfg.ReplicationFactor)); err != nil {
			cl.Close()
			return err
		}
	}
	s.cl = cl
	s.w = &ckafka.Writer{Client: cl, Enc: s.enc}
	s.pool = &ckafka.Pool{Client: cl, Enc: s.enc}
	return nil
}

// Write produces the points and returns when every record is acknowledged.
// Points that can never be produced are reported rejected; any produce
// failure hands the rest back for retry (engine.WriteError).
func (s *Sink) Write(ctx context.Context, points []engine.Point) error {
	if s.cl == nil {
		return errors.New("kafka: not connected")
	}
	s.out.Reset()
	if s.rejectFn == nil {
		s.rejectFn, s.retryFn = s.reject, s.out.Retry
	}
	n, err := s.w.Write(ctx, points, s.rejectFn, s.retryFn)
	if err != nil {
		s.failures.Inc()
		s.out.Err = err
		return s.out.Result()
	}
	s.records.Add(float64(n))
	return s.out.Result()
}

// MaxInFlight is the default number of batches produced at once
// (engine.AsyncSink): enough to keep the brokers' pipelines full while
// batches are encoded — with 8, a record per point left the client short
// of records to batch (kafka_json in docs/performance.md) — while
// max_buffered_records still bounds the records buffered.
func (s *Sink) MaxInFlight() int { return 16 }

// WriteAsync produces the points without waiting; settle runs when every
// record's promise has, with the batch's outcome (engine.AsyncSink). Each
// write in flight encodes into its own Writer, returned to the pool when its
// records are settled.
func (s *Sink) WriteAsync(ctx context.Context, points []engine.Point, settle func(error)) {
	pool := s.pool
	if pool == nil {
		settle(errors.New("kafka: not connected"))
		return
	}
	out := &engine.WriteError{}
	reject := func(i int, err error) { rejectInto(out, i, err, s.cfg.MaxMessageBytes) }
	pool.Start(ctx, points, reject, out.Retry, func(n int, err error) {
		if err != nil {
			s.failures.Inc()
			out.Err = err
		} else {
			s.records.Add(float64(n))
		}
		settle(out.Result())
	})
}

func rejectInto(out *engine.WriteError, i int, err error, max engine.Size) {
	if errors.Is(err, ckafka.ErrTooLarge) {
		out.Reject(i, "too_large", fmt.Errorf("kafka: %w (%d bytes)", err, max))
		return
	}
	out.Reject(i, "expr", fmt.Errorf("kafka: %w", err))
}

func (s *Sink) reject(i int, err error) { rejectInto(&s.out, i, err, s.cfg.MaxMessageBytes) }

// Close closes the client; records still buffered (after a failed Write) are
// failed, and the engine has those points for retry or shutdown accounting.
func (s *Sink) Close(ctx context.Context) error {
	if s.cl == nil {
		return nil
	}
	s.cl.Close()
	s.cl, s.w, s.pool = nil, nil, nil
	return nil
}
