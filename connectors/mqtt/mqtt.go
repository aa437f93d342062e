// Package mqtt is an MQTT v5 source with at-least-once delivery: a QoS 1/2
// message is acknowledged to the broker only once every sink has taken its
// points, and the broker's receive-maximum turns withheld acks into flow
// control.
package mqtt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	mqttc "github.com/flowd/flowd/common/mqtt"
	"github.com/flowd/flowd/common/payload"
	"github.com/flowd/flowd/common/sparkplug"
	"github.com/flowd/flowd/engine"
	"github.com/prometheus/client_golang/prometheus"
)

// Subscription is one topic filter with its own QoS.
type Subscription struct {
	Topic string `hcl:"topic,required" doc:"topic filter (+ and # wildcards)"`
	QoS   int    `hcl:"qos" default:"1" doc:"0, 1 or 2"`
}

// Config is the mqtt source's configuration.
type Config struct {
	// The connection attributes, shared with the mqtt sink.
	mqttc.Connection `doc.client_id:"client id (default flowd-<pipeline>-<name>); with connections > 1, -<n> is appended. Keep it stable: the broker keeps the session (unacknowledged messages) under it"`

	Topics         []string       `hcl:"topics" doc:"topic filters, subscribed with qos"`
	Subscriptions  []Subscription `hcl:"subscription,block" doc:"topic filters with their own QoS"`
	QoS            int            `hcl:"qos" default:"1" doc:"QoS of topics: 0 (at most once), 1 or 2 (at least once)"`
	Group          string         `hcl:"group" doc:"shared subscription group: subscribe to $share/<group>/<filter> so several connections or gateways split the load"`
	Connections    int            `hcl:"connections" default:"1" doc:"subscriber connections in this process, each with its own decoder and ack queue (needs group when more than 1; at most 64)"`
	ReceiveMaximum int            `hcl:"receive_maximum" default:"1000" doc:"unacknowledged QoS 1/2 messages the broker may send per connection: the flow control under backpressure (1–65535)"`
	engine.Batching
	Format       string                 `hcl:"format" default:"json" doc:"a codec that decodes (docs/codecs), map or sparkplug. json: a point object, an array of them, or a tag map {\"Temp\": {\"Value\": 1, \"SourceTimestamp\": \"…\"}}; map: the map attribute picks fields out of any JSON object; raw: the payload as a string value; sparkplug: Sparkplug B v3.0 births, data and deaths (topics default to spBv1.0/#)"`
	Rebirth      bool                   `hcl:"sparkplug_rebirth" default:"true" doc:"format sparkplug: on data that cannot be decoded without a new birth (before any birth, an unknown alias or metric, a sequence gap) publish an NCMD Node Control/Rebirth to that edge node"`
	RebirthEvery time.Duration          `hcl:"sparkplug_rebirth_interval" default:"5s" doc:"format sparkplug: least time between two rebirth requests to one edge node"`
	SeqCheck     bool                   `hcl:"sparkplug_seq_check" default:"true" doc:"format sparkplug: reject a message whose seq is not the next of its edge node (and ask for a rebirth); off with group, since a shared subscription neither delivers every message to one connection nor keeps order across connections"`
	Asset        string                 `hcl:"asset" doc:"asset of points that carry none (a literal)"`
	AssetExpr    engine.Expr            `hcl:"asset_expr" doc:"asset of points that carry none: an expression over topic (the topic's levels, a list of strings), e.g. topic[1] or 'plant-' + topic[1]"`
	TagExpr      engine.Expr            `hcl:"tag_expr" doc:"tag of points that carry none (raw: of every point): an expression over topic, e.g. topic[2] or join(topic[2:], '.'); default for raw: the whole topic"`
	Map          map[string]engine.Expr `hcl:"map" doc:"format map: asset, tag, value, quality and ts, each an expression over payload (the decoded JSON object, numbers as int or float) and topic (the topic's levels), e.g. value = \"payload.sensor.reading * 0.1\"; a value that is missing or null rejects the message"`
	MaxPayload   engine.Size            `hcl:"max_payload" default:"1MiB" doc:"larger messages are rejected (counted, logged, acknowledged); at most 256MiB, the largest MQTT packet"`
}

// Spec declares the mqtt source.
var Spec = engine.SourceSpec(engine.Info{
	Type:    "mqtt",
	Summary: "Subscribes to MQTT v5 topics, at least once: messages are acknowledged only after every sink took their points.",
	Description: "QoS 1/2 messages are acknowledged (in receive order, as MQTT requires) once the pipeline has delivered them; " +
		"until then the broker's receive maximum stops it from sending more, so memory stays bounded whatever the outage, " +
		"while the keepalive keeps the session up. With clean_start = false (the default) a restarted flowd gets back every " +
		"message it had not acknowledged. Malformed payloads are counted in flowd_points_dropped_total{reason=\"decode\"}, " +
		"logged, sent to the dead-letter sink when there is one, and acknowledged. asset_expr, tag_expr and the map block are " +
		"expressions (expr-lang, with the functions of the expr transform) over topic, the topic's levels (topic[1], topic[-1]), " +
		"and in the map block payload, the decoded JSON object: map = { tag = \"payload.sensor\", value = \"payload.reading * 0.1\" }.",
	Example: `source "mqtt" "sensors" {
  broker      = "mqtt://127.0.0.1:1883"
  topics      = ["plant/+/telemetry"]
  qos         = 1
  group       = "edge"
  connections = 4
  format      = "json"
  asset_expr  = "topic[1]"
}`,
}, New)

// Source subscribes and emits.
type Source struct {
	cfg      Config
	env      *engine.Env
	settings mqttc.Settings
	dec      *Decoder
	subs     []paho.SubscribeOptions
	clientID string

	messages  *prometheus.CounterVec
	okCount   prometheus.Counter
	rejCount  prometheus.Counter
	ackFailed prometheus.Counter
	rebirths  prometheus.Counter // format sparkplug: rebirth requests published
	unacked   atomic.Int64
	rejectLog engine.LogLimiter
	up        atomic.Int32
	errLog    engine.MessageLogLimiter
}

// New validates the config and builds the source.
func New(c *Config, env *engine.Env) (engine.Source, error) {
	s := &Source{cfg: *c, env: env, rejectLog: engine.LogLimiter{Every: 10 * time.Second, Burst: 20},
		errLog: engine.MessageLogLimiter{Every: mqttc.ErrorLogWindow}}
	s.settings = c.Connection.Settings("flowd-" + env.Pipeline + "-" + env.Name)
	s.settings.ReceiveMaximum = uint16(c.ReceiveMaximum)
	s.clientID = s.settings.ClientID
	bad := s.settings.Problems()
	if c.QoS < 0 || c.QoS > 2 {
		bad.Addf("qos", "must be 0, 1 or 2")
	}
	if len(c.Topics) == 0 && len(c.Subscriptions) == 0 {
		if c.Format == "sparkplug" {
			c.Topics = []string{sparkplug.Namespace + "/#"}
			s.cfg.Topics = c.Topics
		} else {
			bad.Addf("topics", "subscribe to at least one topic (topics or a subscription block)")
		}
	}
	switch {
	case c.Connections < 1 || c.Connections > 64:
		bad.Addf("connections", "must be between 1 and 64")
	case c.Connections > 1 && c.Group == "":
		bad.Addf("connections", "more than one connection needs a shared subscription group (group = \"…\"), or every connection would get every message")
	}
	if c.ReceiveMaximum < 1 || c.ReceiveMaximum > 65535 {
		bad.Addf("receive_maximum", "must be between 1 and 65535")
	}
	c.Batching.Check(&bad)
	if c.MaxPayload < 0 || c.MaxPayload > engine.MaxMessageSize { // 0: no limit of its own
		bad.Addf("max_payload", "must be between 0 and 256MiB")
	}
	s.subscribe(c, &bad)
	if err := bad.Err(); err != nil {
		return nil, err
	}
	dec, err := newDecoder(c, env.Codecs)
	if err != nil {
		return nil, err
	}
	s.dec = dec
	s.register(c, env)
	return s, nil
}

// subscribe builds the subscriptions of topics and the subscription blocks,
// adding to bad the filters that cannot be subscribed to.
func (s *Source) subscribe(c *Config, bad *engine.Problems) {
	add := func(topic string, qos int, field string) {
		if topic == "" {
			bad.Addf(field, "empty topic filter")
			return
		}
		if qos < 0 || qos > 2 {
			bad.Addf(field, "qos must be 0, 1 or 2")
			return
		}
		if c.Group != "" {
			topic = "$share/" + c.Group + "/" + topic
		}
		s.subs = append(s.subs, paho.SubscribeOptions{Topic: topic, QoS: byte(qos)})
	}
	for _, t := range c.Topics {
		add(t, max(0, min(c.QoS, 2)), "topics") // a bad qos is reported once, above
	}
	for _, sub := range c.Subscriptions {
		add(sub.Topic, sub.QoS, "subscription")
	}
}

// register makes and registers the source's metrics.
func (s *Source) register(c *Config, env *engine.Env) {
	s.messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flowd_mqtt_messages_total", Help: "MQTT messages received by the source, by result (ok, rejected; ack_failed: an ack paho could not match, redelivered later).",
	}, []string{"result"})
	s.okCount, s.rejCount = s.messages.WithLabelValues("ok"), s.messages.WithLabelValues("rejected")
	s.ackFailed = s.messages.WithLabelValues("ack_failed")
	unacked := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "flowd_mqtt_unacked_messages", Help: "QoS 1/2 messages received and not yet acknowledged (bounded by receive_maximum per connection).",
	}, func() float64 { return float64(s.unacked.Load()) })
	env.MustRegister(s.messages, unacked)
	if c.Format == "sparkplug" {
		s.rebirths = prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowd_sparkplug_rebirth_requests_total", Help: "Sparkplug NCMD Node Control/Rebirth requests the source published.",
		})
		st := s.dec.Sparkplug()
		skipped := prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "flowd_sparkplug_metrics_skipped_total", Help: "Sparkplug metric values of types without a point form (DataSet, Template, PropertySet) that the source left out.",
		}, func() float64 { return float64(st.Skipped()) })
		env.MustRegister(s.rebirths, skipped)
	}
}

// Decoder is the shared payload decoder (common/payload), with topic as the
// subject of asset_expr, tag_expr and the map block.
type Decoder = payload.Decoder

// ErrTooLarge is returned for a payload above max_payload.
var ErrTooLarge = payload.ErrTooLarge

func newDecoder(c *Config, codecs *engine.Codecs) (*Decoder, error) {
	return payload.New(payload.Options{
		Format: c.Format, Codecs: codecs, MaxPayload: int(c.MaxPayload), Subject: "topic",
		Asset: c.Asset, AssetExpr: c.AssetExpr, TagExpr: c.TagExpr, Map: c.Map,
		Sparkplug: sparkplug.Options{NoSeqCheck: !c.SeqCheck || c.Group != "", RebirthInterval: c.RebirthEvery},
	})
}

// message is a received publish waiting in a connection's queue.
type message struct {
	cli  *paho.Client
	pub  *paho.Publish
	conn *conn          // holds one of conn.window's slots until acknowledged (QoS 1/2)
	acks *mqttc.AckConn // the network connection it came on (nil over WebSocket)
}

// conn is one subscriber connection with its own queue and batcher, so
// messages keep their receive order per session.
type conn struct {
	s          *Source
	id         string
	dec        *Decoder // this connection's own (its expression VM is not shared)
	in         chan message
	cm         *autopaho.ConnectionManager
	stopping   atomic.Bool
	subscribed atomic.Bool
	// window holds a slot per unacknowledged QoS 1/2 message: the receive
	// maximum enforced on our side too, so memory stays bounded even when a
	// broker sends more than it was allowed to.
	window   chan struct{}
	overSent atomic.Bool
	// acks is the network connection of the latest message, whose acks
	// Run flushes before it disconnects.
	acks atomic.Pointer[mqttc.AckConn]
}

// Run connects every subscriber connection and emits batches until ctx ends
// or a batch fails downstream (then the unacknowledged messages come back
// from the broker after the engine restarts the source).
func (s *Source) Run(ctx context.Context, out engine.Output) error {
	cctx, cancelConns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelConns()
	// Batchers stop on shutdown or when a batch failed downstream.
	bctx, stopBatchers := context.WithCancel(ctx)
	defer stopBatchers()
	failed := make(chan error, 1)
	pending := &inflight{zero: make(chan struct{}, 1)} // batches emitted and not yet done
	var wg sync.WaitGroup
	conns := make([]*conn, 0, s.cfg.Connections)
	stop := func() {
		for _, c := range conns {
			c.stopping.Store(true)
		}
		stopBatchers()
		wg.Wait()
	}
	qcap := 2*s.cfg.ReceiveMaximum + s.cfg.BatchSize
	s.up.Store(0)
	s.unacked.Store(0)
	s.env.SetState(engine.StateConnecting, nil)
	for i := range s.cfg.Connections {
		c := &conn{s: s, id: s.clientID, dec: s.dec.Clone(), in: make(chan message, qcap), window: make(chan struct{}, s.cfg.ReceiveMaximum)}
		if s.cfg.Connections > 1 {
			c.id = fmt.Sprintf("%s-%d", s.clientID, i+1)
		}
		cm, err := mqttc.Connect(cctx, &s.settings, c.id, true, mqttc.Handlers{
			OnPublishAcks: func(pr autopaho.PublishReceived, ac *mqttc.AckConn) { c.receive(bctx, pr, ac) },
			OnUp:          func(cm *autopaho.ConnectionManager, ack *paho.Connack) { c.connected(cctx, cm, ack) },
			OnError:       s.connError,
			OnDown: func() {
				if c.subscribed.Swap(false) {
					s.up.Add(-1)
				}
				s.env.SetState(engine.StateConnecting, nil)
			},
		}, s.env.Logger)
		if err != nil {
			stop()
			return mqttc.EngineError(err)
		}
		c.cm = cm
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.batch(bctx, out, pending, failed)
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-failed:
	}
	stop()
	// Let the pipeline drain what was emitted so its acks reach the broker
	// before the connections close; what is not acked is redelivered later.
	pending.wait(10 * time.Second)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, c := range conns {
		c.flushAcks(dctx)
		_ = c.cm.Disconnect(dctx)
	}
	return err
}

// flushAcks makes sure the broker has taken the acks given to paho (which
// writes them from a timer of its own) before the connection closes: it
// waits until they are on the socket, then for the answer to an UNSUBSCRIBE
// of a filter nobody subscribed, which the broker sends only after reading
// everything before it. Bytes still in the socket buffer would be lost to
// the reset a close sends while the broker is still publishing. Over
// WebSocket it cannot tell: an ack lost there brings the message again.
func (c *conn) flushAcks(ctx context.Context) {
	a := c.acks.Load()
	if a == nil || a.Marked() == 0 {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, ackFlushTimeout)
	defer cancel()
	err := a.Flush(fctx)
	if err != nil {
		err = fmt.Errorf("writing %d acks: %w", a.Marked(), err)
	} else if _, uerr := c.cm.Unsubscribe(fctx, &paho.Unsubscribe{Topics: []string{ackBarrier + c.id}}); uerr != nil {
		err = fmt.Errorf("%d acks written, no answer from the broker to confirm them: %w", a.Marked(), uerr)
	}
	if err != nil && c.s.env.Logger != nil {
		c.s.env.Logger.Warn("mqtt acks not confirmed before disconnecting; the broker redelivers the messages it did not get them for",
			"client_id", c.id, "err", err.Error())
	}
}

// ackBarrier prefixes the filter flushAcks unsubscribes from: never
// subscribed, so the broker only answers "no subscription existed".
const ackBarrier = "flowd/ack-barrier/"

// ackFlushTimeout bounds the wait for acks at shutdown: acks go out in
// receive order, so one withheld (a batch that failed) holds back the rest.
const ackFlushTimeout = 2 * time.Second

func (s *Source) connError(err error) {
	msg := err.Error()
	s.env.SetState(engine.StateFailing, err)
	if ok, repeats := s.errLog.Allow(msg, engine.Now()); ok && s.env.Logger != nil {
		s.env.Logger.Error("mqtt connection failed", "err", msg, "repeats", repeats)
	}
}

func (c *conn) connected(ctx context.Context, cm *autopaho.ConnectionManager, ack *paho.Connack) {
	s := c.s
	go func() {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		sa, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: s.subs})
		if err != nil {
			s.connError(fmt.Errorf("subscribe: %w", err))
			return
		}
		for i, code := range sa.Reasons {
			if code >= 0x80 && i < len(s.subs) {
				s.connError(fmt.Errorf("subscribe %q refused by the broker (reason 0x%02x)", s.subs[i].Topic, code))
				return
			}
		}
		if !c.subscribed.Swap(true) {
			s.up.Add(1)
		}
		if int(s.up.Load()) >= s.cfg.Connections {
			s.env.SetState(engine.StateConnected, nil)
		}
		if s.env.Logger != nil {
			s.env.Logger.Info("mqtt connected",
				"client_id", c.id, "session_present", ack.SessionPresent)
		}
	}()
}

// receive runs on the connection's reader: it must not block, or the
// keepalive stalls. A QoS 1/2 message takes a slot of the window, which a
// broker keeping to receive_maximum never fills, and the queue has room for
// more than the window; QoS 0 has no flow control, so a full queue waits here
// (TCP backpressure), as does a broker that overruns receive_maximum.
func (c *conn) receive(ctx context.Context, pr autopaho.PublishReceived, ac *mqttc.AckConn) {
	if c.stopping.Load() {
		return // not acknowledged: the broker redelivers it
	}
	m := message{cli: pr.Client, pub: pr.Packet, conn: c, acks: ac}
	if ac != nil && c.acks.Load() != ac {
		c.acks.Store(ac)
	}
	if m.pub.QoS > 0 {
		select {
		case c.window <- struct{}{}:
		default:
			if !c.overSent.Swap(true) && c.s.env.Logger != nil {
				c.s.env.Logger.Warn("broker sent more unacknowledged messages than receive_maximum; reading paused until acks free the window",
					"client_id", c.id, "receive_maximum", c.s.cfg.ReceiveMaximum)
			}
			select {
			case c.window <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
		c.s.unacked.Add(1)
	}
	select {
	case c.in <- m:
	default:
		select {
		case c.in <- m:
		case <-ctx.Done():
		}
	}
}

// batch decodes queued messages into batches of up to batch_size points or
// linger old, emits them and acknowledges their messages when done.
func (c *conn) batch(ctx context.Context, out engine.Output, pending *inflight, failed chan<- error) {
	s := c.s
	var pts []engine.Point
	var msgs []message
	var set *settle // the outcomes msgs' acks wait for
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	flush := func() {
		if len(msgs) == 0 {
			return
		}
		batchMsgs := msgs
		msgs = nil
		st := set
		set = nil
		// Rejected points are settled (dead-lettered or counted): they are
		// acknowledged like delivered ones, or they would come back.
		st.then = func(err error) {
			defer pending.done()
			if err != nil {
				select {
				case failed <- fmt.Errorf("pipeline did not take %d messages (they stay unacknowledged and will be redelivered): %w", len(batchMsgs), err):
				default:
				}
				return
			}
			s.ackAll(batchMsgs)
		}
		pending.n.Add(1)
		emitted := pts
		pts = nil
		err := out.Emit(ctx, emitted, st.done)
		if err != nil {
			select {
			case failed <- err:
			default:
			}
		}
	}
	for {
		select {
		case m := <-c.in:
			if pts == nil {
				pts = engine.GetPoints(s.cfg.BatchSize)
				set = newSettle()
				timer.Reset(s.cfg.Linger)
			}
			n := len(pts)
			var err error
			pts, err = c.dec.Decode(pts, m.pub.Topic, m.pub.Payload, time.Now().UnixNano())
			if err != nil {
				pts = pts[:n]
				s.reject(m, err, set)
				s.requestRebirth(ctx, m, err)
			} else {
				s.okCount.Inc()
			}
			msgs = append(msgs, m)
			if len(pts) >= s.cfg.BatchSize {
				timer.Stop()
				flush()
			}
		case <-timer.C:
			flush()
		case <-ctx.Done():
			// Emit what was decoded: the pipeline drains it and the acks
			// still reach the broker.
			flush()
			if pts != nil {
				engine.PutPoints(pts)
			}
			return
		}
	}
}

// settle joins the outcomes a batch's acks wait for: its Emit's, and the
// dead-letter sink's for each of its rejected messages. Those go to the
// dead-letter sink on their own (Env.RejectAck): Env.Reject's dead letters
// travel with the source's next Emit, which with several connections may be
// another connection's, whose acks would not wait for them.
type settle struct {
	left atomic.Int32 // outcomes due, the Emit's included
	mu   sync.Mutex
	err  error // the first that is neither nil nor a rejection
	then func(err error)
}

func newSettle() *settle {
	st := &settle{}
	st.left.Store(1)
	return st
}

// add expects one more outcome; done reports one, and the last runs then
// (set before the Emit whose outcome is always last to be due).
func (st *settle) add() { st.left.Add(1) }

func (st *settle) done(err error) {
	st.mu.Lock()
	if st.err == nil && err != nil && !errors.Is(err, engine.ErrRejected) {
		st.err = err
	}
	st.mu.Unlock()
	if st.left.Add(-1) == 0 {
		st.mu.Lock()
		err := st.err
		st.mu.Unlock()
		st.then(err)
	}
}

// inflight counts emitted batches whose done has not run, and wakes wait
// when the last one has.
type inflight struct {
	n    atomic.Int64
	zero chan struct{}
}

func (f *inflight) done() {
	if f.n.Add(-1) == 0 {
		select {
		case f.zero <- struct{}{}:
		default:
		}
	}
}

// wait returns once no batch is in flight, or after timeout.
func (f *inflight) wait(timeout time.Duration) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for f.n.Load() > 0 {
		select {
		case <-f.zero:
		case <-t.C:
			return
		}
	}
}

// ackAll acknowledges messages on the connection they came from; paho sends
// the acks in receive order. An ack for a connection that has since closed
// is lost, and the broker redelivers the message on the new connection.
func (s *Source) ackAll(msgs []message) {
	failed := 0
	for _, m := range msgs {
		if m.pub.QoS > 0 && m.cli != nil {
			s.unacked.Add(-1)
			if err := m.cli.Ack(m.pub); err != nil {
				failed++
			} else if m.acks != nil {
				m.acks.Mark()
			}
			if m.conn != nil {
				<-m.conn.window
			}
		}
	}
	if failed > 0 {
		s.ackFailed.Add(float64(failed))
	}
}

// reject counts a message that cannot be decoded and hands it to the
// dead-letter sink as a raw point; its batch's acks wait for that (st).
func (s *Source) reject(m message, err error, st *settle) {
	s.rejCount.Inc()
	p := engine.RawPoint(m.pub.Topic, m.pub.Payload, map[string]string{"mqtt_topic": m.pub.Topic})
	st.add()
	s.env.RejectAck([]engine.Point{p}, "decode", fmt.Errorf("topic %s: %w", m.pub.Topic, err), st.done)
	if ok, suppressed := s.rejectLog.Allow(engine.Now()); ok && s.env.Logger != nil {
		s.env.Logger.Warn("mqtt payload rejected", "topic", m.pub.Topic, "bytes", len(m.pub.Payload), "err", err.Error(), "suppressed_before", suppressed)
	}
}

// requestRebirth asks a Sparkplug edge node for its births (NCMD Node
// Control/Rebirth, QoS 0) when err says the host needs them, on the
// connection the message came from.
func (s *Source) requestRebirth(ctx context.Context, m message, err error) {
	var re *sparkplug.RebirthError
	if s.rebirths == nil || !s.cfg.Rebirth || m.cli == nil || !errors.As(err, &re) || !re.Request {
		return
	}
	cmd := sparkplug.RebirthRequest(re.Group, re.Node, time.Now().UnixNano())
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, perr := m.cli.Publish(pctx, &paho.Publish{Topic: cmd.Topic, QoS: 0, Payload: cmd.Payload}); perr != nil {
		if s.env.Logger != nil {
			s.env.Logger.Warn("sparkplug rebirth request not sent", "topic", cmd.Topic, "err", mqttc.Explain(perr).Error())
		}
		return
	}
	s.rebirths.Inc()
	if s.env.Logger != nil {
		s.env.Logger.Info("sparkplug rebirth requested", "topic", cmd.Topic, "reason", re.Err.Error())
	}
}
