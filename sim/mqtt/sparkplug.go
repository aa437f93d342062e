package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	mqttc "github.com/flowd/flowd/common/mqtt"
	"github.com/flowd/flowd/common/sparkplug"
	"github.com/flowd/flowd/engine"
)

// edgeNode is one simulated Sparkplug B edge node: its NDEATH is the
// connection's will, it sends its births on every connect and on every
// rebirth request (NCMD), then the values as DDATA by alias, and its NDEATH
// when it stops.
type edgeNode struct {
	o    *Options
	id   string
	log  *slog.Logger
	edge *sparkplug.EdgeNode
	ncmd string
	// births signals a connect (false) or a rebirth request (true).
	births chan bool
	cm     *autopaho.ConnectionManager
	// cctx outlives ctx so that the death can still be published.
	cctx context.Context

	rng    *rand.Rand
	per    int
	last   []engine.Value
	assets []string
	tags   []string
	carry  float64
	cycle  int
	i      int
	batch  []engine.Point
	// sent is the metric values the broker accepted.
	sent int64
}

// runEdgeNode runs edge node n until ctx ends, it sent o.Count values or a
// publish fails other than by a lost connection. It returns how many metric
// values the broker accepted.
func runEdgeNode(ctx context.Context, o *Options, s *mqttc.Settings, n int, log *slog.Logger) (int64, error) {
	e, err := newEdgeNode(o, n, log)
	if err != nil {
		return 0, err
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	e.cctx = cctx
	if err := e.connect(ctx, s); err != nil {
		return 0, err
	}
	werr := e.run(ctx)
	// A clean disconnect does not send the will: publish the death.
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer dcancel()
	d := e.edge.Death(time.Now().UnixNano())
	_, _ = e.cm.Publish(dctx, &paho.Publish{Topic: d.Topic, QoS: 1, Payload: d.Payload})
	err = e.cm.Disconnect(dctx)
	if werr != nil {
		err = werr
	}
	return e.sent, err
}

func newEdgeNode(o *Options, n int, log *slog.Logger) (*edgeNode, error) {
	id := fmt.Sprintf("%s-%d", o.ClientPrefix, n)
	edge, err := sparkplug.NewEdgeNode(o.Group, id)
	if err != nil {
		return nil, err
	}
	e := &edgeNode{o: o, id: id, log: log, edge: edge, ncmd: sparkplug.NodeTopic(o.Group, sparkplug.NCMD, id),
		births: make(chan bool, 4), rng: rand.New(rand.NewPCG(uint64(n), 7)), per: o.Assets * o.Tags,
		assets: make([]string, o.Assets), tags: make([]string, o.Tags)}
	e.last = make([]engine.Value, e.per)
	for a := range o.Assets {
		e.assets[a] = fmt.Sprintf("asset%d", a+1)
	}
	for t := range o.Tags {
		e.tags[t] = fmt.Sprintf("tag%d", t+1)
	}
	return e, nil
}

func (e *edgeNode) signal(rebirth bool) {
	select {
	case e.births <- rebirth:
	default:
	}
}

// connect starts the connection (the will set on every connect) and waits
// for the first one.
func (e *edgeNode) connect(ctx context.Context, s *mqttc.Settings) error {
	var connErr atomic.Pointer[error]
	cm, err := mqttc.Connect(e.cctx, s, e.id, false, mqttc.Handlers{
		OnConnectPacket: func(c *paho.Connect) {
			d := e.edge.Connecting(time.Now().UnixNano())
			c.WillMessage = &paho.WillMessage{Topic: d.Topic, Payload: d.Payload, QoS: 1}
		},
		OnUp: func(*autopaho.ConnectionManager, *paho.Connack) { e.signal(false) },
		OnPublish: func(pr autopaho.PublishReceived) {
			if pr.Packet.Topic == e.ncmd && sparkplug.IsRebirthRequest(pr.Packet.Payload) {
				e.signal(true)
			}
		},
		OnError: func(err error) {
			connErr.Store(&err)
			e.log.Warn("mqtt connection", "client_id", e.id, "err", err)
		},
	}, e.log)
	if err != nil {
		return err
	}
	e.cm = cm
	if err := cm.AwaitConnection(ctx); err != nil {
		if ce := connErr.Load(); ce != nil {
			return *ce
		}
		return err
	}
	return nil
}

func (e *edgeNode) publish(msgs []sparkplug.Message) error {
	for _, m := range msgs {
		if _, err := e.cm.Publish(e.cctx, &paho.Publish{Topic: m.Topic, QoS: byte(e.o.QoS), Payload: m.Payload}); err != nil {
			return mqttc.Explain(err)
		}
	}
	return nil
}

// run sends births when asked and the changed values every 10 ms tick; it
// returns the publish error that ended it, if any.
func (e *edgeNode) run(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case rebirth := <-e.births:
			e.birth(rebirth)
			continue
		case <-tick.C:
		}
		now := time.Now().UnixNano()
		e.fill(now)
		if len(e.batch) > 0 {
			msgs, _ := e.edge.Data(e.batch, now)
			if err := e.publish(msgs); err != nil {
				e.edge.Stale()
				if e.cctx.Err() != nil || !errors.Is(err, autopaho.ConnectionDownError) {
					return err
				}
				continue
			}
			e.sent += int64(len(e.batch))
		}
		if e.o.Count > 0 && e.sent >= e.o.Count {
			return nil
		}
	}
}

// birth answers a connect (subscribing to the node's commands) or a
// rebirth request with the births, unless the node is alive and not asked.
func (e *edgeNode) birth(rebirth bool) {
	if !rebirth {
		sctx, scancel := context.WithTimeout(e.cctx, 10*time.Second)
		if _, err := e.cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: e.ncmd, QoS: 1}}}); err != nil {
			e.log.Warn("subscribe", "topic", e.ncmd, "err", mqttc.Explain(err))
		}
		scancel()
	}
	var msgs []sparkplug.Message
	if rebirth || !e.edge.Alive() {
		msgs = e.edge.Births(time.Now().UnixNano())
	}
	if err := e.publish(msgs); err != nil {
		e.edge.Stale()
	}
}

// fill makes the tick's batch: the values its share of the rate (every
// metric once without a rate) visits, of which Change changed.
func (e *edgeNode) fill(now int64) {
	budget := math.MaxInt32
	if e.o.Rate > 0 {
		e.carry += e.o.Rate / 100
		budget = int(e.carry)
		e.carry -= float64(budget)
	} else {
		budget = e.per
	}
	e.batch = e.batch[:0]
	for ; budget > 0; budget-- {
		if e.o.Count > 0 && e.sent+int64(len(e.batch)) >= e.o.Count {
			break
		}
		if e.i == e.per {
			e.i, e.cycle = 0, e.cycle+1
		}
		if e.last[e.i].IsNull() || e.rng.Float64() < e.o.Change {
			e.last[e.i] = e.value(e.i, e.cycle)
			e.batch = append(e.batch, engine.Point{Asset: e.assets[e.i/e.o.Tags], Tag: e.tags[e.i%e.o.Tags], Value: e.last[e.i], TS: now})
		}
		e.i++
	}
}

// value is metric i's value in a cycle. Three kinds of metrics: a counter
// (Int64), a switch (Boolean) and analog values (Double).
func (e *edgeNode) value(i, cycle int) engine.Value {
	switch i % e.o.Tags {
	case 0:
		return engine.Int(int64(cycle*e.per + i))
	case 1:
		return engine.Bool(cycle%2 == 0)
	}
	return engine.Float(value(e.rng, cycle, i))
}
