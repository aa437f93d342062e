package eventhubs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	ckafka "github.com/flowd/flowd/common/kafka"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
)

// producer is what the transport uses of *azeventhubs.ProducerClient.
type producer interface {
	NewEventDataBatch(context.Context, *azeventhubs.EventDataBatchOptions) (*azeventhubs.EventDataBatch, error)
	SendEventDataBatch(context.Context, *azeventhubs.EventDataBatch, *azeventhubs.SendEventDataBatchOptions) error
	GetEventHubProperties(context.Context, *azeventhubs.GetEventHubPropertiesOptions) (azeventhubs.EventHubProperties, error)
	Close(context.Context) error
}

type amqpTransport struct {
	s    *Sink
	prod producer

	buf     []byte
	events  []event
	pending []int          // the events in the batch being filled
	order   []string       // partition keys in order of first appearance
	byKey   map[string]int // a key's index in order and groups
	groups  [][]int        // event indices per key, reused between writes
	framer  codec.Framer
	frames  []codec.Frame
}

// event is one encoded event: body = buf[body:end].
type event struct {
	key        string
	body, end  int
	ts         int64
	asset, tag string
	points     []engine.Point // a sub-slice of the written points
	settled    bool           // acknowledged by the hub, or rejected
}

func (t *amqpTransport) connect(ctx context.Context) error {
	s := t.s
	opts := &azeventhubs.ProducerClientOptions{
		ApplicationID: "flowd",
		RetryOptions:  azeventhubs.RetryOptions{MaxRetries: int32(s.cfg.Retries)},
	}
	if s.cfg.TLS != nil {
		tc, err := s.cfg.TLS.Config()
		if err != nil {
			return err
		}
		opts.TLSConfig = tc
	}
	var (
		prod *azeventhubs.ProducerClient
		err  error
	)
	if s.cfg.Credential != nil {
		cred, cerr := newCredential(s.cfg.Credential)
		if cerr != nil {
			return cerr
		}
		prod, err = azeventhubs.NewProducerClient(s.cs.Host, s.hub, cred, opts)
	} else {
		hub := s.hub
		if s.cs.EntityPath != "" {
			hub = "" // the SDK takes the hub from EntityPath and refuses a second one
		}
		prod, err = azeventhubs.NewProducerClientFromConnectionString(s.cfg.ConnectionString, hub, opts)
	}
	if err != nil {
		return fmt.Errorf("eventhubs: %w", err)
	}
	t.prod = prod
	if s.cfg.CheckHub {
		props, err := prod.GetEventHubProperties(ctx, nil)
		if err != nil {
			return fmt.Errorf("eventhubs: event hub %q on %s: %w", s.hub, s.cs.Host, err)
		}
		if s.env.Logger != nil {
			s.env.Logger.Info("event hub found", "hub", props.Name, "partitions", len(props.PartitionIDs))
		}
	}
	return nil
}

func (t *amqpTransport) close(ctx context.Context) error {
	if t.prod == nil {
		return nil
	}
	err := t.prod.Close(ctx)
	t.prod = nil
	return err
}

// write sends one batch per partition key (several when a key's events do not
// fit one), each batch carrying its key, and returns once every batch is
// acknowledged.
// When a send fails, only the points of events the hub has not
// acknowledged are handed back for retry: batches already sent (of earlier
// keys, or earlier batches of the same key) are delivered.
func (t *amqpTransport) write(ctx context.Context, points []engine.Point) (int, int, error) {
	t.encode(points)
	sent, batches := 0, 0
	for g, key := range t.order {
		n, b, err := t.sendKey(ctx, key, t.groups[g])
		sent += n
		batches += b
		if err != nil {
			for i := range t.events {
				if ev := &t.events[i]; !ev.settled {
					// ev.points is a sub-slice of points: its capacity
					// tells where it starts.
					from := cap(points) - cap(ev.points)
					for j := from; j < from+len(ev.points); j++ {
						t.s.out.Retry(j)
					}
				}
			}
			return sent, batches, err
		}
	}
	return sent, batches, nil
}

func (t *amqpTransport) newBatch(ctx context.Context, key string) (*azeventhubs.EventDataBatch, error) {
	var opts *azeventhubs.EventDataBatchOptions
	if key != "" {
		k := key // every batch of this key carries it, the first and the ones after a full batch
		opts = &azeventhubs.EventDataBatchOptions{PartitionKey: &k}
	}
	b, err := t.prod.NewEventDataBatch(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("eventhubs: new batch: %w", err)
	}
	return b, nil
}

func (t *amqpTransport) sendKey(ctx context.Context, key string, idx []int) (int, int, error) {
	batch, err := t.newBatch(ctx, key)
	if err != nil {
		return 0, 0, err
	}
	sent, batches := 0, 0
	t.pending = t.pending[:0]
	send := func() error {
		if batch.NumEvents() == 0 {
			return nil
		}
		n := int(batch.NumEvents())
		if err := t.prod.SendEventDataBatch(ctx, batch, nil); err != nil {
			return fmt.Errorf("eventhubs: send %d events: %w", n, err)
		}
		for _, i := range t.pending {
			t.events[i].settled = true
		}
		t.pending = t.pending[:0]
		sent += n
		batches++
		return nil
	}
	for _, i := range idx {
		ev := &t.events[i]
		ed := &azeventhubs.EventData{Body: t.buf[ev.body:ev.end:ev.end]}
		if t.s.cfg.Properties {
			ed.Properties = map[string]any{ckafka.HeaderTS: time.Unix(0, ev.ts).UTC().Format(time.RFC3339Nano)}
			if ev.asset != "" {
				ed.Properties[ckafka.HeaderAsset] = ev.asset
			}
			if ev.tag != "" {
				ed.Properties[ckafka.HeaderTag] = ev.tag
			}
		}
		err := batch.AddEventData(ed, nil)
		if errors.Is(err, azeventhubs.ErrEventDataTooLarge) {
			if batch.NumEvents() == 0 {
				t.tooLarge(ev)
				continue
			}
			if err := send(); err != nil {
				return sent, batches, err
			}
			if batch, err = t.newBatch(ctx, key); err != nil {
				return sent, batches, err
			}
			err = batch.AddEventData(ed, nil)
			if errors.Is(err, azeventhubs.ErrEventDataTooLarge) {
				t.tooLarge(ev)
				continue
			}
		}
		if err != nil {
			return sent, batches, fmt.Errorf("eventhubs: add event: %w", err)
		}
		t.pending = append(t.pending, i)
	}
	return sent, batches, send()
}

// tooLarge rejects an event that does not fit even an empty batch.
func (t *amqpTransport) tooLarge(ev *event) {
	t.s.rejectSub(ev.points, fmt.Errorf("event of %d bytes does not fit the link's max message size", ev.end-ev.body))
	ev.settled = true
}

// encode turns points into events grouped by partition key.
func (t *amqpTransport) encode(points []engine.Point) {
	t.buf = t.buf[:0]
	t.events = t.events[:0]
	t.order = t.order[:0]
	if t.byKey == nil {
		t.byKey = map[string]int{}
	}
	clear(t.byKey)
	enc := &t.s.enc
	add := func(ev event) {
		switch {
		case enc.Key != "":
			ev.key = enc.Key
		case enc.KeyExpr != nil && len(ev.points) > 0:
			k, err := enc.KeyExpr.EvalString(&ev.points[0])
			if err != nil {
				t.s.rejectSub(ev.points, fmt.Errorf("%w: partition_key_expr: %v", ckafka.ErrExpr, err))
				return
			}
			ev.key = k
		case enc.KeyBy == ckafka.KeyAsset:
			ev.key = ev.asset
		case enc.KeyBy == ckafka.KeyTag:
			ev.key = ev.tag
		case enc.KeyBy == ckafka.KeyAssetTag:
			ev.key = ev.asset + "/" + ev.tag
		}
		g, ok := t.byKey[ev.key]
		if !ok {
			g = len(t.order)
			t.byKey[ev.key] = g
			t.order = append(t.order, ev.key)
			if g == len(t.groups) {
				t.groups = append(t.groups, nil)
			}
			t.groups[g] = t.groups[g][:0]
		}
		t.groups[g] = append(t.groups[g], len(t.events))
		t.events = append(t.events, ev)
	}
	// The framer rejects a message over max_message_bytes (too_large).
	if t.framer.Codec != enc.Codec || t.framer.MaxBytes != enc.MaxRecordBytes {
		t.framer = codec.Framer{Codec: enc.Codec, MaxBytes: enc.MaxRecordBytes}
	}
	var frames []codec.Frame
	t.buf, frames = t.framer.Append(t.buf, t.frames[:0], points, t.s.rejectSub)
	for i := range frames {
		fr := &frames[i]
		p := &fr.Points[0]
		ev := event{body: fr.Start, end: fr.End, ts: p.TS, points: fr.Points}
		switch enc.Codec.Framing {
		case engine.FramePoint:
			ev.asset, ev.tag = p.Asset, p.Tag
		case engine.FrameAsset:
			ev.asset = p.Asset
		}
		add(ev)
	}
	clear(frames)
	t.frames = frames[:0]
}
