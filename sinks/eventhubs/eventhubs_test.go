package eventhubs

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/flowd/flowd/codecs"
	"github.com/flowd/flowd/engine/codec"
	"strings"
	"testing"
	"time"

	ckafka "github.com/flowd/flowd/common/kafka"
	"github.com/flowd/flowd/engine"
	"github.com/twmb/franz-go/pkg/kgo"
)

const testConn = "Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0;EntityPath=telemetry"

func config() *Config {
	return &Config{
		Transport: "amqp", ConnectionString: testConn, Format: "json", PartitionKeyBy: "none", Properties: true,
		MaxMessageBytes: 1_000_000, DeliveryTimeout: time.Minute, Retries: 3, Compression: "none",
		MaxBufferedRecords: 100000, MaxBufferedBytes: 64 << 20, CheckHub: true,
	}
}

func TestParseConnectionString(t *testing.T) {
	cs, err := ParseConnectionString(testConn)
	if err != nil {
		t.Fatal(err)
	}
	if cs.Host != "myns.servicebus.windows.net" || cs.EntityPath != "telemetry" || cs.KeyName != "send" || cs.Key != "c2VjcmV0" {
		t.Fatalf("%+v", cs)
	}
	if cs.KafkaBroker() != "myns.servicebus.windows.net:9093" {
		t.Fatalf("kafka broker %s", cs.KafkaBroker())
	}
	local, err := ParseConnectionString("Endpoint=sb://localhost:19094/;SharedAccessKeyName=k;SharedAccessKey=v==")
	if err != nil || local.KafkaBroker() != "localhost:19094" || local.Key != "v==" {
		t.Fatalf("%+v %v", local, err)
	}
	emu, err := ParseConnectionString("Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;EntityPath=eh1")
	if err != nil || !emu.Emulator || emu.EntityPath != "eh1" {
		t.Fatalf("%+v %v", emu, err)
	}
	for _, bad := range []string{"", "SharedAccessKeyName=a;SharedAccessKey=b", "Endpoint=sb://x/;SharedAccessKeyName=a", "Endpoint=sb://x/;garbage"} {
		if _, err := ParseConnectionString(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestNewBlamesTheRightAttribute(t *testing.T) {
	for _, tc := range []struct {
		field string
		edit  func(*Config)
	}{
		{"connection_string", func(c *Config) { c.ConnectionString = "" }},
		{"connection_string", func(c *Config) { c.ConnectionString = "Endpoint=sb://x/" }},
		{"credential", func(c *Config) { c.Credential = &Credential{Type: "default"} }},
		{"namespace", func(c *Config) { c.ConnectionString = ""; c.Credential = &Credential{Type: "default"} }},
		{"credential", func(c *Config) {
			c.ConnectionString, c.Namespace = "", "ns.servicebus.windows.net"
			c.Credential = &Credential{Type: "client_secret", TenantID: "t"}
		}},
		{"event_hub", func(c *Config) { c.ConnectionString = strings.TrimSuffix(testConn, ";EntityPath=telemetry") }},
		{"event_hub", func(c *Config) { c.EventHub = "other" }},
		{"partition_key_by", func(c *Config) { c.PartitionKey = "k"; c.PartitionKeyBy = "asset" }},
		{"partition_key_by", func(c *Config) { c.Format = "json_batch"; c.PartitionKeyBy = "asset" }},
		{"tls", func(c *Config) { c.TLS = &ckafka.TLS{CAFile: "/nonexistent"} }},
		{"max_buffered_bytes", func(c *Config) { c.Transport = "kafka"; c.MaxBufferedBytes = c.MaxMessageBytes }},
		{"transport", func(c *Config) {
			c.Transport = "kafka"
			c.ConnectionString = "Endpoint=sb://localhost;SharedAccessKeyName=a;SharedAccessKey=b;UseDevelopmentEmulator=true;EntityPath=h"
		}},
	} {
		c := config()
		tc.edit(c)
		_, err := New(c, &engine.Env{Codecs: codecs.All()})
		var fe *engine.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("want an error on %s, got %v", tc.field, err)
		}
	}
	if _, err := New(config(), &engine.Env{Codecs: codecs.All()}); err != nil {
		t.Fatal(err)
	}
}

// The kafka transport applies Event Hubs' client limits; asserted on the
// franz-go client the transport builds.
func TestKafkaTransportEventHubsLimits(t *testing.T) {
	c := config()
	c.Transport = "kafka"
	cs, err := ParseConnectionString(c.ConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	set := KafkaSettings(c, cs)
	cl, err := set.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	if v := cl.OptValue(kgo.BrokerMaxWriteBytes).(int32); v >= 1_046_528 {
		t.Errorf("max request size %d, must be < 1,046,528", v)
	}
	if v := cl.OptValue(kgo.ProducerBatchMaxBytes).(int32); v >= 1_046_528 || v > cl.OptValue(kgo.BrokerMaxWriteBytes).(int32) {
		t.Errorf("batch max bytes %d", v)
	}
	if v := cl.OptValue(kgo.MaxBufferedBytes).(int64); v != 64<<20 {
		t.Errorf("max buffered bytes %d, want max_buffered_bytes (64 MiB)", v)
	}
	if v := cl.OptValue(kgo.MetadataMaxAge).(time.Duration); v >= 240*time.Second {
		t.Errorf("metadata max age %s, must be < 240s", v)
	}
	if v := cl.OptValue(kgo.ConnIdleTimeout).(time.Duration); v >= 240*time.Second {
		t.Errorf("idle timeout %s, must be < 240s", v)
	}
	if v := cl.OptValue(kgo.ProduceRequestTimeout).(time.Duration); v <= 20*time.Second {
		t.Errorf("request timeout %s, must be > 20s", v)
	}
	comp := fmt.Sprint(cl.OptValues(kgo.ProducerBatchCompression))
	if comp != fmt.Sprint([]any{[]kgo.CompressionCodec{kgo.NoCompression()}}) {
		t.Errorf("compression %s, want none by default", comp)
	}
	if cl.OptValue(kgo.DialTLSConfig) == nil {
		t.Error("no TLS: the Event Hubs Kafka endpoint is SASL_SSL")
	}
	if v := cl.OptValue(kgo.SeedBrokers).([]string); len(v) != 1 || v[0] != "myns.servicebus.windows.net:9093" {
		t.Errorf("brokers %v", v)
	}
	if set.SASL == nil || set.SASL.Mechanism != "PLAIN" || set.SASL.Username != "$ConnectionString" || set.SASL.Password != testConn {
		t.Errorf("SASL %+v: want PLAIN, $ConnectionString and the connection string", set.SASL)
	}

	// gzip is the only compression Event Hubs takes (premium, dedicated).
	c.Compression = "gzip"
	set = KafkaSettings(c, cs)
	cl2, err := set.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	if got := fmt.Sprint(cl2.OptValues(kgo.ProducerBatchCompression)); got != fmt.Sprint([]any{[]kgo.CompressionCodec{kgo.GzipCompression()}}) {
		t.Errorf("compression %s, want gzip", got)
	}
	// A record must fit the request limit.
	s, err := New(config2(c), &engine.Env{Codecs: codecs.All()})
	if err != nil {
		t.Fatal(err)
	}
	if s.(*Sink).enc.MaxRecordBytes > KafkaMaxRecordBytes {
		t.Errorf("record limit %d over %d", s.(*Sink).enc.MaxRecordBytes, KafkaMaxRecordBytes)
	}
}

func config2(c *Config) *Config { cc := *c; return &cc }

// AMQP events carry exactly the messages of the shared framer, as the Kafka
// transport and every other sink do.
func TestAMQPEventsUseSharedFraming(t *testing.T) {
	var pts []engine.Point
	for i := range 90 {
		pts = append(pts, engine.Point{Asset: fmt.Sprintf("a%d", i%3), Tag: fmt.Sprintf("t%02d", i), Value: engine.Float(float64(i) / 4), TS: int64(i)})
	}
	for _, format := range []string{"json", "json_batch", "asset_json"} {
		c := config()
		c.Format, c.MaxMessageBytes = format, 1500
		s, err := New(c, &engine.Env{Codecs: codecs.All()})
		if err != nil {
			t.Fatal(err)
		}
		tr := &amqpTransport{s: s.(*Sink)}
		tr.encode(append([]engine.Point(nil), pts...))
		cod, _ := codecs.All().Encoder(format)
		f := codec.Framer{Codec: cod, MaxBytes: 1500}
		buf, frames := f.Append(nil, nil, append([]engine.Point(nil), pts...), nil)
		if len(tr.events) != len(frames) || (format == "json_batch" && len(frames) < 2) {
			t.Fatalf("%s: %d events, the framer makes %d", format, len(tr.events), len(frames))
		}
		for i, ev := range tr.events {
			if got := tr.buf[ev.body:ev.end]; !bytes.Equal(got, frames[i].Payload(buf)) {
				t.Errorf("%s: event %d differs:\n%s\n%s", format, i, got, frames[i].Payload(buf))
			}
		}
	}
}
