package kafka

import (
	"context"
	"errors"
	"github.com/flowd/flowd/codecs"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	ckafka "github.com/flowd/flowd/common/kafka"
	"github.com/flowd/flowd/engine"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func config(brokers ...string) *Config {
	return &Config{
		Brokers: brokers, Topic: "plant", Format: "json", KeyBy: "asset_tag", Headers: true,
		Partitioner: "default", Acks: "all", Idempotent: true, Compression: "none",
		BatchMaxBytes: 1 << 20, MaxMessageBytes: 1_000_000, MaxBufferedRecords: 10000,
		MaxBufferedBytes: 64 << 20, DeliveryTimeout: 10 * time.Second, RequestTimeout: 10 * time.Second,
		Partitions: -1, ReplicationFactor: -1, Client: ckafka.Client{ClientID: "flowd"},
	}
}

func env() *engine.Env {
	return &engine.Env{Logger: slog.New(slog.DiscardHandler), Codecs: codecs.All()}
}

func TestNewBlamesTheRightAttribute(t *testing.T) {
	for _, tc := range []struct {
		field string
		edit  func(*Config)
	}{
		{"brokers", func(c *Config) { c.Brokers = nil }},
		{"topic", func(c *Config) { c.Topic = "" }},
		{"key_by", func(c *Config) { c.Key = "k" }},
		{"key_by", func(c *Config) { c.Format = "json_batch" }},
		{"idempotent", func(c *Config) { c.Acks = "leader" }},
		{"max_buffered_records", func(c *Config) { c.MaxBufferedRecords = 0 }},
		{"max_buffered_bytes", func(c *Config) { c.MaxBufferedBytes = c.MaxMessageBytes }},
		{"max_buffered_bytes", func(c *Config) { c.MaxBufferedBytes = 32 << 30 }},
		{"delivery_timeout", func(c *Config) { c.DeliveryTimeout = 0 }},
		{"batch_max_bytes", func(c *Config) { c.BatchMaxBytes = 10 }},
		{"tls", func(c *Config) { c.TLS = &ckafka.TLS{CAFile: "/nonexistent.pem"} }},
		{"sasl", func(c *Config) { c.SASL = &ckafka.SASL{Mechanism: "KERBEROS", Username: "u", Password: "p"} }},
	} {
		c := config("127.0.0.1:1")
		tc.edit(c)
		_, err := New(c, env())
		var fe *engine.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("want an error on %s, got %v", tc.field, err)
		}
	}
}

func TestConnectChecksTheTopic(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "exists"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	cfg := config(c.ListenAddrs()...)
	cfg.Topic = "missing"
	s, err := New(cfg, env())
	if err != nil {
		t.Fatal(err)
	}
	err = s.(engine.Connector).Connect(ctx)
	if err == nil || !strings.Contains(err.Error(), `topic "missing" does not exist`) {
		t.Fatalf("missing topic: %v", err)
	}

	cfg.Topic, cfg.CreateTopic, cfg.Partitions = "created", true, 3
	s, err = New(cfg, env())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.(engine.Connector).Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.(engine.Closer).Close(ctx)
	pts := []engine.Point{
		{Asset: "a", Tag: "x", Value: engine.Int(1), TS: 1},
		{Asset: "a", Tag: "y", Value: engine.Bool(true), TS: 2},
		{Asset: "b", Tag: "x", Value: engine.String("on"), TS: 3},
	}
	if err := s.Write(ctx, pts); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("created"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	keys := map[string]bool{}
	for len(keys) < 3 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { keys[string(r.Key)] = true })
	}
	for _, k := range []string{"a/x", "a/y", "b/x"} {
		if !keys[k] {
			t.Errorf("no record keyed %s (got %v)", k, keys)
		}
	}
}

func BenchmarkSinkWriteKfake(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "plant"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for _, format := range []string{"json", "json_batch"} {
		b.Run(format, func(b *testing.B) {
			cfg := config(c.ListenAddrs()...)
			cfg.Format = format
			if format == "json_batch" {
				cfg.KeyBy = "none"
			}
			s, err := New(cfg, env())
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if err := s.(engine.Connector).Connect(ctx); err != nil {
				b.Fatal(err)
			}
			defer s.(engine.Closer).Close(ctx)
			pts := make([]engine.Point, 1000)
			for i := range pts {
				pts[i] = engine.Point{Asset: "line1", Tag: "t" + string(rune('a'+i%26)), Value: engine.Float(float64(i)), TS: int64(i)}
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Write(ctx, pts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(pts))/b.Elapsed().Seconds(), "points/s")
		})
	}
}

// TestSettingsFromConfig checks that the client settings carry every
// attribute they are made of, the shared client group's included.
func TestSettingsFromConfig(t *testing.T) {
	c := config("b1:9092", "b2:9092")
	c.Client = ckafka.Client{ClientID: "me", TLS: &ckafka.TLS{ServerName: "s"}, SASL: &ckafka.SASL{Mechanism: "PLAIN", Username: "u", Password: "p"}}
	c.Linger = time.Millisecond
	got := Settings(c)
	want := ckafka.Settings{Brokers: c.Brokers, ClientID: "me", TLS: c.TLS, SASL: c.SASL,
		Compression: "none", Acks: "all", Idempotent: true, Partitioner: "default",
		Linger: time.Millisecond, BatchMaxBytes: 1 << 20, MaxBufferedRecords: 10000, MaxBufferedBytes: 64 << 20,
		DeliveryTimeout: 10 * time.Second, RequestTimeout: 10 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}
