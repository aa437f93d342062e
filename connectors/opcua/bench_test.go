package opcua

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	gopcua "github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	"github.com/flowd/flowd/engine"
	simplc "github.com/flowd/flowd/sim/plc"
)

// BenchmarkAppendValue measures the data value → point conversion of the hot path.
func BenchmarkAppendValue(b *testing.B) {
	src := newSource(b, Config{Endpoint: "opc.tcp://127.0.0.1:1", Nodes: map[string]string{"x": "ns=2;s=x"}})
	tags := []*tagState{{nodeSpec: nodeSpec{tag: "temperature", asset: "line1"}}}
	now := time.Now()
	dvs := []*ua.DataValue{
		{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp, Value: ua.MustVariant(21.5), SourceTimestamp: now},
		{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp, Value: ua.MustVariant(float32(1.25)), SourceTimestamp: now},
		{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp, Value: ua.MustVariant(int32(7)), SourceTimestamp: now},
		{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp, Value: ua.MustVariant("auto"), SourceTimestamp: now},
	}
	pts := make([]engine.Point, 0, 16)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		pts = src.appendValue(pts[:0], tags[0], dvs[i%len(dvs)], now)
	}
}

// BenchmarkPollCycle reads 1,000 tags from an in-process simulated PLC per
// iteration (one poll cycle: a Read request per MaxNodesPerRead nodes).
func BenchmarkPollCycle(b *testing.B) {
	plc := startPLC(b, simplc.Config{Assets: 1, Tags: 1000, Interval: time.Second, Change: 0.5})
	src := newSource(b, Config{Endpoint: plc.Endpoint(), Browse: &BrowseConfig{MaxDepth: 2, Include: []string{"Asset*/*"}}})
	ctx := context.Background()
	c, err := src.connect(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	tags, _, err := src.resolve(ctx, c)
	if err != nil {
		b.Fatal(err)
	}
	var chunks []readChunk
	for i := 0; i < len(tags); i += simplc.DefaultMaxNodesPerRead {
		part := tags[i:min(i+simplc.DefaultMaxNodesPerRead, len(tags))]
		req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnBoth}
		for _, t := range part {
			req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: t.id, AttributeID: ua.AttributeIDValue})
		}
		chunks = append(chunks, readChunk{req: req, tags: part})
	}
	out := &discardOut{}
	results := make(chan readResult, len(chunks))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := src.pollOnce(ctx, c, chunks, results, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(out.n)/b.Elapsed().Seconds(), "points/s")
}

type discardOut struct{ n int }

func (d *discardOut) Emit(ctx context.Context, pts []engine.Point, done func(error)) error {
	d.n += len(pts)
	engine.PutPoints(pts)
	return nil
}

// BenchmarkReceive measures the subscribe path from gopcua's notification
// channel to the pipeline: one iteration is one data change notification of
// 1,000 items through the receiver into Emit.
func BenchmarkReceive(b *testing.B) {
	const items = 1000
	src := newSource(b, Config{Endpoint: "opc.tcp://127.0.0.1:1", Nodes: map[string]string{"x": "ns=2;s=x"}, Interval: time.Hour})
	tags := make([]*tagState, items)
	dc := &ua.DataChangeNotification{}
	now := time.Now()
	for i := range tags {
		tags[i] = &tagState{nodeSpec: nodeSpec{tag: "Tag" + strconv.Itoa(i), asset: "Asset1"}}
		dc.MonitoredItems = append(dc.MonitoredItems, &ua.MonitoredItemNotification{ClientHandle: uint32(i),
			Value: &ua.DataValue{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp, Value: ua.MustVariant(float64(i)), SourceTimestamp: now}})
	}
	notifs := make(chan *gopcua.PublishNotificationData)
	stop := make(chan struct{})
	errc := make(chan error, 2)
	ctx, cancel := context.WithCancel(context.Background())
	out := &discardOut{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); src.receive(ctx, stop, notifs, out, tags, errc) }()
	n := &gopcua.PublishNotificationData{Value: dc}
	b.ReportAllocs()
	for b.Loop() {
		notifs <- n
	}
	close(stop)
	cancel()
	wg.Wait()
	b.ReportMetric(float64(b.N*items)/b.Elapsed().Seconds(), "points/s")
}
