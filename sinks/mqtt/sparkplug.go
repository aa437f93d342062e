package mqtt

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	mqttc "github.com/flowd/flowd/common/mqtt"
	"github.com/flowd/flowd/common/sparkplug"
	"github.com/flowd/flowd/engine"
)

// edge is the sink's Sparkplug edge node. mu orders everything that
// builds and publishes its messages, since seq runs across them.
type edge struct {
	mu     sync.Mutex
	node   *sparkplug.EdgeNode
	births chan bool // true: a rebirth request (births even when alive)
	wg     sync.WaitGroup
}

// sparkplugHandlers registers the NDEATH will (a new bdSeq per connection
// attempt), the births once connected and the NCMD subscription.
func (s *Sink) sparkplugHandlers(h *mqttc.Handlers) {
	e := s.sp
	ncmd := sparkplug.NodeTopic(e.node.Group, sparkplug.NCMD, e.node.Node)
	h.OnConnectPacket = func(c *paho.Connect) {
		// Not under e.mu: a Write may hold it while its publish waits on
		// the connection this CONNECT replaces.
		death := e.node.Connecting(time.Now().UnixNano())
		c.WillMessage = &paho.WillMessage{Topic: death.Topic, Payload: death.Payload, QoS: 1}
	}
	up := h.OnUp
	h.OnUp = func(cm *autopaho.ConnectionManager, ack *paho.Connack) {
		up(cm, ack)
		select {
		case e.births <- false:
		default:
		}
	}
	h.OnPublish = func(pr autopaho.PublishReceived) {
		if pr.Packet.Topic == ncmd && sparkplug.IsRebirthRequest(pr.Packet.Payload) {
			select {
			case e.births <- true:
			default:
			}
		}
	}
}

// sparkplugLoop subscribes to the node's NCMD and publishes births after
// each connect and on each rebirth request, until the sink closes.
func (s *Sink) sparkplugLoop(ctx context.Context, cm *autopaho.ConnectionManager) {
	e := s.sp
	defer e.wg.Done()
	ncmd := sparkplug.NodeTopic(e.node.Group, sparkplug.NCMD, e.node.Node)
	for {
		var rebirth bool
		select {
		case <-ctx.Done():
			return
		case rebirth = <-e.births:
		}
		if !rebirth {
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: ncmd, QoS: 1}}})
			cancel()
			if err != nil {
				s.connError(fmt.Errorf("subscribe %s: %w", ncmd, mqttc.Explain(err)))
			}
		}
		e.mu.Lock()
		if rebirth || !e.node.Alive() {
			msgs := e.node.Births(time.Now().UnixNano())
			if err := s.publishAll(ctx, cm, msgs); err != nil {
				e.node.Stale()
				s.connError(err)
			}
		}
		e.mu.Unlock()
	}
}

// writeSparkplug publishes points as the edge node's data (with births
// where a device or metric is new), in order, one message at a time.
func (s *Sink) writeSparkplug(ctx context.Context, cm *autopaho.ConnectionManager, points []engine.Point) error {
	e := s.sp
	e.mu.Lock()
	defer e.mu.Unlock()
	msgs, rej := e.node.Data(points, time.Now().UnixNano())
	// Points with no Sparkplug form are settled by the engine (dead letter,
	// counted once), never retried; the rest is retried if a publish fails.
	var out engine.WriteError
	for _, r := range rej {
		out.Reject(r.Index, "sparkplug", r.Err)
	}
	if err := s.publishAll(ctx, cm, msgs); err != nil {
		// The host saw part of it at most: start over with births.
		e.node.Stale()
		out.Err = err
	}
	return out.Result()
}

func (s *Sink) publishAll(ctx context.Context, cm *autopaho.ConnectionManager, msgs []sparkplug.Message) error {
	for _, m := range msgs {
		if _, err := cm.Publish(ctx, &paho.Publish{Topic: m.Topic, QoS: byte(s.cfg.QoS), Payload: m.Payload}); err != nil {
			return fmt.Errorf("publish to %s: %w", m.Topic, mqttc.Explain(err))
		}
	}
	return nil
}

// closeSparkplug publishes the NDEATH itself: a clean disconnect does not
// send the will.
func (s *Sink) closeSparkplug(ctx context.Context, cm *autopaho.ConnectionManager) {
	e := s.sp
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.node.Death(time.Now().UnixNano())
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, _ = cm.Publish(pctx, &paho.Publish{Topic: d.Topic, QoS: 1, Payload: d.Payload})
	e.node.Stale()
}
