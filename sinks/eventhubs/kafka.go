package eventhubs

import (
	"context"
	"errors"
	"fmt"

	ckafka "github.com/flowd/flowd/common/kafka"
	"github.com/flowd/flowd/engine"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
)

// Event Hubs' Kafka endpoint limits (common/kafka applies them).
const (
	MaxRequestBytes     = ckafka.EventHubsMaxRequestBytes
	MaxBatchBytes       = ckafka.EventHubsMaxBatchBytes
	KafkaMaxRecordBytes = ckafka.EventHubsMaxRecordBytes
	MetadataMaxAge      = ckafka.EventHubsMetadataMaxAge
	ConnIdleTimeout     = ckafka.EventHubsConnIdleTimeout
	RequestTimeout      = ckafka.EventHubsRequestTimeout
)

// KafkaSettings are the franz-go settings of the kafka transport.
func KafkaSettings(c *Config, cs ConnString) ckafka.Settings {
	set := ckafka.Settings{
		ClientID:           "flowd",
		TLS:                c.TLS,
		Compression:        c.Compression,
		Acks:               "all",
		Idempotent:         false,
		MaxBufferedRecords: c.MaxBufferedRecords,
		MaxBufferedBytes:   int(c.MaxBufferedBytes),
		DeliveryTimeout:    c.DeliveryTimeout,
	}
	set.ApplyEventHubs(cs, c.ConnectionString)
	return set
}

type kafkaTransport struct {
	s    *Sink
	cl   *kgo.Client
	w    *ckafka.Writer
	pool *ckafka.Pool // the encoders of writes in flight (WriteAsync)
}

func (t *kafkaTransport) connect(ctx context.Context) error {
	s := t.s
	set := KafkaSettings(&s.cfg, s.cs)
	set.Logger = s.env.Logger
	var extra []kgo.Opt
	if s.cfg.Credential != nil {
		cred, err := newCredential(s.cfg.Credential)
		if err != nil {
			return err
		}
		scope := "https://" + s.cs.Hostname() + "/.default"
		extra = append(extra, kgo.SASL(oauth.Oauth(func(ctx context.Context) (oauth.Auth, error) {
			tok, err := token(ctx, cred, scope)
			return oauth.Auth{Token: tok}, err
		})))
	}
	cl, err := set.NewClient(extra...)
	if err != nil {
		return err
	}
	t.cl = cl
	if s.cfg.CheckHub {
		if err := ckafka.EnsureTopic(ctx, cl, s.hub, false, 0, 0); err != nil {
			var nt *ckafka.NoTopicError
			if errors.As(err, &nt) {
				return fmt.Errorf("eventhubs: event hub %q not found on %s (create it in the namespace)", s.hub, s.cs.KafkaBroker())
			}
			return err
		}
	}
	enc := s.enc
	enc.Topic = s.hub
	t.w = &ckafka.Writer{Client: cl, Enc: enc}
	t.pool = &ckafka.Pool{Client: cl, Enc: enc}
	return nil
}

func (t *kafkaTransport) write(ctx context.Context, points []engine.Point) (int, int, error) {
	n, err := t.w.Write(ctx, points, t.s.reject, t.s.out.Retry)
	if err != nil {
		return 0, 0, err
	}
	return n, n, nil
}

// start produces points without waiting, with an encoder of its own from
// the pool, and settles them when every record's promise has run.
func (t *kafkaTransport) start(ctx context.Context, points []engine.Point, settle func(error)) {
	s := t.s
	out := &engine.WriteError{}
	reject := func(i int, err error) {
		out.Reject(i, rejectReason(err), fmt.Errorf("eventhubs: %w", err))
	}
	t.pool.Start(ctx, points, reject, out.Retry, func(n int, err error) {
		if err != nil {
			s.failures.Inc()
			out.Err = err
		} else {
			s.events.Add(float64(n))
			s.batches.Add(float64(n))
		}
		settle(out.Result())
	})
}

func (t *kafkaTransport) close(ctx context.Context) error {
	if t.cl != nil {
		t.cl.Close()
		t.cl = nil
	}
	return nil
}
