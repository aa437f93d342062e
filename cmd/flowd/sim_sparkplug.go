package main

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

// simSparkplug is one simulated Sparkplug B edge node: its NDEATH is the
// connection's will, it sends its births on every connect and on every
// rebirth request (NCMD), then the values as DDATA by alias, and its NDEATH
// when it stops. It returns how many metric values the broker accepted.
func simSparkplug(ctx context.Context, o *simMQTTOptions, s *mqttc.Settings, n int, log *slog.Logger) (int64, error) {
	id := fmt.Sprintf("%s-%d", o.prefix, n)
	edge, err := sparkplug.NewEdgeNode(o.group, id)
	if err != nil {
		return 0, err
	}
	ncmd := sparkplug.NodeTopic(o.group, sparkplug.NCMD, id)
	births := make(chan bool, 4) // true: a rebirth request
	signal := func(rebirth bool) {
		select {
		case births <- rebirth:
		default:
		}
	}
	var connErr atomic.Pointer[error]
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	cm, err := mqttc.Connect(cctx, s, id, false, mqttc.Handlers{
		OnConnectPacket: func(c *paho.Connect) {
			d := edge.Connecting(time.Now().UnixNano())
			c.WillMessage = &paho.WillMessage{Topic: d.Topic, Payload: d.Payload, QoS: 1}
		},
		OnUp: func(*autopaho.ConnectionManager, *paho.Connack) { signal(false) },
		OnPublish: func(pr autopaho.PublishReceived) {
			if pr.Packet.Topic == ncmd && sparkplug.IsRebirthRequest(pr.Packet.Payload) {
				signal(true)
			}
		},
		OnError: func(err error) {
			connErr.Store(&err)
			log.Warn("mqtt connection", "client_id", id, "err", err)
		},
	}, log)
	if err != nil {
		return 0, err
	}
	if err := cm.AwaitConnection(ctx); err != nil {
		if e := connErr.Load(); e != nil {
			return 0, *e
		}
		return 0, err
	}
	publish := func(msgs []sparkplug.Message) error {
		for _, m := range msgs {
			if _, err := cm.Publish(cctx, &paho.Publish{Topic: m.Topic, QoS: byte(o.qos), Payload: m.Payload}); err != nil {
				return mqttc.Explain(err)
			}
		}
		return nil
	}
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	per := o.assets * o.tags
	last := make([]engine.Value, per)
	assets := make([]string, o.assets)
	tags := make([]string, o.tags)
	for a := range o.assets {
		assets[a] = fmt.Sprintf("asset%d", a+1)
	}
	for t := range o.tags {
		tags[t] = fmt.Sprintf("tag%d", t+1)
	}
	// Three kinds of metrics: a counter (Int64), a switch (Boolean) and
	// analog values (Double).
	value := func(i, cycle int) engine.Value {
		switch i % o.tags {
		case 0:
			return engine.Int(int64(cycle*per + i))
		case 1:
			return engine.Bool(cycle%2 == 0)
		}
		return engine.Float(math.Round((50+20*math.Sin(float64(cycle)*0.1+float64(i))+rng.NormFloat64())*1000) / 1000)
	}
	var sent int64
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	carry, cycle, i := 0.0, 0, 0
	var batch []engine.Point
	var werr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case rebirth := <-births:
			if !rebirth {
				sctx, scancel := context.WithTimeout(cctx, 10*time.Second)
				if _, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: ncmd, QoS: 1}}}); err != nil {
					log.Warn("subscribe", "topic", ncmd, "err", mqttc.Explain(err))
				}
				scancel()
			}
			var msgs []sparkplug.Message
			if rebirth || !edge.Alive() {
				msgs = edge.Births(time.Now().UnixNano())
			}
			if err := publish(msgs); err != nil {
				edge.Stale()
			}
			continue
		case <-tick.C:
		}
		budget := math.MaxInt32
		if o.rate > 0 {
			carry += o.rate / 100
			budget = int(carry)
			carry -= float64(budget)
		} else {
			budget = per
		}
		batch = batch[:0]
		now := time.Now().UnixNano()
		for ; budget > 0; budget-- {
			if o.count > 0 && sent+int64(len(batch)) >= o.count {
				break
			}
			if i == per {
				i, cycle = 0, cycle+1
			}
			if last[i].IsNull() || rng.Float64() < o.change {
				last[i] = value(i, cycle)
				batch = append(batch, engine.Point{Asset: assets[i/o.tags], Tag: tags[i%o.tags], Value: last[i], TS: now})
			}
			i++
		}
		if len(batch) > 0 {
			msgs, _ := edge.Data(batch, now)
			if err := publish(msgs); err != nil {
				edge.Stale()
				if cctx.Err() != nil || !errors.Is(err, autopaho.ConnectionDownError) {
					werr = err
					break loop
				}
				continue
			}
			sent += int64(len(batch))
		}
		if o.count > 0 && sent >= o.count {
			break
		}
	}
	// A clean disconnect does not send the will: publish the death.
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer dcancel()
	d := edge.Death(time.Now().UnixNano())
	_, _ = cm.Publish(dctx, &paho.Publish{Topic: d.Topic, QoS: 1, Payload: d.Payload})
	err = cm.Disconnect(dctx)
	if werr != nil {
		err = werr
	}
	return sent, err
}
