package mqtt

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flowd/flowd/codecs"
	mqttc "github.com/flowd/flowd/common/mqtt"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
)

// countOutput counts points and finishes every batch at once.
type countOutput struct{ n atomic.Int64 }

func (o *countOutput) Emit(_ context.Context, pts []engine.Point, done func(error)) error {
	o.n.Add(int64(len(pts)))
	done(nil)
	return nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// aioPayload is `flowd sim mqtt`'s message: one point padded to 180 bytes.
func aioPayload(i int) []byte {
	p := engine.Point{Asset: "c1-asset3", Tag: fmt.Sprintf("tag%d", i%50+1), Value: engine.Float(48.123 + float64(i%7)), TS: time.Now().UnixNano()}
	b := codec.AppendPoint(nil, &p)
	if pad := 180 - len(b) - len(`,"attrs":{"pad":""}`); pad > 0 {
		p.Attrs = map[string]string{"pad": strings.Repeat("x", pad)}
		b = codec.AppendPoint(b[:0], &p)
	}
	return b
}

// BenchmarkSourceIngest is the mqtt source's CPU per message: b.N messages
// of 180 bytes (QoS 1) wait in the source's broker session, then the source
// drains them into an output that finishes every batch at once. The
// process's CPU time (user + system, from getrusage) over the drain, divided
// by b.N, is cpu-ns/msg; the publisher has finished before, and the broker is
// another process. Needs FLOWD_TEST_MQTT; run with e.g.
//
//	go test ./connectors/mqtt -run '^$' -bench SourceIngest -benchtime 200000x -benchmem
func BenchmarkSourceIngest(b *testing.B) {
	broker := os.Getenv("FLOWD_TEST_MQTT")
	if broker == "" {
		b.Skip("FLOWD_TEST_MQTT is not set (e2e/services.sh env)")
	}
	run := fmt.Sprintf("ingest-%d", time.Now().UnixNano())
	c := Config{Connection: mqttc.Connection{Broker: broker, ClientID: run,
		SessionExpiry: 10 * time.Minute, KeepAlive: 30 * time.Second, ConnectTimeout: 10 * time.Second,
		BackoffMin: 200 * time.Millisecond, BackoffMax: time.Second},
		Topics: []string{"bench/" + run + "/#"}, QoS: 1, Connections: 1,
		ReceiveMaximum: 2000, Batching: engine.Batching{BatchSize: 1000, Linger: 20 * time.Millisecond}, Format: "json", MaxPayload: 1 << 20}
	src, err := New(&c, &engine.Env{Pipeline: "bench", Name: "in", Codecs: codecs.All()})
	if err != nil {
		b.Fatal(err)
	}
	s := src.(*Source)
	start := func(out engine.Output) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); s.Run(ctx, out) }()
		return func() { cancel(); <-done }
	}
	// Create the session and its subscription, then leave.
	stop := start(&countOutput{})
	for deadline := time.Now().Add(10 * time.Second); s.up.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("source did not subscribe")
		}
	}
	stop()

	ctx := context.Background()
	pub, err := mqttc.NewPublisher(ctx, &mqttc.Settings{Brokers: []string{broker}, KeepAlive: 30 * time.Second, ConnectTimeout: 10 * time.Second, CleanStart: true},
		run+"-pub", 64, nil)
	if err != nil {
		b.Fatal(err)
	}
	payloads := make([][]byte, 100)
	for i := range payloads {
		payloads[i] = aioPayload(i)
	}
	for i := range b.N {
		if err := pub.Publish(ctx, fmt.Sprintf("bench/%s/c1-asset3/%d", run, i%50), payloads[i%len(payloads)], 1); err != nil {
			b.Fatal(err)
		}
	}
	if err := pub.Close(ctx); err != nil {
		b.Fatal(err)
	}

	out := &countOutput{}
	// FLOWD_BENCH_CPUPROFILE=FILE profiles the drain alone (go test's
	// -cpuprofile would include the publishing).
	if path := os.Getenv("FLOWD_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	b.ResetTimer()
	cpu0, t0 := cpuTime(), time.Now()
	stop = start(out)
	for deadline := time.Now().Add(5 * time.Minute); out.n.Load() < int64(b.N); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("drained %d of %d", out.n.Load(), b.N)
		}
	}
	cpu, wall := cpuTime()-cpu0, time.Since(t0)
	b.StopTimer()
	stop()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/msg")
	b.ReportMetric(float64(b.N)/wall.Seconds(), "msgs/s")
}
