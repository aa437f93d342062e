package sparkplug

import (
	"fmt"
	"sync/atomic"

	"github.com/flowd/flowd/common/sparkplug/sproto"
	"github.com/flowd/flowd/engine"
	"google.golang.org/protobuf/proto"
)

// Message is one MQTT message of an edge node.
type Message struct {
	Topic   string
	Payload []byte
}

// EdgeNode is the edge side: it numbers metrics with aliases, keeps their
// last values for births, and builds NBIRTH/DBIRTH, NDATA/DDATA, DDEATH
// and NDEATH payloads with seq and bdSeq. Points with an empty asset are
// the node's own metrics; every other asset is a device. It is not safe for
// concurrent use (except Connecting): the messages must be published in
// the order they are built, since seq runs across them.
type EdgeNode struct {
	Group, Node string
	sessions    atomic.Uint64 // CONNECTs built so far
	pending     atomic.Uint64 // bdSeq+1 of a CONNECT not yet seen by sync; 0: none
	bdSeq       uint64
	seq         uint64
	alive       bool // NBIRTH sent on this connection
	nextAlias   uint64
	node        *edgeDevice
	devices     map[string]*edgeDevice
	order       []string // devices in birth order
}

type edgeDevice struct {
	pending bool // a DBIRTH is due in the batch being built
	metrics map[string]*edgeMetric
	order   []*edgeMetric
}

type edgeMetric struct {
	name  string
	alias uint64
	dt    sproto.DataType
	last  engine.Value
	q     engine.Quality
	ts    int64
}

// NewEdgeNode returns an edge node of group; ids are checked by CheckID.
func NewEdgeNode(group, node string) (*EdgeNode, error) {
	if err := CheckID("group", group); err != nil {
		return nil, err
	}
	if err := CheckID("edge node", node); err != nil {
		return nil, err
	}
	return &EdgeNode{Group: group, Node: node, nextAlias: 1, node: newEdgeDevice(), devices: map[string]*edgeDevice{}}, nil
}

func newEdgeDevice() *edgeDevice { return &edgeDevice{metrics: map[string]*edgeMetric{}} }

// Connecting starts a new MQTT session: it takes the next bdSeq (0, 1, …
// 255, 0, …) and returns the NDEATH to register as the connection's will.
// It may be called from the MQTT client's goroutine while another method
// runs: the next Births, Data or Alive takes the new session over, and the
// births of the new session carry the same bdSeq.
func (e *EdgeNode) Connecting(now int64) Message {
	bd := (e.sessions.Add(1) - 1) % 256
	e.pending.Store(bd + 1)
	pl := &sproto.Payload{Timestamp: ms(now), Metrics: []*sproto.Payload_Metric{bdSeqMetric(bd, now)}}
	return e.msg(NodeTopic(e.Group, NDEATH, e.Node), pl)
}

// sync takes over a session started by Connecting: births are due.
func (e *EdgeNode) sync() {
	if p := e.pending.Swap(0); p != 0 {
		e.bdSeq, e.alive = p-1, false
	}
}

// Death is the NDEATH of the current session.
func (e *EdgeNode) Death(now int64) Message {
	e.sync()
	pl := &sproto.Payload{Timestamp: ms(now), Metrics: []*sproto.Payload_Metric{bdSeqMetric(e.bdSeq, now)}}
	return e.msg(NodeTopic(e.Group, NDEATH, e.Node), pl)
}

func bdSeqMetric(bdSeq uint64, now int64) *sproto.Payload_Metric {
	return &sproto.Payload_Metric{Name: proto.String(BdSeqMetric), Timestamp: ms(now), Datatype: dt(sproto.DataType_Int64),
		Value: &sproto.Payload_Metric_LongValue{LongValue: bdSeq}}
}

// Alive reports whether the births were sent on this session.
func (e *EdgeNode) Alive() bool {
	e.sync()
	return e.alive
}

// Births returns the NBIRTH (seq 0) and a DBIRTH per known device, with
// every metric's last value: on connect and on a rebirth request.
func (e *EdgeNode) Births(now int64) []Message {
	e.sync()
	e.seq = 0
	metrics := []*sproto.Payload_Metric{
		bdSeqMetric(e.bdSeq, now),
		{Name: proto.String(RebirthMetric), Timestamp: ms(now), Datatype: dt(sproto.DataType_Boolean), Value: &sproto.Payload_Metric_BooleanValue{}},
	}
	metrics = append(metrics, e.node.birthMetrics()...)
	out := []Message{e.msg(NodeTopic(e.Group, NBIRTH, e.Node), &sproto.Payload{Timestamp: ms(now), Seq: proto.Uint64(0), Metrics: metrics})}
	e.alive = true
	for _, id := range e.order {
		out = append(out, e.dbirth(id, now))
	}
	return out
}

func (e *EdgeNode) dbirth(id string, now int64) Message {
	d := e.devices[id]
	return e.msg(DeviceTopic(e.Group, DBIRTH, e.Node, id), &sproto.Payload{Timestamp: ms(now), Seq: e.nextSeq(), Metrics: d.birthMetrics()})
}

func (d *edgeDevice) birthMetrics() []*sproto.Payload_Metric {
	out := make([]*sproto.Payload_Metric, 0, len(d.order))
	for _, m := range d.order {
		pm := &sproto.Payload_Metric{Name: proto.String(m.name), Alias: proto.Uint64(m.alias), Timestamp: ms(m.ts), Datatype: dt(m.dt)}
		setMetric(pm, m)
		out = append(out, pm)
	}
	return out
}

func setMetric(pm *sproto.Payload_Metric, m *edgeMetric) {
	SetValue(pm, m.last, m.dt)
	if m.q != engine.Good {
		code := uint32(0)
		if m.q == engine.Uncertain {
			code = 64
		}
		pm.Properties = &sproto.Payload_PropertySet{Keys: []string{"Quality"}, Values: []*sproto.Payload_PropertyValue{
			{Type: proto.Uint32(uint32(sproto.DataType_Int32)), Value: &sproto.Payload_PropertyValue_IntValue{IntValue: code}}}}
	}
}

func (e *EdgeNode) nextSeq() *uint64 {
	e.seq = (e.seq + 1) % 256
	return proto.Uint64(e.seq)
}

// Rejected is a point the edge node cannot publish.
type Rejected struct {
	Index int
	Err   error
}

// Data returns the messages that publish points: NDATA/DDATA with aliases,
// preceded by the births a batch needs: a DBIRTH per device that is new or
// has new metrics, or all births when the node itself has a new metric or
// none were sent on this session. A new metric's first point goes out in
// its birth; a metric whose datatype changes is born again where the change
// happens. Each point is published exactly once, in order per metric.
func (e *EdgeNode) Data(points []engine.Point, now int64) ([]Message, []Rejected) {
	b := e.learn(points)
	var out []Message
	if b.nodeBirth {
		out = append(out, e.Births(now)...)
	} else {
		for _, id := range b.births {
			out = append(out, e.dbirth(id, now))
		}
	}
	for _, id := range b.births {
		e.devices[id].pending = false
	}
	return e.data(out, points, b.skip, now), b.rej
}

// learned is what learning the new metrics of a batch found.
type learned struct {
	rej       []Rejected
	skip      []bool   // points that are rejected or published in a birth; nil: none
	nodeBirth bool     // all births must be (re)sent
	births    []string // devices to be born, in order
}

// learn registers the devices and metrics that points introduce, with the
// next aliases, and says which births they need; points that cannot be
// metrics are rejected.
func (e *EdgeNode) learn(points []engine.Point) learned {
	var b learned
	mark := func(i int) {
		if b.skip == nil {
			b.skip = make([]bool, len(points))
		}
		b.skip[i] = true
	}
	b.nodeBirth = !e.Alive()
	for i := range points {
		p := &points[i]
		if p.Tag == "" {
			b.rej = append(b.rej, Rejected{i, fmt.Errorf("a point needs a tag to be a metric")})
			mark(i)
			continue
		}
		id := p.Asset
		d := e.node
		if id != "" {
			if err := CheckID("device", id); err != nil {
				b.rej = append(b.rej, Rejected{i, fmt.Errorf("asset as Sparkplug device: %w", err)})
				mark(i)
				continue
			}
			if d = e.devices[id]; d == nil {
				d = newEdgeDevice()
				e.devices[id] = d
				e.order = append(e.order, id)
			}
		}
		if d.metrics[p.Tag] != nil {
			continue
		}
		m := &edgeMetric{name: p.Tag, alias: e.nextAlias, dt: sproto.DataType_String}
		if !p.Value.IsNull() {
			m.dt = DataTypeOf(p.Value)
		}
		m.last, m.q, m.ts = p.Value, p.Quality, p.TS
		e.nextAlias++
		d.metrics[p.Tag] = m
		d.order = append(d.order, m)
		mark(i)
		switch {
		case id == "":
			b.nodeBirth = true
		case !d.pending:
			d.pending = true
			b.births = append(b.births, id)
		}
	}
	return b
}

// data appends to out the NDATA/DDATA of the points not skipped, one
// message per run of points of the same device, and a birth in place of a
// point whose datatype changed.
func (e *EdgeNode) data(out []Message, points []engine.Point, skip []bool, now int64) []Message {
	cur := "" // device of the pending data metrics
	var pending []*sproto.Payload_Metric
	flush := func() {
		if len(pending) == 0 {
			return
		}
		topic := NodeTopic(e.Group, NDATA, e.Node)
		if cur != "" {
			topic = DeviceTopic(e.Group, DDATA, e.Node, cur)
		}
		out = append(out, e.msg(topic, &sproto.Payload{Timestamp: ms(now), Seq: e.nextSeq(), Metrics: pending}))
		pending = nil
	}
	for i := range points {
		if skip != nil && skip[i] {
			continue
		}
		p := &points[i]
		id := p.Asset
		d := e.node
		if id != "" {
			d = e.devices[id]
		}
		if id != cur {
			flush()
			cur = id
		}
		m := d.metrics[p.Tag]
		m.last, m.q, m.ts = p.Value, p.Quality, p.TS
		if !p.Value.IsNull() && DataTypeOf(p.Value) != m.dt {
			// A new datatype needs a new birth, which carries this point.
			m.dt = DataTypeOf(p.Value)
			flush()
			if id == "" {
				out = append(out, e.Births(now)...)
			} else {
				out = append(out, e.dbirth(id, now))
			}
			continue
		}
		pm := &sproto.Payload_Metric{Alias: proto.Uint64(m.alias), Timestamp: ms(p.TS)}
		setMetric(pm, m)
		pending = append(pending, pm)
	}
	flush()
	return out
}

func (e *EdgeNode) msg(topic string, pl *sproto.Payload) Message {
	b, err := proto.Marshal(pl)
	if err != nil {
		panic(err) // only invalid UTF-8 can fail, and proto2 strings are not checked
	}
	return Message{Topic: topic, Payload: b}
}

// RebirthRequest is the NCMD a host sends to ask an edge node for its births.
func RebirthRequest(group, node string, now int64) Message {
	pl := &sproto.Payload{Timestamp: ms(now), Metrics: []*sproto.Payload_Metric{{
		Name: proto.String(RebirthMetric), Timestamp: ms(now), Datatype: dt(sproto.DataType_Boolean),
		Value: &sproto.Payload_Metric_BooleanValue{BooleanValue: true},
	}}}
	b, _ := proto.Marshal(pl)
	return Message{Topic: NodeTopic(group, NCMD, node), Payload: b}
}

// IsRebirthRequest reports whether an NCMD payload asks for a rebirth.
func IsRebirthRequest(payload []byte) bool {
	var pl sproto.Payload
	if proto.Unmarshal(payload, &pl) != nil {
		return false
	}
	for _, m := range pl.Metrics {
		if m.GetName() == RebirthMetric && m.GetBooleanValue() {
			return true
		}
	}
	return false
}

func ms(ns int64) *uint64 { return proto.Uint64(uint64(ns / 1e6)) }

func dt(t sproto.DataType) *uint32 { return proto.Uint32(uint32(t)) }

// Stale forgets that the births were sent: the next Data starts with them
// (after a failed publish, the host may have missed a message).
func (e *EdgeNode) Stale() { e.alive = false }
