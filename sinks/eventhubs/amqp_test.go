package eventhubs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/flowd/flowd/codecs"
	ckafka "github.com/flowd/flowd/common/kafka"
	"github.com/flowd/flowd/engine"
)

// failSend sends through the real producer but fails its nth send, as a
// link lost between two batches would.
type failSend struct {
	producer
	n, calls int
}

func (f *failSend) SendEventDataBatch(ctx context.Context, b *azeventhubs.EventDataBatch, o *azeventhubs.SendEventDataBatchOptions) error {
	f.calls++
	if f.calls == f.n {
		return errors.New("link detached")
	}
	return f.producer.SendEventDataBatch(ctx, b, o)
}

// With one batch per partition key, a send that fails after the first key's
// batch went out hands back only the points of the keys not sent: the hub
// already has the first key's events, and a retry would send them twice.
func TestAMQPFailedSendRetriesOnlyUnsentKeys(t *testing.T) {
	conn, ca := os.Getenv("FLOWD_TEST_EVENTHUBS"), os.Getenv("FLOWD_TEST_EVENTHUBS_CA")
	if conn == "" || ca == "" {
		t.Skip("FLOWD_TEST_EVENTHUBS is not set (e2e/services.sh env)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := config()
	c.ConnectionString, c.PartitionKeyBy = conn, "asset"
	c.TLS = &ckafka.TLS{CAFile: ca, ServerName: "localhost"}
	sk, err := New(c, &engine.Env{Codecs: codecs.All()})
	if err != nil {
		t.Fatal(err)
	}
	s := sk.(*Sink)
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	tr := s.t.(*amqpTransport)
	fs := &failSend{producer: tr.prod, n: 2}
	tr.prod = fs

	var pts []engine.Point
	var want []int
	for i := range 12 {
		pts = append(pts, engine.Point{Asset: fmt.Sprintf("a%d", i%3), Tag: fmt.Sprintf("t%d", i), Value: engine.Int(int64(i)), TS: int64(i)})
		if i%3 != 0 {
			want = append(want, i) // a1, a2: the keys after the one sent
		}
	}
	err = s.Write(ctx, pts)
	var we *engine.WriteError
	if !errors.As(err, &we) || we.Err == nil {
		t.Fatalf("Write: %v, want a WriteError with the send error", err)
	}
	if fs.calls != 2 || len(we.Rejections()) != 0 || fmt.Sprint(we.Retries()) != fmt.Sprint(want) {
		t.Fatalf("sends %d, retries %v, rejections %v; want 2 sends and retries %v", fs.calls, we.Retries(), we.Rejections(), want)
	}

	// The retry passes only those points, and they all go out.
	fs.n = 0
	retry := make([]engine.Point, 0, len(want))
	for _, i := range want {
		retry = append(retry, pts[i])
	}
	if err := s.Write(ctx, retry); err != nil {
		t.Fatalf("retry: %v", err)
	}

	// One key whose events fill several batches (the mock's link takes
	// 256 KiB): the second send fails, and the first batch's events are
	// delivered while every later one is retried.
	fs.n, fs.calls = 2, 0
	pts = pts[:0]
	for i := range 3000 {
		pts = append(pts, engine.Point{Asset: "a0", Tag: fmt.Sprintf("t%04d", i), Value: engine.String(strings.Repeat("v", 100)), TS: int64(i)})
	}
	err = s.Write(ctx, pts)
	if !errors.As(err, &we) || we.Err == nil {
		t.Fatalf("Write: %v, want a WriteError with the send error", err)
	}
	r := we.Retries()
	if fs.calls != 2 || len(r) == 0 || r[0] == 0 || r[len(r)-1] != len(pts)-1 || len(r) != len(pts)-r[0] {
		t.Fatalf("sends %d, retries %d from %v; want the points after the first batch", fs.calls, len(r), r[:min(len(r), 3)])
	}
}

// Over AMQP, WriteAsync is Write; with max_in_flight raised the engine
// calls it from several goroutines at once, and each write must still
// settle with its own outcome (run with -race).
func TestAMQPConcurrentWriteAsync(t *testing.T) {
	conn, ca := os.Getenv("FLOWD_TEST_EVENTHUBS"), os.Getenv("FLOWD_TEST_EVENTHUBS_CA")
	if conn == "" || ca == "" {
		t.Skip("FLOWD_TEST_EVENTHUBS is not set (e2e/services.sh env)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := config()
	c.ConnectionString, c.PartitionKeyBy, c.MaxMessageBytes = conn, "asset", 200
	c.TLS = &ckafka.TLS{CAFile: ca, ServerName: "localhost"}
	sk, err := New(c, &engine.Env{Codecs: codecs.All()})
	if err != nil {
		t.Fatal(err)
	}
	s := sk.(*Sink)
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	const writers = 4
	results := make(chan string, writers)
	for w := range writers {
		// Writer w's batch has w+1 points over the limit, rejected by index.
		var pts []engine.Point
		for i := range 20 {
			pts = append(pts, engine.Point{Asset: fmt.Sprintf("a%d", i%2), Tag: fmt.Sprintf("w%dt%d", w, i), Value: engine.Int(int64(i)), TS: int64(i)})
		}
		for k := 0; k <= w; k++ {
			pts[k].Value = engine.String(strings.Repeat("x", 300))
		}
		go s.WriteAsync(ctx, pts, func(err error) {
			var we *engine.WriteError
			switch {
			case !errors.As(err, &we) || we.Err != nil || len(we.Retries()) != 0:
				results <- fmt.Sprintf("writer %d: %v", w, err)
			case len(we.Rejections()) != w+1:
				results <- fmt.Sprintf("writer %d: %d rejections, want %d", w, len(we.Rejections()), w+1)
			default:
				results <- ""
			}
		})
	}
	for range writers {
		if r := <-results; r != "" {
			t.Error(r)
		}
	}
}
