// Package mqtt is an MQTT v5 sink: points are published as JSON to a fixed
// or per-point topic, and a batch counts as delivered once the broker has
// acknowledged every message of it (PUBACK / PUBCOMP at QoS 1 / 2).
package mqtt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	mqttc "github.com/flowd/flowd/common/mqtt"
	"github.com/flowd/flowd/common/sparkplug"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
	"github.com/flowd/flowd/engine/pointexpr"
)

// Config is the mqtt sink's configuration.
type Config struct {
	// The connection attributes, shared with the mqtt source; a sink keeps no
	// session of its own by default (the engine retries unacknowledged batches).
	mqttc.Connection `doc.client_id:"client id (default flowd-<pipeline>-sink-<name>)" default.clean_start:"true" doc.clean_start:"start a new broker session on the first connection (unacknowledged batches are retried by the engine either way)" default.session_expiry:"0s" doc.session_expiry:"how long the broker keeps the session after a disconnect" doc.backoff_max:"longest reconnect delay; a connection lost within a minute of coming up counts as a failed attempt, so a session taken over again and again (a duplicate client_id) reconnects at this pace"`

	Topic          string      `hcl:"topic" doc:"topic to publish to (a literal)"`
	TopicExpr      engine.Expr `hcl:"topic_expr" doc:"topic per point: an expression over the point (asset, tag, value, quality, attrs.NAME, …), e.g. 'plant/' + asset + '/' + tag; a point whose topic cannot be computed or is empty is rejected (dead letter, reason topic)"`
	QoS            int         `hcl:"qos" default:"1" doc:"0, 1 or 2; at 1 and 2 a batch is acknowledged upstream only after every PUBACK/PUBCOMP"`
	Retain         bool        `hcl:"retain" doc:"publish retained messages"`
	Format         string      `hcl:"format" default:"json" doc:"a codec that encodes (docs/codecs), or sparkplug. json: a message per point; json_batch: a message per topic per batch (an array, split to stay under max_message_bytes); asset_json: a message per asset per batch; sparkplug: flowd is a Sparkplug B edge node (sparkplug_group, sparkplug_edge_node; topic is not used): assets are devices, tags are metrics"`
	SpGroup        string      `hcl:"sparkplug_group" doc:"format sparkplug: the Sparkplug group id"`
	SpNode         string      `hcl:"sparkplug_edge_node" doc:"format sparkplug: the edge node id (default flowd-<pipeline>-<name>)"`
	MaxInflight    int         `hcl:"max_inflight" default:"256" doc:"publishes waiting for their acknowledgement at once (1–65535, the packet identifiers MQTT has)"`
	UserProperties bool        `hcl:"user_properties" default:"true" doc:"format json: add the point's source timestamp (ts), asset and tag as MQTT v5 user properties"`

	// Shared framing (engine/codec): the same limit as the kafka and eventhubs sinks.
	MaxMessageBytes engine.Size `hcl:"max_message_bytes" default:"0" doc:"largest payload (0: no limit); a json_batch is split below it, a single point (or asset) above it is rejected (reason too_large), as in the kafka and eventhubs sinks"`
}

// Spec declares the mqtt sink.
var Spec = engine.SinkSpec(engine.Info{
	Type:    "mqtt",
	Summary: "Publishes points to an MQTT v5 broker; a batch is delivered once the broker acknowledged every message.",
	Description: "The topic is a literal (topic) or computed per point (topic_expr). With format json each point is one " +
		"message carrying its source timestamp as a user property; json_batch and asset_json group a batch per topic / per asset.",
	Example: `sink "mqtt" "uns" {
  inputs     = [transform.scale]
  broker     = "mqtt://127.0.0.1:1883"
  topic_expr = "'plant/' + asset + '/' + tag"
  qos        = 1
}`,
}, New)

// Sink publishes.
type Sink struct {
	cfg      Config
	env      *engine.Env
	settings mqttc.Settings
	clientID string
	topic    *pointexpr.Program // nil: cfg.Topic
	enc      *engine.Codec
	framer   codec.Framer
	frames   []codec.Frame
	scratch  []engine.Point

	mu      sync.Mutex
	cm      *autopaho.ConnectionManager
	cancel  context.CancelFunc
	lastErr atomic.Pointer[string]
	errLog  engine.MessageLogLimiter
	buf     []byte
	sent    []bool // per message of the current Write: acknowledged

	sp *edge // format sparkplug
}

// New validates the config and builds the sink; it connects on Connect.
func New(c *Config, env *engine.Env) (engine.Sink, error) {
	s := &Sink{cfg: *c, env: env, errLog: engine.MessageLogLimiter{Every: mqttc.ErrorLogWindow}}
	s.settings = c.Connection.Settings("flowd-" + env.Pipeline + "-sink-" + env.Name)
	s.clientID = s.settings.ClientID
	bad := s.settings.Problems()
	if c.QoS < 0 || c.QoS > 2 {
		bad.Addf("qos", "must be 0, 1 or 2")
	}
	// Packet identifiers are 16 bits: no more can wait for their ack.
	if c.MaxInflight < 1 || c.MaxInflight > 65535 {
		bad.Addf("max_inflight", "must be between 1 and 65535")
	}
	switch {
	case c.Format == "sparkplug":
		if c.Topic != "" || c.TopicExpr.Src != "" {
			bad.Addf("topic", "format sparkplug publishes to the Sparkplug topics of its edge node; topic and topic_expr are not used")
		}
		if c.Retain {
			bad.Addf("retain", "Sparkplug births, data and deaths are never retained")
		}
		s.sp = sparkplugEdge(c, env, &bad)
		if err := bad.Err(); err != nil {
			return nil, err
		}
		return s, nil
	case c.SpGroup != "" || c.SpNode != "":
		bad.Addf("sparkplug_group", "sparkplug_group and sparkplug_edge_node are only used with format = \"sparkplug\"")
	}
	if c.MaxMessageBytes < 0 {
		bad.Addf("max_message_bytes", "must not be negative")
	}
	switch {
	case c.Topic == "" && c.TopicExpr.Src == "":
		bad.Addf("topic", "set topic or topic_expr")
	case c.Topic != "" && c.TopicExpr.Src != "":
		bad.Addf("topic_expr", "set topic or topic_expr, not both")
	case strings.ContainsAny(c.Topic, "+#"):
		bad.Addf("topic", "a topic to publish to cannot hold the wildcards + or #")
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	if c.TopicExpr.Src != "" {
		p, err := pointexpr.Compile("topic_expr", c.TopicExpr, engine.KindString)
		if err != nil {
			return nil, err
		}
		s.topic = p
	}
	enc, err := env.Codecs.Encoder(c.Format)
	if err != nil {
		return nil, &engine.FieldError{Field: "format", Offset: -1, Err: err}
	}
	s.enc = enc
	s.framer = codec.Framer{Codec: enc, MaxBytes: int(c.MaxMessageBytes)}
	return s, nil
}

// sparkplugEdge builds the Sparkplug edge node of format sparkplug, or adds
// to bad why it cannot and returns nil.
func sparkplugEdge(c *Config, env *engine.Env, bad *engine.Problems) *edge {
	node := c.SpNode
	if node == "" {
		node = "flowd-" + env.Pipeline + "-" + env.Name
	}
	if c.SpGroup == "" {
		bad.Addf("sparkplug_group", "format sparkplug needs the group id")
		return nil
	}
	e, err := sparkplug.NewEdgeNode(c.SpGroup, node)
	if err != nil {
		field := "sparkplug_edge_node"
		if sparkplug.CheckID("group", c.SpGroup) != nil {
			field = "sparkplug_group"
		}
		bad.Addf(field, "%v", err)
		return nil
	}
	return &edge{node: e, births: make(chan bool, 4)}
}

// TopicFor renders the topic of a point. An empty topic is an error: it
// cannot be published to.
func (s *Sink) TopicFor(p *engine.Point) (string, error) {
	if s.topic == nil {
		return s.cfg.Topic, nil
	}
	t, err := s.topic.EvalString(p)
	if err != nil {
		return "", err
	}
	if t == "" {
		return "", errors.New("topic_expr gives an empty topic")
	}
	if strings.ContainsAny(t, "+#") {
		return "", fmt.Errorf("topic_expr gives %q: a topic to publish to cannot hold the wildcards + or #", t)
	}
	return t, nil
}

// Connect starts the managed connection (once) and waits for it to be up.
func (s *Sink) Connect(ctx context.Context) error {
	s.mu.Lock()
	cm := s.cm
	if cm == nil {
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		var err error
		h := mqttc.Handlers{
			OnError: s.connError,
			OnUp: func(*autopaho.ConnectionManager, *paho.Connack) {
				s.lastErr.Store(nil)
				s.env.SetState(engine.StateConnected, nil)
			},
			OnDown: func() { s.env.SetState(engine.StateConnecting, nil) },
		}
		if s.sp != nil {
			s.sparkplugHandlers(&h)
		}
		cm, err = mqttc.Connect(cctx, &s.settings, s.clientID, false, h, s.env.Logger)
		if err != nil {
			cancel()
			s.mu.Unlock()
			return err
		}
		s.cm, s.cancel = cm, cancel
		if s.sp != nil {
			s.sp.wg.Add(1)
			go s.sparkplugLoop(cctx, cm)
		}
	}
	s.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout+time.Second)
	defer cancel()
	if err := cm.AwaitConnection(wctx); err != nil {
		if p := s.lastErr.Load(); p != nil {
			return errors.New(*p)
		}
		return fmt.Errorf("not connected to the broker yet: %w", err)
	}
	return nil
}

func (s *Sink) connError(err error) {
	msg := err.Error()
	s.env.SetState(engine.StateFailing, err)
	s.lastErr.Store(&msg)
	if ok, repeats := s.errLog.Allow(msg, engine.Now()); ok && s.env.Logger != nil {
		s.env.Logger.Error("mqtt connection failed", "err", msg, "repeats", repeats)
	}
}

// Message is one MQTT message the sink publishes.
type Message struct {
	topic    string
	payload  []byte
	ts       int64
	asset    string
	tag      string
	from, to int // the points it carries: points[from:to] as Messages leaves them
}

// span is where sub, a sub-slice of points, lies in it: the framer's
// messages hold sub-slices of the points they were given, and a slice
// keeps the capacity left after its start.
func span(points, sub []engine.Point) (from, to int) {
	from = cap(points) - cap(sub)
	return from, from + len(sub)
}

// Messages encodes points into the messages Write publishes (exported for
// the benchmarks). Payloads are slices of buf. Points whose topic cannot be
// computed, or whose message is over max_message_bytes even alone, are left
// out and reported to out (which may be nil), for the engine to count and
// dead-letter. Under json_batch the points are regrouped in place by topic
// (stable), and under asset_json by asset, so out's indices are positions in
// points as Messages leaves them.
func (s *Sink) Messages(buf []byte, points []engine.Point, out *engine.WriteError) ([]Message, []byte) {
	tooLarge := func(sub []engine.Point, err error) {
		if out != nil {
			out.RejectSub(points, sub, "too_large", fmt.Errorf("mqtt: %w (%d bytes)", err, s.cfg.MaxMessageBytes))
		}
	}
	n := 16
	if s.enc.Framing == engine.FramePoint {
		n = len(points) // one message each, at most: no regrowing
	}
	msgs := make([]Message, 0, n)
	if s.enc.Framing == engine.FrameBatch {
		return s.batchMessages(buf, msgs, points, out, tooLarge)
	}
	frames := s.frames[:0]
	// A message per point or per asset; the topic from its (first) point.
	buf, frames = s.framer.Append(buf, frames, points, tooLarge)
	for i := range frames {
		fr := &frames[i]
		p := &fr.Points[0]
		t, err := s.TopicFor(p)
		if err != nil {
			if out != nil {
				out.RejectSub(points, fr.Points, "topic", err)
			}
			continue
		}
		m := Message{topic: t, payload: fr.Payload(buf)}
		m.from, m.to = span(points, fr.Points)
		if s.enc.Framing == engine.FramePoint {
			m.ts, m.asset, m.tag = p.TS, p.Asset, p.Tag
		}
		msgs = append(msgs, m)
	}
	clear(frames) // keep no references to the caller's points
	s.frames = frames[:0]
	return msgs, buf
}

// batchMessages is Messages under json_batch: one batch per topic, in order
// of first appearance, the points regrouped in place; points without a topic
// last, reported to out.
func (s *Sink) batchMessages(buf []byte, msgs []Message, points []engine.Point, out *engine.WriteError, tooLarge func([]engine.Point, error)) ([]Message, []byte) {
	frames := s.frames[:0]
	groups := map[string][]int{}
	var order []string
	var noTopic []int
	var noTopicErr []error
	for i := range points {
		t, err := s.TopicFor(&points[i])
		if err != nil {
			noTopic = append(noTopic, i)
			noTopicErr = append(noTopicErr, err)
			continue
		}
		if _, ok := groups[t]; !ok {
			order = append(order, t)
		}
		groups[t] = append(groups[t], i)
	}
	if cap(s.scratch) < len(points) {
		s.scratch = make([]engine.Point, 0, len(points))
	}
	scratch := s.scratch[:0]
	for _, t := range order {
		for _, i := range groups[t] {
			scratch = append(scratch, points[i])
		}
	}
	for _, i := range noTopic {
		scratch = append(scratch, points[i])
	}
	copy(points, scratch)
	clear(scratch) // the points' strings are the caller's
	pos := 0
	for _, t := range order {
		n, sub := len(frames), points[pos:pos+len(groups[t])]
		pos += len(sub)
		buf, frames = s.framer.Append(buf, frames, sub, tooLarge)
		for i := n; i < len(frames); i++ {
			m := Message{topic: t, payload: frames[i].Payload(buf)}
			m.from, m.to = span(points, frames[i].Points)
			msgs = append(msgs, m)
		}
	}
	for k := range noTopic {
		if out != nil {
			out.Reject(pos+k, "topic", noTopicErr[k])
		}
	}
	clear(frames)
	s.frames = frames[:0]
	return msgs, buf
}

// Write publishes the points and returns once the broker acknowledged every
// message (QoS 1/2) or they were written (QoS 0). Points without a valid
// topic are reported rejected; when a publish fails, the points of the
// messages not acknowledged are handed back for retry (engine.WriteError),
// not those the broker already has.
func (s *Sink) Write(ctx context.Context, points []engine.Point) error {
	s.mu.Lock()
	cm := s.cm
	s.mu.Unlock()
	if cm == nil {
		return errors.New("mqtt sink is not connected")
	}
	if s.sp != nil {
		return s.writeSparkplug(ctx, cm, points)
	}
	// Payloads must stay valid until their publish returns: encode into a
	// buffer that is only reused by the next Write.
	var out engine.WriteError
	msgs, buf := s.Messages(s.buf[:0], points, &out)
	s.buf = buf
	// sent[i]: message i is acknowledged; each worker sets only its own.
	if cap(s.sent) < len(msgs) {
		s.sent = make([]bool, len(msgs))
	}
	sent := s.sent[:len(msgs)]
	clear(sent)
	// max_inflight workers take the messages in order, each publishing and
	// awaiting its acknowledgement in turn: the same window as a goroutine
	// per message, without a goroutine (and its stack) per message.
	var wg sync.WaitGroup
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	props := &paho.PublishProperties{ContentType: s.enc.ContentType}
	for range min(s.cfg.MaxInflight, len(msgs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(msgs) || firstErr.Load() != nil || ctx.Err() != nil {
					return
				}
				m := &msgs[i]
				pub := &paho.Publish{Topic: m.topic, QoS: byte(s.cfg.QoS), Retain: s.cfg.Retain, Payload: m.payload, Properties: props}
				if s.cfg.UserProperties && s.enc.Framing == engine.FramePoint {
					pub.Properties = &paho.PublishProperties{ContentType: s.enc.ContentType, User: paho.UserProperties{
						{Key: "ts", Value: time.Unix(0, m.ts).UTC().Format(time.RFC3339Nano)},
						{Key: "asset", Value: m.asset},
						{Key: "tag", Value: m.tag},
					}}
				}
				if _, err := cm.Publish(ctx, pub); err != nil {
					err = fmt.Errorf("publish to %s: %w", m.topic, mqttc.Explain(err))
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				sent[i] = true
			}
		}()
	}
	wg.Wait()
	for i := range msgs {
		if sent[i] {
			continue
		}
		if out.Err == nil {
			if p := firstErr.Load(); p != nil {
				out.Err = *p
			} else {
				out.Err = ctx.Err() // cancelled before every message was published
			}
		}
		for j := msgs[i].from; j < msgs[i].to; j++ {
			out.Retry(j)
		}
	}
	return out.Result()
}

// Close disconnects.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	cm, cancel := s.cm, s.cancel
	s.cm, s.cancel = nil, nil
	s.mu.Unlock()
	if cm == nil {
		return nil
	}
	if s.sp != nil {
		s.closeSparkplug(ctx, cm)
	}
	err := cm.Disconnect(ctx)
	cancel()
	if s.sp != nil {
		s.sp.wg.Wait()
	}
	return err
}
