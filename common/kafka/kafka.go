// Package kafka holds the franz-go client settings shared by the sinks that
// speak the Kafka protocol (the Kafka sink and the Event Hubs sink's kafka
// transport): brokers, TLS, SASL PLAIN / SCRAM, compression, linger, batch
// size, buffering limits and timeouts, and the topic check done at start.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/flowd/flowd/common/tlsconf"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// TLS is the `tls` block of a Kafka-speaking sink.
type TLS = tlsconf.Block

// SASL is the `sasl` block of a Kafka-speaking sink.
type SASL struct {
	Mechanism string `hcl:"mechanism" default:"PLAIN" enum:"PLAIN|SCRAM-SHA-256|SCRAM-SHA-512" doc:"SASL mechanism"`
	Username  string `hcl:"username,required" doc:"user name"`
	Password  string `hcl:"password,required" doc:"password; use env(\"NAME\") or file(\"path\") rather than a literal"`
}

// Client is the group of attributes every Kafka-speaking component's config
// embeds (written flat): who the client is and how it authenticates. The
// brokers stay with each component, whose rules for them differ.
type Client struct {
	ClientID string `hcl:"client_id" default:"flowd" doc:"client id the brokers see"`
	TLS      *TLS   `hcl:"tls,block" doc:"connect with TLS"`
	SASL     *SASL  `hcl:"sasl,block" doc:"authenticate with SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"`
}

// Settings are the client settings of the group (no brokers yet).
func (c *Client) Settings() Settings {
	return Settings{ClientID: c.ClientID, TLS: c.TLS, SASL: c.SASL}
}

// Settings is everything needed to build a producing franz-go client.
type Settings struct {
	Brokers  []string
	ClientID string
	TLS      *TLS // nil: plaintext
	SASL     *SASL

	// Compression: none, gzip, snappy, lz4 or zstd.
	Compression string
	// Acks: all (with idempotence unless Idempotent is false), leader or none.
	Acks       string
	Idempotent bool
	// Partitioner: default (uniform bytes, keys hashed like the Java client),
	// sticky_key, round_robin or least_backup.
	Partitioner string

	Linger             time.Duration
	BatchMaxBytes      int32 // largest record batch; 0: franz-go's default (1 MB)
	MaxRequestBytes    int32 // largest request written to a broker; 0: default (100 MiB)
	MaxBufferedRecords int   // Produce blocks beyond this (backpressure)
	MaxBufferedBytes   int   // 0: unlimited
	DeliveryTimeout    time.Duration
	RequestTimeout     time.Duration // produce request timeout (the broker's ack wait)
	MetadataMaxAge     time.Duration
	ConnIdleTimeout    time.Duration
	DialTimeout        time.Duration

	Logger *slog.Logger
}

// Codec maps a compression name to franz-go's codec.
func Codec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "", "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("unknown compression %q (none, gzip, snappy, lz4, zstd)", name)
}

// Opts turns the settings into franz-go client options.
func (s *Settings) Opts() ([]kgo.Opt, error) {
	if len(s.Brokers) == 0 {
		return nil, errors.New("no brokers")
	}
	codec, err := Codec(s.Compression)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(s.Brokers...),
		// Always set: franz-go's default is snappy, which not every broker
		// (Event Hubs standard) accepts.
		kgo.ProducerBatchCompression(codec),
	}
	if s.ClientID != "" {
		opts = append(opts, kgo.ClientID(s.ClientID))
	}
	acks, err := s.acksOpts()
	if err != nil {
		return nil, err
	}
	opts = append(opts, acks...)
	part, err := s.partitionerOpts()
	if err != nil {
		return nil, err
	}
	opts = append(opts, part...)
	opts = append(opts, s.limitOpts()...)
	sec, err := s.securityOpts()
	if err != nil {
		return nil, err
	}
	opts = append(opts, sec...)
	if s.Logger != nil {
		opts = append(opts, kgo.WithLogger(slogLogger{s.Logger}))
	}
	return opts, nil
}

// acksOpts are the options of the acks setting; only all may keep
// idempotent writes, which need every in-sync replica's acknowledgement.
func (s *Settings) acksOpts() ([]kgo.Opt, error) {
	switch s.Acks {
	case "", "all":
		if !s.Idempotent {
			return []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite()}, nil
		}
		// Without this, franz-go waits forever for the outcome of an
		// idempotent batch already sent, and the delivery timeout never
		// hands the batch back to the engine. At-least-once: a batch the
		// engine retries after a timeout may land twice.
		return []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks()), kgo.AllowIdempotentProduceCancellation()}, nil
	case "leader":
		return []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}, nil
	case "none":
		return []kgo.Opt{kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()}, nil
	}
	return nil, fmt.Errorf("unknown acks %q (all, leader, none)", s.Acks)
}

// partitionerOpts are the options of the partitioner setting; none for
// franz-go's default.
func (s *Settings) partitionerOpts() ([]kgo.Opt, error) {
	switch s.Partitioner {
	case "", "default":
		return nil, nil
	case "sticky_key":
		return []kgo.Opt{kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil))}, nil
	case "round_robin":
		return []kgo.Opt{kgo.RecordPartitioner(kgo.RoundRobinPartitioner())}, nil
	case "least_backup":
		return []kgo.Opt{kgo.RecordPartitioner(kgo.LeastBackupPartitioner())}, nil
	}
	return nil, fmt.Errorf("unknown partitioner %q", s.Partitioner)
}

// limitOpts are the producer's sizes and timeouts; a zero setting keeps
// franz-go's default.
func (s *Settings) limitOpts() []kgo.Opt {
	// Always set: franz-go lingers 10ms by default, and a sink that waits for
	// its batch's acknowledgements gains nothing from lingering.
	opts := []kgo.Opt{kgo.ProducerLinger(max(s.Linger, 0))}
	if s.BatchMaxBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(s.BatchMaxBytes))
	}
	if s.MaxRequestBytes > 0 {
		opts = append(opts, kgo.BrokerMaxWriteBytes(s.MaxRequestBytes))
	}
	if s.MaxBufferedRecords > 0 {
		opts = append(opts, kgo.MaxBufferedRecords(s.MaxBufferedRecords))
	}
	if s.MaxBufferedBytes > 0 {
		opts = append(opts, kgo.MaxBufferedBytes(s.MaxBufferedBytes))
	}
	if s.DeliveryTimeout > 0 {
		opts = append(opts, kgo.RecordDeliveryTimeout(s.DeliveryTimeout))
	}
	if s.RequestTimeout > 0 {
		opts = append(opts, kgo.ProduceRequestTimeout(s.RequestTimeout))
	}
	if s.MetadataMaxAge > 0 {
		opts = append(opts, kgo.MetadataMaxAge(s.MetadataMaxAge))
	}
	if s.ConnIdleTimeout > 0 {
		opts = append(opts, kgo.ConnIdleTimeout(s.ConnIdleTimeout))
	}
	if s.DialTimeout > 0 {
		opts = append(opts, kgo.DialTimeout(s.DialTimeout))
	}
	return opts
}

// securityOpts are the TLS and SASL options, when set.
func (s *Settings) securityOpts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if s.TLS != nil {
		tc, err := s.TLS.Config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if s.SASL != nil {
		m, err := Mechanism(s.SASL)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// NewClient builds a client from the settings; it does not connect yet.
func (s *Settings) NewClient(extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := s.Opts()
	if err != nil {
		return nil, err
	}
	return kgo.NewClient(append(opts, extra...)...)
}

// Mechanism builds the SASL mechanism of the block.
func Mechanism(s *SASL) (sasl.Mechanism, error) {
	switch s.Mechanism {
	case "", "PLAIN":
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("unknown SASL mechanism %q (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)", s.Mechanism)
}

// EnsureTopic checks that topic exists; when it does not and create is set, it
// creates it with partitions and replication factor (-1: the broker's defaults).
func EnsureTopic(ctx context.Context, cl *kgo.Client, topic string, create bool, partitions int32, replication int16) error {
	adm := kadm.NewClient(cl)
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("metadata of topic %q: %w", topic, err)
	}
	d, ok := details[topic]
	if ok && d.Err == nil {
		return nil
	}
	if ok && d.Err != nil && !errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("topic %q: %w", topic, d.Err)
	}
	if !create {
		return &NoTopicError{Topic: topic}
	}
	resp, err := adm.CreateTopic(ctx, partitions, replication, nil, topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		msg := resp.ErrMessage
		if msg != "" {
			msg = " (" + msg + ")"
		}
		return fmt.Errorf("create topic %q: %w%s", topic, err, msg)
	}
	return nil
}

// NoTopicError is EnsureTopic's answer for a missing topic.
type NoTopicError struct{ Topic string }

func (e *NoTopicError) Error() string {
	return fmt.Sprintf("topic %q does not exist (create it, or set create_topic = true)", e.Topic)
}

type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Level() kgo.LogLevel {
	ctx := context.Background()
	switch {
	case s.l.Enabled(ctx, slog.LevelDebug):
		return kgo.LogLevelDebug
	case s.l.Enabled(ctx, slog.LevelInfo):
		// franz-go's info level reports every connection; keep it at warn.
		return kgo.LogLevelWarn
	}
	return kgo.LogLevelError
}

func (s slogLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var l slog.Level
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	case kgo.LogLevelInfo:
		l = slog.LevelInfo
	default:
		l = slog.LevelDebug
	}
	s.l.Log(context.Background(), l, "kafka: "+msg, keyvals...)
}
