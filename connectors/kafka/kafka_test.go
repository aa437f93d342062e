package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/codecs"
	ckafka "github.com/flowd/flowd/common/kafka"
	"github.com/flowd/flowd/engine"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func broker(t testing.TB) string {
	b := os.Getenv("FLOWD_TEST_KAFKA")
	if b == "" {
		t.Skip("FLOWD_TEST_KAFKA not set (eval \"$(e2e/services.sh env)\")")
	}
	return b
}

// topic creates a fresh topic and deletes it when the test ends.
func topic(t testing.TB, brokers string, partitions int32) string {
	t.Helper()
	name := fmt.Sprintf("test-kafkasource-%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), time.Now().UnixNano())
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
		if err != nil {
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		kadm.NewClient(cl).DeleteTopics(ctx, name)
	})
	return name
}

// produce writes records with the given values, keyed so each lands on the
// partition chosen by part(i).
func produce(t testing.TB, brokers, topic string, n int, value func(i int) string, part func(i int) int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, n)
	for i := range n {
		recs[i] = &kgo.Record{Topic: topic, Partition: part(i), Key: []byte(fmt.Sprint(i)), Value: []byte(value(i)),
			Headers: []kgo.RecordHeader{{Key: "site", Value: []byte("north")}}}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// committed reads the group's committed offsets.
func committed(t testing.TB, brokers, group, topic string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	os, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	os.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			out[o.Partition] = o.At
		}
	})
	return out
}

// heldOutput keeps every batch and its done callback for the test to ack.
type heldOutput struct {
	mu      sync.Mutex
	batches []held
}

type held struct {
	points []engine.Point
	done   func(error)
}

func (o *heldOutput) Emit(_ context.Context, pts []engine.Point, done func(error)) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.batches = append(o.batches, held{append([]engine.Point(nil), pts...), done})
	return nil
}

func (o *heldOutput) snapshot() []held {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]held(nil), o.batches...)
}

// ackAsTheyCome acknowledges every batch, held or still to come, until
// the returned stop is called.
func (o *heldOutput) ackAsTheyCome() (stop func()) {
	quit := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		acked := 0
		for {
			select {
			case <-quit:
				return
			case <-time.After(10 * time.Millisecond):
			}
			bs := o.snapshot()
			for _, b := range bs[acked:] {
				b.done(nil)
			}
			acked = len(bs)
		}
	}()
	return func() { close(quit); <-ended }
}

func (o *heldOutput) points() int {
	n := 0
	for _, b := range o.snapshot() {
		n += len(b.points)
	}
	return n
}

func newSource(t testing.TB, c Config) *Source {
	t.Helper()
	if c.Format == "" {
		c.Format = "json"
	}
	def := Config{StartOffset: "earliest", MaxPayload: 1 << 20, BatchSize: 7, MaxPollRecords: 100, MaxInFlight: 100000, MaxInFlightBytes: 64 << 20,
		FetchMaxBytes: 1 << 20, FetchMaxPartitionBytes: 1 << 20, CommitInterval: 100 * time.Millisecond,
		SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second, DrainTimeout: time.Second, Client: ckafka.Client{ClientID: "flowd-test"}}
	if c.BatchSize == 0 {
		c.BatchSize = def.BatchSize
	}
	if c.MaxPollRecords == 0 {
		c.MaxPollRecords = def.MaxPollRecords
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = def.MaxInFlight
	}
	if c.MaxInFlightBytes == 0 {
		c.MaxInFlightBytes = def.MaxInFlightBytes
	}
	c.StartOffset, c.MaxPayload, c.FetchMaxBytes, c.FetchMaxPartitionBytes = def.StartOffset, def.MaxPayload, def.FetchMaxBytes, def.FetchMaxPartitionBytes
	c.CommitInterval, c.SessionTimeout, c.RebalanceTimeout, c.DrainTimeout, c.ClientID = def.CommitInterval, def.SessionTimeout, def.RebalanceTimeout, def.DrainTimeout, def.ClientID
	src, err := New(&c, &engine.Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Codecs: codecs.All()})
	if err != nil {
		t.Fatal(err)
	}
	return src.(*Source)
}

func waitFor(t testing.TB, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCommitsOnlyAcknowledged holds every batch, acknowledges them out of
// order, and checks after each step that the group's committed offset is
// exactly the end of the acknowledged prefix of each partition.
func TestCommitsOnlyAcknowledged(t *testing.T) {
	brokers := broker(t)
	tp := topic(t, brokers, 3)
	const n = 300
	produce(t, brokers, tp, n, func(i int) string {
		return fmt.Sprintf(`{"asset":"a","tag":"t%d","value":%d}`, i%3, i)
	}, func(i int) int32 { return int32(i % 3) })
	group := tp + "-g"
	src := newSource(t, Config{Brokers: []string{brokers}, Topics: []string{tp}, Group: group, RecordAttrs: true})
	out := &heldOutput{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	waitFor(t, 30*time.Second, func() bool { return out.points() == n }, "all points")

	// Order per partition, and the record attrs.
	next := map[string]int{}
	for _, b := range out.snapshot() {
		for _, p := range b.points {
			part := p.Attrs["kafka_partition"]
			v, _ := p.Value.Float64()
			if int(v) < next[part] {
				t.Fatalf("partition %s out of order: %v after %d", part, v, next[part])
			}
			next[part] = int(v)
			if p.Attrs["kafka_header_site"] != "north" || p.Attrs["kafka_key"] != fmt.Sprint(int(v)) || p.Attrs["kafka_topic"] != tp {
				t.Fatalf("attrs %v", p.Attrs)
			}
		}
	}
	time.Sleep(300 * time.Millisecond)
	if c := committed(t, brokers, group, tp); len(c) != 0 {
		t.Fatalf("committed %v before any acknowledgement", c)
	}
	// Acknowledge every batch except the second of each partition.
	bs := out.snapshot()
	seen := map[string]int{}
	var heldBack []held
	want := map[int32]int64{}
	blocked := map[string]bool{}
	for _, b := range bs {
		part := b.points[0].Attrs["kafka_partition"]
		seen[part]++
		if seen[part] == 2 {
			heldBack = append(heldBack, b)
			blocked[part] = true
			continue
		}
		b.done(nil)
		if !blocked[part] {
			var off int64
			fmt.Sscan(b.points[len(b.points)-1].Attrs["kafka_offset"], &off)
			var p int32
			fmt.Sscan(part, &p)
			want[p] = off + 1
		}
	}
	waitFor(t, 10*time.Second, func() bool { return fmt.Sprint(committed(t, brokers, group, tp)) == fmt.Sprint(want) }, fmt.Sprintf("commit %v", want))
	time.Sleep(300 * time.Millisecond)
	if c := committed(t, brokers, group, tp); fmt.Sprint(c) != fmt.Sprint(want) {
		t.Fatalf("committed %v, want %v (not past the held batches)", c, want)
	}
	for _, b := range heldBack {
		b.done(nil)
	}
	all := map[int32]int64{0: n / 3, 1: n / 3, 2: n / 3}
	waitFor(t, 10*time.Second, func() bool { return fmt.Sprint(committed(t, brokers, group, tp)) == fmt.Sprint(all) }, "commit of everything")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestBackpressureStopsPolling: with nothing acknowledged, the source takes
// no more than max_in_flight points plus one poll's worth.
func TestBackpressureStopsPolling(t *testing.T) {
	brokers := broker(t)
	tp := topic(t, brokers, 1)
	const n = 2000
	produce(t, brokers, tp, n, func(i int) string { return fmt.Sprintf(`{"tag":"t","value":%d}`, i) }, func(int) int32 { return 0 })
	src := newSource(t, Config{Brokers: []string{brokers}, Topics: []string{tp}, Group: tp + "-g", MaxInFlight: 100, MaxPollRecords: 50, BatchSize: 10})
	out := &heldOutput{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	waitFor(t, 30*time.Second, func() bool { return out.points() >= 100 }, "the window to fill")
	time.Sleep(time.Second)
	if got := out.points(); got > 150 {
		t.Fatalf("%d points taken with nothing acknowledged, window is 100 + a poll of 50", got)
	}
	// Acknowledge as they come: everything arrives.
	stop := out.ackAsTheyCome()
	waitFor(t, 30*time.Second, func() bool { return out.points() == n }, "every point")
	stop()
	cancel()
	<-done
}

// TestSinkGaveUpRestartsFromCommitted: a batch acknowledged with an error
// (a sink gave up) stops the source without committing past it; run again,
// the source reads from the committed offset, so the batch comes back.
func TestSinkGaveUpRestartsFromCommitted(t *testing.T) {
	brokers := broker(t)
	tp := topic(t, brokers, 1)
	const n = 50
	produce(t, brokers, tp, n, func(i int) string { return fmt.Sprintf(`{"tag":"t","value":%d}`, i) }, func(int) int32 { return 0 })
	group := tp + "-g"
	src := newSource(t, Config{Brokers: []string{brokers}, Topics: []string{tp}, Group: group, BatchSize: 10, MaxPollRecords: 10})
	out := &heldOutput{}
	done := make(chan error, 1)
	go func() { done <- src.Run(context.Background(), out) }()
	waitFor(t, 30*time.Second, func() bool { return out.points() == n }, "all points")
	bs := out.snapshot()
	bs[0].done(nil)
	bs[1].done(fmt.Errorf("sink gave up"))
	for _, b := range bs[2:] {
		b.done(nil)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not delivered") {
			t.Fatalf("Run returned %v, want the undelivered points' error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop after a sink gave up")
	}
	if c := committed(t, brokers, group, tp); c[0] != 10 {
		t.Fatalf("committed %v, want 10 (the end of the first, acknowledged batch)", c)
	}
	out2 := &heldOutput{}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- src.Run(ctx, out2) }()
	waitFor(t, 30*time.Second, func() bool { return out2.points() == n-10 }, "the points from offset 10 again")
	if v, _ := out2.snapshot()[0].points[0].Value.Int64(); v != 10 {
		t.Fatalf("second run starts at value %d, want 10", v)
	}
	for _, b := range out2.snapshot() {
		b.done(nil)
	}
	waitFor(t, 10*time.Second, func() bool { return committed(t, brokers, group, tp)[0] == n }, "commit to the end")
	cancel()
	<-done
}

// TestEventHubsSettings: a connection string alone gives the namespace's
// Kafka endpoint, TLS, SASL PLAIN with $ConnectionString, the Event Hubs
// client limits the eventhubs sink applies, and the EntityPath as topic.
func TestEventHubsSettings(t *testing.T) {
	const cs = "Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=c2VjcmV0;EntityPath=telemetry"
	src := newSource(t, Config{ConnectionString: cs, Group: "$Default"})
	set := src.set
	if len(set.Brokers) != 1 || set.Brokers[0] != "myns.servicebus.windows.net:9093" {
		t.Fatalf("brokers %v", set.Brokers)
	}
	if set.TLS == nil || set.SASL == nil || set.SASL.Mechanism != "PLAIN" || set.SASL.Username != "$ConnectionString" || set.SASL.Password != cs {
		t.Fatalf("tls %v sasl %+v", set.TLS, set.SASL)
	}
	if set.MaxRequestBytes != 1_040_000 || set.MetadataMaxAge != 180*time.Second || set.ConnIdleTimeout != 180*time.Second || set.RequestTimeout != 30*time.Second {
		t.Fatalf("limits not applied: %+v", set)
	}
	if _, err := set.Opts(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		field string
		c     Config
	}{
		{"brokers", Config{Topics: []string{"t"}, Group: "g"}},
		{"connection_string", Config{Brokers: []string{"b:9092"}, ConnectionString: "Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=v", Topics: []string{"t"}, Group: "g"}},
		{"connection_string", Config{ConnectionString: "Endpoint=sb://x/", Topics: []string{"t"}, Group: "g"}},
		{"topics", Config{Brokers: []string{"b:9092"}, Group: "g"}},
		{"topics", Config{Brokers: []string{"b:9092"}, Topics: []string{"("}, TopicRegex: true, Group: "g"}},
		{"group", Config{Brokers: []string{"b:9092"}, Topics: []string{"t"}}},
		{"map", Config{Brokers: []string{"b:9092"}, Topics: []string{"t"}, Group: "g", Format: "map"}},
		{"max_in_flight_bytes", Config{Brokers: []string{"b:9092"}, Topics: []string{"t"}, Group: "g", MaxInFlightBytes: 1023}},
		{"max_in_flight_bytes", Config{Brokers: []string{"b:9092"}, Topics: []string{"t"}, Group: "g", MaxInFlightBytes: 16<<30 + 1}},
	} {
		c := tc.c
		if c.Format == "" {
			c.Format = "json"
		}
		if c.MaxInFlightBytes == 0 {
			c.MaxInFlightBytes = 1 << 20
		}
		c.BatchSize, c.MaxPollRecords, c.MaxInFlight, c.FetchMaxBytes, c.FetchMaxPartitionBytes, c.CommitInterval = 1, 1, 1, 1<<20, 1<<20, time.Second
		_, err := New(&c, &engine.Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Codecs: codecs.All()})
		var fe *engine.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: error %v, want one on %s", tc.c, err, tc.field)
			continue
		}
		if strings.Contains(err.Error(), "dg==") || strings.Contains(err.Error(), "SharedAccessKey=v") {
			t.Errorf("the key is in the error: %v", err)
		}
	}
}

// TestTopicRegex consumes two topics matched by one expression.
func TestTopicRegex(t *testing.T) {
	brokers := broker(t)
	a := topic(t, brokers, 1)
	b := topic(t, brokers, 1)
	produce(t, brokers, a, 5, func(i int) string { return fmt.Sprintf(`{"tag":"a","value":%d}`, i) }, func(int) int32 { return 0 })
	produce(t, brokers, b, 7, func(i int) string { return fmt.Sprintf(`{"tag":"b","value":%d}`, i) }, func(int) int32 { return 0 })
	re := "^(" + regexp.QuoteMeta(a) + "|" + regexp.QuoteMeta(b) + ")$"
	src := newSource(t, Config{Brokers: []string{brokers}, Topics: []string{re}, TopicRegex: true, Group: a + "-g"})
	out := &heldOutput{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	waitFor(t, 30*time.Second, func() bool { return out.points() == 12 }, "the points of both topics")
	cancel()
	<-done
}
