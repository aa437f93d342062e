package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	jsoncodec "github.com/flowd/flowd/codecs/json"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
	"github.com/flowd/flowd/engine/pointexpr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func points(assets, tags, steps int) []engine.Point {
	var out []engine.Point
	ts := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).UnixNano()
	for s := 0; s < steps; s++ {
		for a := 0; a < assets; a++ {
			for t := 0; t < tags; t++ {
				out = append(out, engine.Point{
					Asset: fmt.Sprintf("line%d", a), Tag: fmt.Sprintf("t%d", t),
					Value: engine.Float(float64(s*1000 + a*10 + t)), TS: ts + int64(s)*int64(time.Second),
				})
			}
		}
	}
	return out
}

func TestOptsRejectBadSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  Settings
		want string
	}{
		{"no brokers", Settings{}, "no brokers"},
		{"compression", Settings{Brokers: []string{"x:1"}, Compression: "brotli"}, "unknown compression"},
		{"acks", Settings{Brokers: []string{"x:1"}, Acks: "some"}, "unknown acks"},
		{"partitioner", Settings{Brokers: []string{"x:1"}, Partitioner: "random"}, "unknown partitioner"},
		{"ca file", Settings{Brokers: []string{"x:1"}, TLS: &TLS{CAFile: "/nonexistent/ca.pem"}}, "ca_file"},
		{"half a key pair", Settings{Brokers: []string{"x:1"}, TLS: &TLS{CertFile: "c.pem"}}, "go together"},
		{"sasl", Settings{Brokers: []string{"x:1"}, SASL: &SASL{Mechanism: "GSSAPI"}}, "unknown SASL mechanism"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.set.Opts()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// The settings land in the client as asked: franz-go's defaults (snappy,
// 10 ms linger) are overridden.
func TestSettingsReachTheClient(t *testing.T) {
	set := Settings{
		Brokers: []string{"127.0.0.1:1"}, Compression: "none", Acks: "all", Idempotent: true,
		Linger: 0, BatchMaxBytes: 512 << 10, MaxBufferedRecords: 1234, DeliveryTimeout: 7 * time.Second,
		RequestTimeout: 9 * time.Second, SASL: &SASL{Mechanism: "SCRAM-SHA-512", Username: "u", Password: "p"},
	}
	cl, err := set.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	check := func(opt any, want any) {
		t.Helper()
		if got := cl.OptValue(opt); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%T: got %v, want %v", opt, got, want)
		}
	}
	check(kgo.ProducerLinger, time.Duration(0))
	check(kgo.MaxBufferedRecords, int64(1234))
	check(kgo.RecordDeliveryTimeout, 7*time.Second)
	check(kgo.ProduceRequestTimeout, 9*time.Second)
	check(kgo.ProducerBatchMaxBytes, int32(512<<10))
	codecs := cl.OptValues(kgo.ProducerBatchCompression)
	if len(codecs) != 1 || fmt.Sprint(codecs[0]) != fmt.Sprint([]kgo.CompressionCodec{kgo.NoCompression()}) {
		t.Errorf("compression %v, want none", codecs)
	}
	if m := cl.OptValue(kgo.SASL); fmt.Sprint(m) == "[]" || m == nil {
		t.Errorf("no SASL mechanism set")
	}
}

func TestCheckEncoding(t *testing.T) {
	for _, tc := range []struct {
		enc   Encoding
		field string
	}{
		{Encoding{Topic: "t", MaxRecordBytes: 1000}, "format"},
		{Encoding{Topic: "t", Codec: jsoncodec.Codec, Key: "k", KeyBy: KeyAsset, MaxRecordBytes: 1000}, "key_by"},
		{Encoding{Topic: "t", Codec: jsoncodec.BatchCodec, KeyBy: KeyAsset, MaxRecordBytes: 1000}, "key_by"},
		{Encoding{Topic: "t", Codec: jsoncodec.AssetCodec, KeyBy: KeyTag, MaxRecordBytes: 1000}, "key_by"},
		{Encoding{Topic: "t", Codec: jsoncodec.Codec, MaxRecordBytes: 10}, "max_message_bytes"},
		{Encoding{Codec: jsoncodec.Codec, MaxRecordBytes: 1000}, "topic"},
		{Encoding{Topic: "t", Codec: jsoncodec.Codec, KeyExpr: mustExpr("tag"), KeyBy: KeyAsset, MaxRecordBytes: 1000}, "key_expr"},
		{Encoding{Topic: "t", Codec: jsoncodec.BatchCodec, KeyExpr: mustExpr("tag"), MaxRecordBytes: 1000}, "key_expr"},
		{Encoding{Topic: "t", TopicExpr: mustExpr("tag"), Codec: jsoncodec.Codec, MaxRecordBytes: 1000}, "topic_expr"},
	} {
		if field, err := CheckEncoding(&tc.enc); err == nil || field != tc.field {
			t.Errorf("%+v: field %q err %v, want field %q", tc.enc, field, err, tc.field)
		}
	}
	if _, err := CheckEncoding(&Encoding{Topic: "t", Codec: jsoncodec.AssetCodec, KeyBy: KeyAsset, MaxRecordBytes: 1000}); err != nil {
		t.Error(err)
	}
}

func mustExpr(src string) *pointexpr.Program {
	p, err := pointexpr.Compile("x", engine.Expr{Src: src}, engine.KindString)
	if err != nil {
		panic(err)
	}
	return p
}

// Topics and keys from expressions: one record per point to the topic its
// expression names, keyed by its key expression; a point whose expression
// fails is rejected, the others are written.
func TestWriteTopicAndKeyExpressions(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "plant.line0", "plant.line1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := newWriter(t, c, Encoding{
		TopicExpr: mustExpr("'plant.' + asset"), KeyExpr: mustExpr("tag + '@' + asset"),
		Codec: jsoncodec.Codec, MaxRecordBytes: 1 << 20,
	})
	pts := points(2, 3, 1)
	pts = append(pts, engine.Point{Asset: "", Tag: "x", TS: 1}) // topic "plant.": no such topic
	var rejected []int
	w.Enc.TopicExpr = mustExpr("asset == '' ? '' : 'plant.' + asset")
	n, err := w.Write(context.Background(), pts, func(i int, err error) {
		if !errors.Is(err, ErrExpr) {
			t.Errorf("reject reason %v", err)
		}
		rejected = append(rejected, i)
	}, nil)
	if err != nil || n != 6 || len(rejected) != 1 || rejected[0] != 6 {
		t.Fatalf("n=%d err=%v rejected=%v", n, err, rejected)
	}
	for _, topic := range []string{"plant.line0", "plant.line1"} {
		recs := readAll(t, c.ListenAddrs(), topic, 3)
		if len(recs) != 3 {
			t.Fatalf("%s: %d records", topic, len(recs))
		}
		for _, r := range recs {
			pts, _ := codec.DecodePoints(nil, r.Value)
			if "plant."+pts[0].Asset != topic || string(r.Key) != pts[0].Tag+"@"+pts[0].Asset {
				t.Fatalf("%s: record keyed %s holds %+v", topic, r.Key, pts[0])
			}
		}
	}

	// json_batch with a topic expression: one array per topic.
	w.Enc.Codec = jsoncodec.BatchCodec
	w.Enc.KeyExpr = nil
	w.Enc.TopicExpr = mustExpr("'plant.' + asset")
	if n, err := w.Write(context.Background(), points(2, 3, 1), nil, nil); err != nil || n != 2 {
		t.Fatalf("json_batch by topic: %d records, %v", n, err)
	}

	// A point too large for a record, grouped by topic into a copy, is
	// still reported by its index in the written points.
	w.Enc.MaxRecordBytes = 1000
	byAsset := points(2, 3, 1) // line0 ×3, then line1 ×3: interleave them
	pts = nil
	for i := 0; i < 3; i++ {
		pts = append(pts, byAsset[i], byAsset[3+i])
	}
	pts[3].Value = engine.String(strings.Repeat("x", 2000)) // line1, the 5th of the topic-grouped copy
	rejected = rejected[:0]
	n, err = w.Write(context.Background(), pts, func(i int, err error) {
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("reject reason %v", err)
		}
		rejected = append(rejected, i)
	}, nil)
	if err != nil || len(rejected) != 1 || rejected[0] != 3 {
		t.Fatalf("n=%d err=%v rejected=%v, want [3]", n, err, rejected)
	}
}

// cluster starts an in-process fake Kafka with one topic.
func cluster(t *testing.T, topic string, partitions int32) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func readAll(t *testing.T, addrs []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

func newWriter(t *testing.T, c *kfake.Cluster, enc Encoding, extra ...kgo.Opt) *Writer {
	t.Helper()
	set := Settings{Brokers: c.ListenAddrs(), Acks: "all", Idempotent: true, MaxBufferedRecords: 10000, DeliveryTimeout: 5 * time.Second}
	cl, err := set.NewClient(extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &Writer{Client: cl, Enc: enc}
}

func TestWriteJSONKeysHeadersAndContent(t *testing.T) {
	c := cluster(t, "plant", 3)
	w := newWriter(t, c, Encoding{Topic: "plant", Codec: jsoncodec.Codec, KeyBy: KeyAssetTag, Headers: true, MaxRecordBytes: 1 << 20})
	pts := points(3, 4, 5)
	n, err := w.Write(context.Background(), pts, func(int, error) { t.Fatal("nothing should be rejected") }, nil)
	if err != nil || n != len(pts) {
		t.Fatalf("wrote %d of %d: %v", n, len(pts), err)
	}
	recs := readAll(t, c.ListenAddrs(), "plant", len(pts))
	if len(recs) != len(pts) {
		t.Fatalf("read %d records, want %d", len(recs), len(pts))
	}
	want := map[string]*engine.Point{}
	for i := range pts {
		want[string(codec.AppendPoint(nil, &pts[i]))] = &pts[i]
	}
	last := map[string]int64{}
	part := map[string]int32{}
	for _, r := range recs {
		p, ok := want[string(r.Value)]
		if !ok {
			t.Fatalf("unexpected record value %s", r.Value)
		}
		delete(want, string(r.Value))
		k := p.Asset + "/" + p.Tag
		if string(r.Key) != k {
			t.Fatalf("key %q, want %q", r.Key, k)
		}
		if pp, ok := part[k]; ok && pp != r.Partition {
			t.Fatalf("key %s in two partitions", k)
		}
		part[k] = r.Partition
		if p.TS <= last[k] {
			t.Fatalf("key %s out of order", k)
		}
		last[k] = p.TS
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		if h[HeaderAsset] != p.Asset || h[HeaderTag] != p.Tag || h[HeaderTS] != time.Unix(0, p.TS).UTC().Format(time.RFC3339Nano) {
			t.Fatalf("headers %v for %s", h, k)
		}
	}
}

func TestWriteJSONBatchSplitsUnderTheLimit(t *testing.T) {
	c := cluster(t, "batches", 1)
	const limit = 4096
	w := newWriter(t, c, Encoding{Topic: "batches", Codec: jsoncodec.BatchCodec, Key: "plant", MaxRecordBytes: limit})
	pts := points(2, 10, 10) // 200 points, ~80 bytes each: several records
	n, err := w.Write(context.Background(), pts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, c.ListenAddrs(), "batches", n)
	if n < 2 || len(recs) != n {
		t.Fatalf("%d records written, %d read: want a split batch", n, len(recs))
	}
	var got []engine.Point
	for _, r := range recs {
		if len(r.Value) > limit {
			t.Fatalf("record of %d bytes over the %d limit", len(r.Value), limit)
		}
		if string(r.Key) != "plant" {
			t.Fatalf("key %q", r.Key)
		}
		got, err = codec.DecodePoints(got, r.Value)
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != len(pts) {
		t.Fatalf("%d points back, want %d", len(got), len(pts))
	}
	for i := range pts {
		if got[i].Asset != pts[i].Asset || got[i].Tag != pts[i].Tag || got[i].TS != pts[i].TS || !got[i].Value.Equal(pts[i].Value) {
			t.Fatalf("point %d: %+v, want %+v", i, got[i], pts[i])
		}
	}
}

func TestWriteAssetJSON(t *testing.T) {
	c := cluster(t, "assets", 2)
	w := newWriter(t, c, Encoding{Topic: "assets", Codec: jsoncodec.AssetCodec, KeyBy: KeyAsset, Headers: true, MaxRecordBytes: 1 << 20})
	pts := points(3, 4, 1)
	n, err := w.Write(context.Background(), pts, nil, nil)
	if err != nil || n != 3 {
		t.Fatalf("%d records, %v; want one per asset", n, err)
	}
	for _, r := range readAll(t, c.ListenAddrs(), "assets", 3) {
		if !bytes.HasPrefix(r.Value, []byte(`{"asset":"`+string(r.Key)+`","points":{`)) {
			t.Fatalf("record keyed %s: %s", r.Key, r.Value)
		}
	}
}

func TestTooLargePointIsRejectedNotRetried(t *testing.T) {
	c := cluster(t, "big", 1)
	w := newWriter(t, c, Encoding{Topic: "big", Codec: jsoncodec.Codec, MaxRecordBytes: 200})
	pts := points(1, 3, 1)
	pts[1].Value = engine.String(strings.Repeat("x", 500))
	var rejected []engine.Point
	n, err := w.Write(context.Background(), pts, func(i int, err error) {
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("reject reason %v", err)
		}
		rejected = append(rejected, pts[i])
	}, nil)
	if err != nil || n != 2 || len(rejected) != 1 || rejected[0].Tag != "t1" {
		t.Fatalf("n=%d err=%v rejected=%v", n, err, rejected)
	}
}

// A broker that fails every produce: Write returns an error once the
// delivery timeout passes (the engine retries the batch), and succeeds when
// the broker recovers.
func TestWriteFailsThenRecovers(t *testing.T) {
	c := cluster(t, "flaky", 1)
	var failing atomic.Bool
	failing.Store(true)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !failing.Load() {
			return nil, nil, false
		}
		preq := req.(*kmsg.ProduceRequest)
		resp := preq.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range preq.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = 19 // NOT_ENOUGH_REPLICAS: retriable
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	set := Settings{Brokers: c.ListenAddrs(), Acks: "all", Idempotent: true, MaxBufferedRecords: 1000, DeliveryTimeout: time.Second}
	cl, err := set.NewClient(kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	w := &Writer{Client: cl, Enc: Encoding{Topic: "flaky", Codec: jsoncodec.Codec, MaxRecordBytes: 1 << 20}}
	pts := points(1, 5, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := w.Write(ctx, pts, nil, nil); err == nil {
		t.Fatal("Write succeeded while the broker failed every produce")
	} else if ctx.Err() != nil {
		t.Fatal("Write did not return on the delivery timeout")
	}
	failing.Store(false)
	n, err := w.Write(ctx, pts, nil, nil)
	if err != nil || n != len(pts) {
		t.Fatalf("after recovery: %d, %v", n, err)
	}
	if recs := readAll(t, c.ListenAddrs(), "flaky", len(pts)); len(recs) != len(pts) {
		t.Fatalf("%d records stored, want %d (nothing from the failed attempt)", len(recs), len(pts))
	}
}

func TestEnsureTopic(t *testing.T) {
	c := cluster(t, "exists", 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if err := EnsureTopic(ctx, cl, "exists", false, -1, -1); err != nil {
		t.Fatal(err)
	}
	err = EnsureTopic(ctx, cl, "missing", false, -1, -1)
	if err == nil || !strings.Contains(err.Error(), `topic "missing" does not exist`) {
		t.Fatalf("missing topic: %v", err)
	}
	if err := EnsureTopic(ctx, cl, "made", true, 2, 1); err != nil {
		t.Fatal(err)
	}
	// A fresh client: franz-go briefly caches the metadata that said "missing".
	cl2, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	if err := EnsureTopic(ctx, cl2, "made", false, -1, -1); err != nil {
		t.Fatalf("created topic not found: %v", err)
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, f := range []*engine.Codec{jsoncodec.Codec, jsoncodec.BatchCodec, jsoncodec.AssetCodec} {
		b.Run(f.Name, func(b *testing.B) {
			pts := points(10, 100, 1) // 1,000 points, a sim batch
			keyBy := KeyAssetTag
			if f == jsoncodec.BatchCodec {
				keyBy = KeyNone
			} else if f == jsoncodec.AssetCodec {
				keyBy = KeyAsset
			}
			w := &Writer{Enc: Encoding{Topic: "t", Codec: f, KeyBy: keyBy, Headers: true, MaxRecordBytes: 1 << 20}}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				w.encode(pts, nil)
			}
			b.ReportMetric(float64(b.N*len(pts))/b.Elapsed().Seconds(), "points/s")
		})
	}
}

// BenchmarkWriteKfake measures Write against the in-process fake broker
// (protocol, client and promise overhead; no disk, no network).
func BenchmarkWriteKfake(b *testing.B) {
	for _, f := range []*engine.Codec{jsoncodec.Codec, jsoncodec.BatchCodec} {
		b.Run(f.Name, func(b *testing.B) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "bench"))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			set := Settings{Brokers: c.ListenAddrs(), Acks: "all", Idempotent: true, MaxBufferedRecords: 100000, DeliveryTimeout: 30 * time.Second}
			cl, err := set.NewClient()
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			keyBy := KeyAssetTag
			if f == jsoncodec.BatchCodec {
				keyBy = KeyNone
			}
			w := &Writer{Client: cl, Enc: Encoding{Topic: "bench", Codec: f, KeyBy: keyBy, Headers: true, MaxRecordBytes: 1 << 20}}
			pts := points(10, 100, 1)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := w.Write(context.Background(), pts, nil, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(pts))/b.Elapsed().Seconds(), "points/s")
		})
	}
}

// Records carry exactly the messages of the shared framer (engine/codec), so
// a format means the same records here as in every other sink.
func TestEncodeUsesSharedFraming(t *testing.T) {
	for _, c := range []*engine.Codec{jsoncodec.Codec, jsoncodec.BatchCodec, jsoncodec.AssetCodec} {
		pts := points(3, 40, 1)
		w := &Writer{Enc: Encoding{Topic: "t", Codec: c, MaxRecordBytes: 2000}}
		w.encode(append([]engine.Point(nil), pts...), nil)
		f := codec.Framer{Codec: c, MaxBytes: 2000}
		buf, frames := f.Append(nil, nil, append([]engine.Point(nil), pts...), nil)
		if len(w.spans) != len(frames) {
			t.Fatalf("%s: %d records, the framer makes %d", c.Name, len(w.spans), len(frames))
		}
		for i, sp := range w.spans {
			if got := w.buf[sp.val:sp.valEnd]; !bytes.Equal(got, frames[i].Payload(buf)) {
				t.Errorf("%s: record %d differs:\n%s\n%s", c.Name, i, got, frames[i].Payload(buf))
			}
		}
	}
}

// asset_json with a topic expression: the points grouped by topic are
// regrouped by asset before framing, and a rejected asset is still reported
// by the indices of its own points.
func TestTopicGroupedAssetRejectIndices(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "plant"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := newWriter(t, c, Encoding{
		TopicExpr: mustExpr("'plant'"), Codec: jsoncodec.AssetCodec, MaxRecordBytes: 1000,
	})
	byAsset := points(2, 3, 1) // line0 ×3, then line1 ×3: interleave them
	var pts []engine.Point
	for i := 0; i < 3; i++ {
		pts = append(pts, byAsset[3+i], byAsset[i]) // line1 first
	}
	pts[1].Value = engine.String(strings.Repeat("x", 2000)) // line0: its asset is too large
	var rejected []string
	n, err := w.Write(context.Background(), pts, func(i int, err error) {
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("reject reason %v", err)
		}
		rejected = append(rejected, pts[i].Asset)
	}, nil)
	if err != nil || n != 1 || len(rejected) != 3 {
		t.Fatalf("n=%d err=%v rejected=%v", n, err, rejected)
	}
	for _, a := range rejected {
		if a != "line0" {
			t.Fatalf("rejected %v, want line0's three points", rejected)
		}
	}
	recs := readAll(t, c.ListenAddrs(), "plant", 1)
	if len(recs) != 1 || !bytes.HasPrefix(recs[0].Value, []byte(`{"asset":"line1"`)) {
		t.Fatalf("records %v", recs)
	}
}

// Records that fail while others of the same write are acknowledged (a
// topic_expr naming a topic that does not exist): the error is returned and
// retry gets exactly the points of the failed records, by their index in
// the written points, both per point and through the per-topic copy that
// asset_json regroups; the rest are written once.
func TestFailedRecordsNameTheirPoints(t *testing.T) {
	for _, cod := range []*engine.Codec{jsoncodec.Codec, jsoncodec.AssetCodec, jsoncodec.BatchCodec} {
		t.Run(cod.Name, func(t *testing.T) {
			c := cluster(t, "plant", 2)
			w := newWriter(t, c, Encoding{
				TopicExpr: mustExpr("tag == 't1' ? 'missing' : 'plant'"), Codec: cod, MaxRecordBytes: 1 << 20,
			}, kgo.UnknownTopicRetries(0))
			byAsset := points(2, 3, 2) // interleave the assets
			var pts []engine.Point
			for i := 0; i < len(byAsset)/2; i++ {
				pts = append(pts, byAsset[len(byAsset)/2+i], byAsset[i])
			}
			var want []int
			for i := range pts {
				if pts[i].Tag == "t1" {
					want = append(want, i)
				}
			}
			var retried []int
			_, err := w.Write(context.Background(), pts, func(i int, err error) { t.Errorf("rejected %d: %v", i, err) }, func(i int) {
				retried = append(retried, i)
			})
			slices.Sort(retried)
			if err == nil || fmt.Sprint(retried) != fmt.Sprint(want) {
				t.Fatalf("err %v, retried %v; want an error and %v", err, retried, want)
			}
			// One record per point written, per asset, or one array.
			recs := map[engine.Framing]int{engine.FramePoint: len(pts) - len(want), engine.FrameAsset: 2, engine.FrameBatch: 1}[cod.Framing]
			if got := readAll(t, c.ListenAddrs(), "plant", recs); len(got) != recs {
				t.Fatalf("plant holds %d records, want %d", len(got), recs)
			}
		})
	}
}
