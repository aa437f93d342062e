package sparkplug

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowd/flowd/common/sparkplug/sproto"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
	"google.golang.org/protobuf/proto"
)

// Options configure the host side.
type Options struct {
	// Asset names the asset of an edge node's (t.Device == "") or a
	// device's metrics. It is called once per birth, with the birth's topic,
	// because NDEATH has no device level to compute it from. nil:
	// "group/node" and "group/node/device".
	Asset func(topic string, t Topic) (string, error)
	// NoSeqCheck accepts messages whatever their seq.
	NoSeqCheck bool
	// RebirthInterval is the least time between two rebirth requests to one
	// edge node (default 5s), so a burst of unknown aliases asks once.
	RebirthInterval time.Duration
}

// State holds what the host knows of every edge node: alias tables, seq,
// bdSeq and which nodes and devices are alive. It is shared by every
// decoder of a source (every connection of a shared subscription), because
// a birth and the data that needs it may arrive on different connections.
type State struct {
	opts    Options
	mu      sync.RWMutex
	nodes   map[nodeKey]*node
	skipped atomic.Int64
}

type nodeKey struct{ group, node string }

type node struct {
	mu          sync.Mutex
	born        bool
	bdSeq       int64 // -1: the NBIRTH carried none
	next        int   // seq expected next
	asset       string
	aliases     map[uint64]*metric
	names       map[devName]*metric
	devices     map[string]*device
	lastRebirth time.Time
}

type device struct {
	born  bool
	asset string
}

type devName struct{ device, name string }

// metric is a metric as its birth declared it.
type metric struct {
	name   string
	device string // "" for the node's own metrics
	asset  string
	dt     sproto.DataType
	attrs  map[string]string // the birth's properties; shared, never changed
}

// NewState returns an empty host state.
func NewState(o Options) *State {
	if o.RebirthInterval <= 0 {
		o.RebirthInterval = 5 * time.Second
	}
	return &State{opts: o, nodes: map[nodeKey]*node{}}
}

// Skipped counts metrics of complex types (DataSet, Template, PropertySet)
// that were left out: they have no point form.
func (s *State) Skipped() int64 { return s.skipped.Load() }

// maxUnborn bounds the edge nodes remembered only to rate-limit rebirth
// requests (data from nodes never born): beyond it no request is sent.
const maxUnborn = 1 << 16

// RebirthError rejects a message the host cannot decode without a new birth
// from its edge node: data before any birth, an unknown alias or name, a
// sequence gap. Request is true when this error should make the host send
// a rebirth request (once per RebirthInterval per node).
type RebirthError struct {
	Group, Node string
	Request     bool
	Err         error
}

func (e *RebirthError) Error() string { return e.Err.Error() }
func (e *RebirthError) Unwrap() error { return e.Err }

// Decoder decodes Sparkplug B messages into points with a shared State. A
// Decoder is not safe for concurrent use (the asset callback may not be);
// Clone gives another goroutine its own over the same state.
type Decoder struct {
	st    *State
	asset func(topic string, t Topic) (string, error)
}

// NewDecoder returns a decoder over st; asset overrides st's Options.Asset
// for this decoder (each goroutine its own expression VM), nil keeps it.
func NewDecoder(st *State, asset func(topic string, t Topic) (string, error)) *Decoder {
	if asset == nil {
		asset = st.opts.Asset
	}
	return &Decoder{st: st, asset: asset}
}

// State is the decoder's shared state.
func (d *Decoder) State() *State { return d.st }

func (d *Decoder) assetOf(topic string, t Topic) (string, error) {
	if d.asset != nil {
		return d.asset(topic, t)
	}
	if t.Device != "" {
		return t.Group + "/" + t.Node + "/" + t.Device, nil
	}
	return t.Group + "/" + t.Node, nil
}

// Decode appends the points of one message to dst. now (Unix ns) stamps
// metrics that carry no timestamp and whose payload has none either. On
// error dst comes back unchanged and no state has changed except the seq
// tracking (a gap is remembered so the next message is judged against it).
// Commands (NCMD, DCMD) and STATE messages give no points and no error.
func (d *Decoder) Decode(dst []engine.Point, topic string, payload []byte, now int64) ([]engine.Point, error) {
	return d.decode(dst, topic, payload, now, true)
}

// decode is Decode; wireData false reads data messages into the generated
// types, as births are read (the reference FuzzWireMatchesProto checks the
// wire-level reader against).
func (d *Decoder) decode(dst []engine.Point, topic string, payload []byte, now int64, wireData bool) ([]engine.Point, error) {
	t, err := ParseTopic(topic)
	if err != nil {
		return dst, err
	}
	switch t.Type {
	case NCMD, DCMD, STATE:
		return dst, nil
	}
	var pl *sproto.Payload // births, deaths and the rare data the wire reader leaves
	var top wireTop
	wire := wireData && (t.Type == NDATA || t.Type == DDATA)
	if wire {
		if top, err = scanPayload(payload); err == errMergeProps {
			wire = false
		} else if err != nil {
			return dst, fmt.Errorf("invalid Sparkplug B payload: %w", err)
		}
	}
	if !wire {
		if pl, top, err = unmarshalPayload(payload); err != nil {
			return dst, err
		}
	}
	ts := now
	if top.hasTS {
		if ts, err = msToNs(top.ts); err != nil {
			return dst, fmt.Errorf("payload timestamp: %w", err)
		}
	}
	n, err := d.nodeOf(t)
	if n == nil {
		return dst, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	start := len(dst)
	switch t.Type {
	case NBIRTH:
		dst, err = d.nbirth(dst, n, topic, t, pl, ts)
	case NDEATH:
		dst = d.ndeath(dst, n, pl, ts)
	default:
		if !n.born {
			return dst, d.rebirth(n, t, fmt.Errorf("%s from edge node %s/%s, which is not alive (no NBIRTH seen, or none since its NDEATH)", t.Type, t.Group, t.Node))
		}
		if err = d.checkSeq(n, t, top.seq, top.hasSeq); err != nil {
			return dst, err
		}
		switch t.Type {
		case DBIRTH:
			dst, err = d.dbirth(dst, n, topic, t, pl, ts)
		case DDEATH:
			dst = n.ddeath(dst, t.Device, ts)
		default: // NDATA, DDATA
			if wire {
				dst, err = d.dataWire(dst, n, t, payload, ts)
			} else {
				dst, err = d.data(dst, n, t, pl, ts)
			}
		}
	}
	if err != nil {
		return dst[:start], err
	}
	return dst, nil
}

// unmarshalPayload reads a payload into the generated types, with its
// timestamp and seq.
func unmarshalPayload(payload []byte) (*sproto.Payload, wireTop, error) {
	pl := new(sproto.Payload)
	if err := proto.Unmarshal(payload, pl); err != nil {
		return nil, wireTop{}, fmt.Errorf("invalid Sparkplug B payload: %w", err)
	}
	return pl, wireTop{ts: pl.GetTimestamp(), hasTS: pl.Timestamp != nil, seq: pl.GetSeq(), hasSeq: pl.Seq != nil}, nil
}

// nodeOf returns the state of t's edge node. A nil node comes with an error
// asking for a rebirth, or with none when there is nothing to do.
func (d *Decoder) nodeOf(t Topic) (*node, error) {
	key := nodeKey{t.Group, t.Node}
	d.st.mu.RLock()
	n := d.st.nodes[key]
	d.st.mu.RUnlock()
	if n != nil {
		return n, nil
	}
	return d.newNode(t, key)
}

// newNode handles a message from an edge node with no state yet: an NBIRTH
// creates it; any other message returns a nil node, with an error asking
// for a rebirth, or none for a death (nothing to mark).
func (d *Decoder) newNode(t Topic, key nodeKey) (*node, error) {
	if t.Type != NBIRTH {
		if t.Type == NDEATH {
			return nil, nil // a death of a node never seen: nothing to mark
		}
		return nil, d.rebirth(nil, t, fmt.Errorf("%s from edge node %s/%s before its NBIRTH", t.Type, t.Group, t.Node))
	}
	st := d.st
	st.mu.Lock()
	defer st.mu.Unlock()
	n := st.nodes[key]
	if n == nil {
		n = &node{bdSeq: -1}
		st.nodes[nodeKey{strings.Clone(t.Group), strings.Clone(t.Node)}] = n
	}
	return n, nil
}

// ddeath marks the metrics of a live device bad; the death of a device
// not alive changes nothing. The caller holds n.mu.
func (n *node) ddeath(dst []engine.Point, device string, ts int64) []engine.Point {
	dev := n.devices[device]
	if dev == nil || !dev.born {
		return dst
	}
	dev.born = false
	return n.markBad(dst, device, true, ts)
}

// rebirth wraps err as a RebirthError, asking for a rebirth when none was
// asked of this node within the interval. n may be nil (node unknown); the
// caller holds n.mu.
func (d *Decoder) rebirth(n *node, t Topic, err error) error {
	e := &RebirthError{Group: t.Group, Node: t.Node, Err: err}
	now := time.Now()
	if n == nil {
		st := d.st
		st.mu.Lock()
		key := nodeKey{strings.Clone(t.Group), strings.Clone(t.Node)}
		if n = st.nodes[key]; n == nil {
			if len(st.nodes) >= maxUnborn {
				// Garbage or a misconfigured flood: no more memory, no
				// more requests.
				st.mu.Unlock()
				return e
			}
			// Remember the node (not born) so requests are rate limited.
			n = &node{bdSeq: -1}
			st.nodes[key] = n
		}
		st.mu.Unlock()
		n.mu.Lock()
		defer n.mu.Unlock()
	}
	if n.lastRebirth.IsZero() || now.Sub(n.lastRebirth) >= d.st.opts.RebirthInterval {
		n.lastRebirth = now
		e.Request = true
	}
	return e
}

func (d *Decoder) checkSeq(n *node, t Topic, seq uint64, hasSeq bool) error {
	if !hasSeq {
		if d.st.opts.NoSeqCheck {
			return nil
		}
		return d.rebirth(n, t, fmt.Errorf("%s from %s/%s has no seq", t.Type, t.Group, t.Node))
	}
	if seq > 255 {
		return fmt.Errorf("seq %d is out of range 0..255", seq)
	}
	want := n.next
	n.next = int(seq+1) % 256
	if !d.st.opts.NoSeqCheck && int(seq) != want {
		return d.rebirth(n, t, fmt.Errorf("sequence gap from edge node %s/%s: seq %d, expected %d", t.Group, t.Node, seq, want))
	}
	return nil
}

func (d *Decoder) nbirth(dst []engine.Point, n *node, topic string, t Topic, pl *sproto.Payload, ts int64) ([]engine.Point, error) {
	if pl.Seq == nil && !d.st.opts.NoSeqCheck {
		return dst, fmt.Errorf("NBIRTH from %s/%s has no seq", t.Group, t.Node)
	}
	if pl.GetSeq() > 255 {
		return dst, fmt.Errorf("NBIRTH seq %d is out of range 0..255", pl.GetSeq())
	}
	asset, err := d.assetOf(topic, t)
	if err != nil {
		return dst, fmt.Errorf("asset of edge node %s/%s: %w", t.Group, t.Node, err)
	}
	aliases := map[uint64]*metric{}
	names := map[devName]*metric{}
	bdSeq := int64(-1)
	start := len(dst)
	for i, m := range pl.Metrics {
		if m.GetName() == BdSeqMetric {
			v, err := Value(m, dtOf(m, sproto.DataType_Int64))
			if b, ok := v.Int64(); err == nil && ok {
				bdSeq = b
			}
			continue
		}
		def, err := register(aliases, names, m, "", asset)
		if err != nil {
			return dst[:start], fmt.Errorf("NBIRTH metric %d: %w", i, err)
		}
		if strings.HasPrefix(def.name, "Node Control/") {
			continue
		}
		if dst, err = d.appendPoint(dst, m, def, def.dt, ts); err != nil {
			return dst[:start], fmt.Errorf("NBIRTH metric %q: %w", def.name, err)
		}
	}
	// Accepted: a new birth replaces everything, the devices' births too.
	n.born, n.bdSeq, n.next, n.asset = true, bdSeq, int(pl.GetSeq()+1)%256, asset
	n.aliases, n.names, n.devices = aliases, names, map[string]*device{}
	return dst, nil
}

func (d *Decoder) dbirth(dst []engine.Point, n *node, topic string, t Topic, pl *sproto.Payload, ts int64) ([]engine.Point, error) {
	asset, err := d.assetOf(topic, t)
	if err != nil {
		return dst, fmt.Errorf("asset of device %s/%s/%s: %w", t.Group, t.Node, t.Device, err)
	}
	// Build the device's tables aside and swap them in once all is valid.
	aliases := map[uint64]*metric{}
	names := map[devName]*metric{}
	devID := strings.Clone(t.Device)
	start := len(dst)
	for i, m := range pl.Metrics {
		def, err := register(aliases, names, m, devID, asset)
		if err != nil {
			return dst[:start], fmt.Errorf("DBIRTH metric %d: %w", i, err)
		}
		if m.Alias != nil {
			if old := n.aliases[*m.Alias]; old != nil && old.device != devID {
				return dst[:start], fmt.Errorf("DBIRTH metric %q: alias %d already belongs to %q of device %q", def.name, *m.Alias, old.name, old.device)
			}
		}
		if dst, err = d.appendPoint(dst, m, def, def.dt, ts); err != nil {
			return dst[:start], fmt.Errorf("DBIRTH metric %q: %w", def.name, err)
		}
	}
	for a, def := range n.aliases {
		if def.device == devID {
			delete(n.aliases, a)
		}
	}
	for k := range n.names {
		if k.device == devID {
			delete(n.names, k)
		}
	}
	for a, def := range aliases {
		n.aliases[a] = def
	}
	for k, def := range names {
		n.names[k] = def
	}
	n.devices[devID] = &device{born: true, asset: asset}
	return dst, nil
}

// register records one birth metric: a name and a datatype are required,
// an alias is optional and unique per edge node.
func register(aliases map[uint64]*metric, names map[devName]*metric, m *sproto.Payload_Metric, device, asset string) (*metric, error) {
	name := m.GetName()
	if name == "" {
		return nil, errors.New("a birth metric needs a name")
	}
	if m.Datatype == nil || *m.Datatype == 0 || *m.Datatype > uint32(sproto.DataType_DateTimeArray) {
		return nil, fmt.Errorf("metric %q: datatype %d is not a Sparkplug B datatype", name, m.GetDatatype())
	}
	def := &metric{name: name, device: device, asset: asset, dt: sproto.DataType(*m.Datatype), attrs: properties(m.Properties)}
	k := devName{device, name}
	if names[k] != nil {
		return nil, fmt.Errorf("metric %q is declared twice", name)
	}
	names[k] = def
	if m.Alias != nil {
		if old := aliases[*m.Alias]; old != nil {
			return nil, fmt.Errorf("metric %q: alias %d already belongs to %q", name, *m.Alias, old.name)
		}
		aliases[*m.Alias] = def
	}
	return def, nil
}

func (d *Decoder) data(dst []engine.Point, n *node, t Topic, pl *sproto.Payload, ts int64) ([]engine.Point, error) {
	if t.Device != "" {
		if dev := n.devices[t.Device]; dev == nil || !dev.born {
			return dst, d.rebirth(n, t, fmt.Errorf("DDATA from device %s/%s/%s before its DBIRTH", t.Group, t.Node, t.Device))
		}
	}
	start := len(dst)
	for i, m := range pl.Metrics {
		var def *metric
		if m.Alias != nil {
			def = n.aliases[*m.Alias]
			if def == nil {
				return dst[:start], d.rebirth(n, t, fmt.Errorf("%s metric %d: unknown alias %d (not in the births of %s/%s)", t.Type, i, *m.Alias, t.Group, t.Node))
			}
			if def.device != t.Device {
				return dst[:start], d.rebirth(n, t, fmt.Errorf("%s metric %d: alias %d is %q of device %q, not of %q", t.Type, i, *m.Alias, def.name, def.device, t.Device))
			}
		} else {
			def = n.names[devName{t.Device, m.GetName()}]
			if def == nil {
				return dst[:start], d.rebirth(n, t, fmt.Errorf("%s metric %d: unknown metric %q (not in the births of %s/%s)", t.Type, i, m.GetName(), t.Group, t.Node))
			}
		}
		var err error
		if dst, err = d.appendPoint(dst, m, def, dtOf(m, def.dt), ts); err != nil {
			return dst[:start], fmt.Errorf("%s metric %q: %w", t.Type, def.name, err)
		}
	}
	return dst, nil
}

func dtOf(m *sproto.Payload_Metric, def sproto.DataType) sproto.DataType {
	if m.Datatype != nil && *m.Datatype != 0 {
		return sproto.DataType(*m.Datatype)
	}
	return def
}

func (d *Decoder) appendPoint(dst []engine.Point, m *sproto.Payload_Metric, def *metric, dt sproto.DataType, ts int64) ([]engine.Point, error) {
	v, err := Value(m, dt)
	if err == errSkip {
		d.st.skipped.Add(1)
		return dst, nil
	}
	if err != nil {
		return dst, err
	}
	if m.Timestamp != nil {
		if ts, err = msToNs(*m.Timestamp); err != nil {
			return dst, fmt.Errorf("timestamp: %w", err)
		}
	}
	q := engine.Good
	if m.Properties != nil {
		if code, ok := qualityProperty(m.Properties); ok {
			q = code
		}
	}
	return append(dst, engine.Point{Asset: def.asset, Tag: def.name, Value: v, Quality: q, TS: ts, Attrs: def.attrs}), nil
}

func (d *Decoder) ndeath(dst []engine.Point, n *node, pl *sproto.Payload, ts int64) []engine.Point {
	if !n.born {
		return dst
	}
	for _, m := range pl.Metrics {
		if m.GetName() == BdSeqMetric && n.bdSeq >= 0 {
			v, err := Value(m, dtOf(m, sproto.DataType_Int64))
			if b, ok := v.Int64(); err == nil && ok && b != n.bdSeq {
				return dst // the will of an earlier session: this one is alive
			}
		}
	}
	n.born = false
	for _, dev := range n.devices {
		dev.born = false
	}
	return n.markBad(dst, "", false, ts)
}

// markBad appends a bad null point for every metric of the node (device ==
// "" and !only: the node's and all its devices') or of one device.
func (n *node) markBad(dst []engine.Point, device string, only bool, ts int64) []engine.Point {
	for _, def := range n.names {
		if only && def.device != device {
			continue
		}
		switch def.dt {
		case sproto.DataType_DataSet, sproto.DataType_Template, sproto.DataType_PropertySet, sproto.DataType_PropertySetList:
			continue
		}
		if strings.HasPrefix(def.name, "Node Control/") && def.device == "" {
			continue
		}
		dst = append(dst, engine.Point{Asset: def.asset, Tag: def.name, Quality: engine.Bad, TS: ts, Attrs: def.attrs})
	}
	return dst
}

func msToNs(ms uint64) (int64, error) {
	if ms > 1<<62 {
		return 0, fmt.Errorf("%d ms is out of range", ms)
	}
	return codec.MillisToNanos(int64(ms))
}

// properties turns a birth's property set into point attrs (scalar
// properties as strings; Quality is the point's quality instead).
func properties(ps *sproto.Payload_PropertySet) map[string]string {
	if ps == nil || len(ps.Keys) == 0 {
		return nil
	}
	out := make(map[string]string, len(ps.Keys))
	for i, k := range ps.Keys {
		if i >= len(ps.Values) || strings.EqualFold(k, "Quality") {
			continue
		}
		pv := ps.Values[i]
		if pv.GetIsNull() {
			continue
		}
		switch v := pv.Value.(type) {
		case *sproto.Payload_PropertyValue_IntValue:
			out[k] = fmt.Sprint(int32(v.IntValue))
		case *sproto.Payload_PropertyValue_LongValue:
			out[k] = fmt.Sprint(int64(v.LongValue))
		case *sproto.Payload_PropertyValue_FloatValue:
			out[k] = engine.Float(float64(v.FloatValue)).String()
		case *sproto.Payload_PropertyValue_DoubleValue:
			out[k] = engine.Float(v.DoubleValue).String()
		case *sproto.Payload_PropertyValue_BooleanValue:
			out[k] = fmt.Sprint(v.BooleanValue)
		case *sproto.Payload_PropertyValue_StringValue:
			out[k] = v.StringValue
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// qualityProperty reads the Quality property (an OPC DA quality code as
// Ignition sends it: 192 and above good, 64..191 uncertain, below bad).
func qualityProperty(ps *sproto.Payload_PropertySet) (engine.Quality, bool) {
	for i, k := range ps.Keys {
		if i < len(ps.Values) && strings.EqualFold(k, "Quality") {
			var code int64
			switch v := ps.Values[i].Value.(type) {
			case *sproto.Payload_PropertyValue_IntValue:
				code = int64(int32(v.IntValue))
			case *sproto.Payload_PropertyValue_LongValue:
				code = int64(v.LongValue)
			default:
				return 0, false
			}
			switch {
			case code >= 192:
				return engine.Good, true
			case code >= 64:
				return engine.Uncertain, true
			}
			return engine.Bad, true
		}
	}
	return 0, false
}
