// Package eventhubs is a sink that sends points to Azure Event Hubs, over
// AMQP (azeventhubs/v2) or over the namespace's Kafka endpoint (franz-go,
// with Event Hubs' client limits applied).
package eventhubs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	ckafka "github.com/flowd/flowd/common/kafka"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/pointexpr"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is the Event Hubs sink's configuration.
type Config struct {
	Transport        string `hcl:"transport" default:"amqp" enum:"amqp|kafka" doc:"amqp: the Event Hubs protocol (azeventhubs); kafka: the namespace's Kafka endpoint (port 9093, SASL_SSL)"`
	ConnectionString string `hcl:"connection_string" doc:"namespace or hub connection string (Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…[;EntityPath=hub]); the emulator form with UseDevelopmentEmulator=true is accepted (amqp). Use env(\"NAME\") or file(\"path\")"`
	Namespace        string `hcl:"namespace" scheme:"none" doc:"fully qualified namespace (myns.servicebus.windows.net) when authenticating with a credential block instead of a connection string"`
	EventHub         string `hcl:"event_hub" doc:"event hub name; default: the connection string's EntityPath"`

	Format           string      `hcl:"format" default:"json" doc:"a codec that encodes (docs/codecs): json: an event per point; json_batch: an event per batch (a JSON array, split to fit); asset_json: an event per asset per batch"`
	PartitionKey     string      `hcl:"partition_key" doc:"literal partition key for every event"`
	PartitionKeyExpr engine.Expr `hcl:"partition_key_expr" doc:"expression giving the partition key per point (json) or per asset from its first point (asset_json), e.g. \"asset + '/' + tag\""`
	PartitionKeyBy   string      `hcl:"partition_key_by" default:"none" enum:"none|asset|tag|asset_tag" doc:"partition key from the point's asset, tag or \"asset/tag\" (one batch per key); not with a literal partition_key"`
	Properties       bool        `hcl:"properties" default:"true" doc:"application properties (amqp) or headers (kafka): ts (source timestamp, RFC 3339), asset and tag"`

	MaxMessageBytes engine.Size   `hcl:"max_message_bytes" default:"1000000" doc:"largest event body; a json_batch is split below it, a single point above it is rejected (counted). AMQP batches are also bounded by the link's max message size (64 bytes to 256MiB)"`
	DeliveryTimeout time.Duration `hcl:"delivery_timeout" default:"60s" doc:"how long a batch may take, retries included, before the engine gets it back to retry with backoff"`
	Retries         int           `hcl:"retries" default:"3" doc:"amqp: the SDK's retries of a failed send or connection (0–100)"`

	Compression        string      `hcl:"compression" default:"none" enum:"none|gzip" doc:"kafka transport: record compression; Event Hubs accepts gzip on premium and dedicated tiers only"`
	MaxBufferedRecords int         `hcl:"max_buffered_records" default:"100000" doc:"kafka transport: records buffered before producing blocks (backpressure; at most 10,000,000)"`
	MaxBufferedBytes   engine.Size `hcl:"max_buffered_bytes" default:"64MiB" doc:"kafka transport: bytes of records buffered before producing blocks, whichever of this and max_buffered_records comes first (at least twice max_message_bytes, at most 16GiB)"`

	CheckHub bool `hcl:"check_hub" default:"true" doc:"at start, check that the event hub exists (a clear error when it does not)"`

	TLS        *ckafka.TLS `hcl:"tls,block" doc:"TLS settings for private endpoints and local test hubs (ca_file, server_name)"`
	Credential *Credential `hcl:"credential,block" doc:"Microsoft Entra ID authentication instead of a connection string"`
}

// Credential selects an Azure identity (azidentity).
type Credential struct {
	Type         string `hcl:"type" default:"default" enum:"default|workload|managed|client_secret" doc:"default: the SDK's chain (environment, workload identity, managed identity, Azure CLI); workload: AKS workload identity; managed: a managed identity; client_secret: an app registration"`
	TenantID     string `hcl:"tenant_id" doc:"tenant (client_secret)"`
	ClientID     string `hcl:"client_id" doc:"application or user-assigned identity client id"`
	ClientSecret string `hcl:"client_secret" doc:"client secret (client_secret); use env() or file()"`
}

// Spec declares the Event Hubs sink.
var Spec = engine.SinkSpec(engine.Info{
	Type:    "eventhubs",
	Summary: "Sends points to Azure Event Hubs over AMQP or its Kafka endpoint; a batch is acknowledged when the hub has it.",
	Description: "AMQP: events are packed into batches from NewEventDataBatch, sized to the link's max message size; " +
		"a full batch is sent and a new one started with the same partition key; one batch per partition key. " +
		"Kafka: franz-go with Event Hubs' client limits (request size under 1,046,528 bytes, metadata age and " +
		"idle timeout under 240 s, request timeout over 20 s, no snappy). Either way the sink returns only when " +
		"every event is acknowledged; a failure hands the points back to the engine for retry (at-least-once).",
	Example: `sink "eventhubs" "cloud" {
  inputs           = [transform.changes]
  namespace        = "plant.servicebus.windows.net"
  event_hub        = "telemetry"
  partition_key_by = "asset"
  credential {
    type = "workload"
  }
}`,
}, New)

// maxRetries bounds retries: past it a send is better handed back to the
// engine, which retries with backoff and reports the sink as failing.
const maxRetries = 100

// New validates the config and builds the sink; connections open on Connect.
func New(c *Config, env *engine.Env) (engine.Sink, error) {
	fe := func(field string, err error) error { return &engine.FieldError{Field: field, Offset: -1, Err: err} }
	cod, err := env.Codecs.Encoder(c.Format)
	if err != nil {
		return nil, fe("format", err)
	}
	var bad engine.Problems
	enc := ckafka.Encoding{
		Codec: cod, Key: c.PartitionKey, KeyBy: c.PartitionKeyBy,
		Headers: c.Properties, MaxRecordBytes: int(c.MaxMessageBytes),
	}
	if c.PartitionKeyExpr.Src != "" {
		p, err := pointexpr.Compile("partition_key_expr", c.PartitionKeyExpr, engine.KindString)
		if err != nil {
			bad = append(bad, err)
		}
		enc.KeyExpr = p
	}
	cs, csOK := c.connString(&bad)
	hub := c.eventHub(cs, csOK, &bad)
	c.checkEncoding(&enc, hub, &bad)
	c.checkDelivery(cs, &enc, &bad)
	if err := bad.Err(); err != nil {
		return nil, err
	}
	s := &Sink{cfg: *c, env: env, cs: cs, hub: hub, enc: enc}
	s.events = prometheus.NewCounter(prometheus.CounterOpts{Name: "flowd_eventhubs_events_sent_total", Help: "Events the Event Hubs sink sent and had acknowledged."})
	s.batches = prometheus.NewCounter(prometheus.CounterOpts{Name: "flowd_eventhubs_batches_sent_total", Help: "AMQP batches (or Kafka records) the Event Hubs sink sent."})
	s.failures = prometheus.NewCounter(prometheus.CounterOpts{Name: "flowd_eventhubs_send_failures_total", Help: "Writes that failed and were handed back for retry."})
	env.MustRegister(s.events, s.batches, s.failures)
	return s, nil
}

// connString is the namespace to connect to, from the connection string or
// the namespace of a credential block. ok is false when the connection
// string is missing or unusable, so its EntityPath is unknown.
func (c *Config) connString(bad *engine.Problems) (cs ConnString, ok bool) {
	ok = true
	switch {
	case c.ConnectionString != "" && c.Credential != nil:
		bad.Add("credential", errors.New("set connection_string or a credential block, not both"))
		ok = false
	case c.ConnectionString != "":
		var err error
		if cs, err = ParseConnectionString(c.ConnectionString); err != nil {
			bad.Add("connection_string", err)
			ok = false
		}
	case c.Credential != nil:
		if c.Namespace == "" {
			bad.Add("namespace", errors.New("a credential needs the namespace (myns.servicebus.windows.net)"))
		}
		if c.Credential.Type == "client_secret" && (c.Credential.TenantID == "" || c.Credential.ClientID == "" || c.Credential.ClientSecret == "") {
			bad.Add("credential", errors.New("client_secret needs tenant_id, client_id and client_secret"))
		}
		cs.Host = c.Namespace
	default:
		bad.Add("connection_string", errors.New("set connection_string, or namespace with a credential block"))
		ok = false
	}
	return cs, ok
}

// eventHub is the hub to send to: event_hub, else the connection string's
// EntityPath; the two must agree when both are set.
func (c *Config) eventHub(cs ConnString, csOK bool, bad *engine.Problems) string {
	hub := c.EventHub
	if hub == "" {
		hub = cs.EntityPath
	}
	// Without a usable connection string its hub is unknown.
	if hub == "" && csOK {
		bad.Add("event_hub", errors.New("no event hub: set event_hub or use a connection string with EntityPath"))
	}
	if cs.EntityPath != "" && c.EventHub != "" && cs.EntityPath != c.EventHub {
		bad.Add("event_hub", fmt.Errorf("the connection string is for hub %q", cs.EntityPath))
	}
	return hub
}

// checkEncoding runs the shared encoding's checks, blamed on this sink's
// attribute names, and sets the encoding's topic to hub.
func (c *Config) checkEncoding(enc *ckafka.Encoding, hub string, bad *engine.Problems) {
	enc.Topic = hub
	if enc.Topic == "" {
		enc.Topic = "-" // checked above; the encoding's own checks go on
	}
	// A partition_key_expr that did not compile is reported already.
	if enc.KeyExpr != nil || c.PartitionKeyExpr.Src == "" {
		if field, err := ckafka.CheckEncoding(enc); err != nil {
			field = strings.Replace(field, "key_", "partition_key_", 1)
			bad.Add(field, err)
		}
	}
	enc.Topic = hub
}

// checkDelivery checks TLS, timeouts, retries and buffering, and the Kafka
// transport's limits, which cap enc's record size.
func (c *Config) checkDelivery(cs ConnString, enc *ckafka.Encoding, bad *engine.Problems) {
	if c.TLS != nil {
		if _, err := c.TLS.Config(); err != nil {
			bad.Add("tls", err)
		}
	}
	if c.DeliveryTimeout <= 0 {
		bad.Add("delivery_timeout", errors.New("must be positive"))
	}
	bad.Between("retries", int64(c.Retries), 0, maxRetries)
	bad.Between("max_buffered_records", int64(c.MaxBufferedRecords), 1, engine.MaxPendingPoints)
	if c.Transport == "kafka" {
		if err := ckafka.CheckBufferedBytes(c.MaxBufferedBytes, c.MaxMessageBytes); err != nil {
			bad.Add("max_buffered_bytes", err)
		}
		if cs.Emulator {
			bad.Add("transport", errors.New("the emulator connection string has no Kafka endpoint"))
		}
		// A record must fit a record batch, which must fit a request.
		enc.MaxRecordBytes = min(enc.MaxRecordBytes, KafkaMaxRecordBytes)
	}
}

// Sink sends to Event Hubs through one of two transports.
type Sink struct {
	cfg Config
	env *engine.Env
	cs  ConnString
	hub string
	enc ckafka.Encoding

	t transport

	events, batches, failures prometheus.Counter

	// mu makes writes one at a time: the engine calls WriteAsync
	// concurrently when max_in_flight is raised, and over AMQP that writes
	// as Write does, through the transport's reused buffers.
	mu    sync.Mutex
	out   *engine.WriteError // the current write's outcome
	cur   []engine.Point     // the points of the current write
	reuse engine.WriteError  // Write's outcome, settled before the next Write
}

// transport is what the two protocols implement.
type transport interface {
	connect(ctx context.Context) error
	write(ctx context.Context, points []engine.Point) (events, batches int, err error)
	close(ctx context.Context) error
}

// Connect opens the transport and checks the hub.
func (s *Sink) Connect(ctx context.Context) error {
	if s.t != nil {
		return nil
	}
	var t transport
	if s.cfg.Transport == "kafka" {
		t = &kafkaTransport{s: s}
	} else {
		t = &amqpTransport{s: s}
	}
	if err := t.connect(ctx); err != nil {
		t.close(ctx)
		return err
	}
	s.t = t
	return nil
}

// Write sends the points and returns when the hub has acknowledged all of
// them. Points that can never be sent are reported rejected; any failure
// hands the rest back for retry (engine.WriteError).
func (s *Sink) Write(ctx context.Context, points []engine.Point) error {
	return s.write(ctx, points, &s.reuse)
}

// write is Write with the outcome in out, which the caller owns.
func (s *Sink) write(ctx context.Context, points []engine.Point, out *engine.WriteError) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.t == nil {
		return errors.New("eventhubs: not connected")
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DeliveryTimeout)
	defer cancel()
	out.Reset()
	s.out, s.cur = out, points
	ev, b, err := s.t.write(ctx, points)
	s.out, s.cur = nil, nil
	s.events.Add(float64(ev))
	s.batches.Add(float64(b))
	if err != nil {
		s.failures.Inc()
		out.Err = err
	}
	return out.Result()
}

// MaxInFlight is the default number of batches in flight (engine.AsyncSink):
// 8 over the Kafka endpoint, whose producer settles records by promises; 1
// over AMQP, which sends one batch at a time.
func (s *Sink) MaxInFlight() int {
	if s.cfg.Transport == "kafka" {
		return 8
	}
	return 1
}

// WriteAsync produces without waiting over the Kafka endpoint; over AMQP it
// writes as Write does and settles before returning.
func (s *Sink) WriteAsync(ctx context.Context, points []engine.Point, settle func(error)) {
	kt, ok := s.t.(*kafkaTransport)
	if !ok {
		// Its own outcome: the engine may settle it while the next
		// write runs.
		settle(s.write(ctx, points, new(engine.WriteError)))
		return
	}
	kt.start(ctx, points, settle)
}

// reject reports points[i] as one that can never be sent.
func (s *Sink) reject(i int, err error) {
	s.out.Reject(i, rejectReason(err), fmt.Errorf("eventhubs: %w", err))
}

// rejectSub reports sub, a sub-slice of the points being written, as points
// that can never be sent.
func (s *Sink) rejectSub(sub []engine.Point, err error) {
	s.out.RejectSub(s.cur, sub, rejectReason(err), fmt.Errorf("eventhubs: %w", err))
}

func rejectReason(err error) string {
	if errors.Is(err, ckafka.ErrExpr) {
		return "expr"
	}
	return "too_large"
}

// Close closes the transport.
func (s *Sink) Close(ctx context.Context) error {
	if s.t == nil {
		return nil
	}
	err := s.t.close(ctx)
	s.t = nil
	return err
}

// ConnString is a parsed Event Hubs connection string.
type ConnString = ckafka.ConnString

// ParseConnectionString reads the parts flowd needs from a connection string.
func ParseConnectionString(s string) (ConnString, error) { return ckafka.ParseConnectionString(s) }
