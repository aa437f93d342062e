package sparkplug

import (
	"errors"
	"fmt"

	"github.com/flowd/flowd/common/sparkplug/sproto"
	"github.com/flowd/flowd/engine"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// NDATA and DDATA, the messages that come by the million, are read with
// protobuf's wire-level API instead of into generated structs: no
// allocation per metric (proto2's optional fields are pointers). Births,
// deaths and everything rare go through the generated types. The two
// readings agree on every input (FuzzWireMatchesProto): the same fields,
// the same last-one-wins, known fields with a wrong wire type kept as
// unknown, nested messages validated.

// wireTop is a payload's top-level fields.
type wireTop struct {
	ts, seq       uint64
	hasTS, hasSeq bool
}

// scanPayload validates a whole payload, metrics included, and returns
// its timestamp and seq.
func scanPayload(b []byte) (wireTop, error) {
	var w wireTop
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return w, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case (num == 1 || num == 3) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return w, protowire.ParseError(n)
			}
			if num == 1 {
				w.ts, w.hasTS = v, true
			} else {
				w.seq, w.hasSeq = v, true
			}
			b = b[n:]
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return w, protowire.ParseError(n)
			}
			if _, err := parseMetric(v, true); err != nil {
				return w, err
			}
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return w, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	return w, nil
}

// consumeTag is protowire.ConsumeTag that also refuses field numbers above
// the valid range, as protobuf's decoder does.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n >= 0 && num > protowire.MaxValidNumber {
		return 0, 0, -2 // protowire's code for an invalid field number
	}
	return num, typ, n
}

// wireMetric is a metric read off the wire; slices point into the payload.
type wireMetric struct {
	name              []byte
	hasName, hasAlias bool
	alias             uint64
	ts                uint64
	hasTS             bool
	dt                uint32
	isNull            bool
	props             []byte
	hasProps          bool
	v                 rawValue
}

// parseMetric reads one Metric; validate checks the nested messages flowd
// does not read (metadata, DataSet, Template, extensions) as protobuf would.
// The loop stays here and only the per-field work is split out: it runs for
// every metric of every DDATA.
func parseMetric(b []byte, validate bool) (wireMetric, error) {
	var m wireMetric
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return m, protowire.ParseError(n)
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			if num >= 2 && num <= 7 || num == fInt || num == fLong || num == fBool {
				v, n := protowire.ConsumeVarint(b)
				if n < 0 {
					return m, protowire.ParseError(n)
				}
				b = b[n:]
				m.setVarint(num, v)
				continue
			}
		case protowire.Fixed32Type:
			if num == fFloat {
				v, n := protowire.ConsumeFixed32(b)
				if n < 0 {
					return m, protowire.ParseError(n)
				}
				b = b[n:]
				m.v = rawValue{field: fFloat, u: uint64(v)}
				continue
			}
		case protowire.Fixed64Type:
			if num == fDouble {
				v, n := protowire.ConsumeFixed64(b)
				if n < 0 {
					return m, protowire.ParseError(n)
				}
				b = b[n:]
				m.v = rawValue{field: fDouble, u: v}
				continue
			}
		case protowire.BytesType:
			if num == 1 || num == 8 || num == 9 || num >= fString && num <= fExt {
				v, n := protowire.ConsumeBytes(b)
				if n < 0 {
					return m, protowire.ParseError(n)
				}
				b = b[n:]
				if err := m.setBytes(num, v, validate); err != nil {
					return m, err
				}
				continue
			}
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return m, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return m, nil
}

// setVarint stores the varint field num of a Metric (parseMetric checked
// that flowd reads it); fields 5 and 6 (historical, transient) are not kept.
func (m *wireMetric) setVarint(num protowire.Number, v uint64) {
	switch num {
	case 2:
		m.alias, m.hasAlias = v, true
	case 3:
		m.ts, m.hasTS = v, true
	case 4:
		m.dt = uint32(v)
	case 7:
		m.isNull = v != 0
	case fInt:
		m.v = rawValue{field: fInt, u: uint64(uint32(v))}
	case fLong:
		m.v = rawValue{field: fLong, u: v}
	case fBool:
		m.v = rawValue{field: fBool}
		if v != 0 {
			m.v.u = 1
		}
	}
}

// setBytes stores the length-delimited field num of a Metric and, with
// validate, checks the nested messages flowd keeps only as raw bytes.
func (m *wireMetric) setBytes(num protowire.Number, v []byte, validate bool) error {
	var check proto.Message
	switch num {
	case 1:
		m.name, m.hasName = v, true
	case 8:
		check = &sproto.Payload_MetaData{}
	case 9:
		if m.hasProps {
			// protobuf merges repeated occurrences; so rare that
			// the generated types may do it.
			return errMergeProps
		}
		m.props, m.hasProps = v, true
		check = &sproto.Payload_PropertySet{}
	case fString, fBytes:
		m.v = rawValue{field: int(num), b: v}
	case fDataSet:
		m.v, check = rawValue{field: fDataSet}, &sproto.Payload_DataSet{}
	case fTmpl:
		m.v, check = rawValue{field: fTmpl}, &sproto.Payload_Template{}
	case fExt:
		m.v, check = rawValue{field: fExt}, &sproto.Payload_Metric_MetricValueExtension{}
	}
	if validate && check != nil {
		return proto.Unmarshal(v, check)
	}
	return nil
}

// errMergeProps sends a metric with two property sets to the generated
// types, which merge them as protobuf specifies.
var errMergeProps = errors.New("metric has its properties in several parts")

// dataWire decodes the metrics of NDATA/DDATA (validated by scanPayload).
func (d *Decoder) dataWire(dst []engine.Point, n *node, t Topic, payload []byte, ts int64) ([]engine.Point, error) {
	if t.Device != "" {
		if dev := n.devices[t.Device]; dev == nil || !dev.born {
			return dst, d.rebirth(n, t, fmt.Errorf("DDATA from device %s/%s/%s before its DBIRTH", t.Group, t.Node, t.Device))
		}
	}
	start := len(dst)
	i := 0
	for b := payload; len(b) > 0; {
		num, typ, k := consumeTag(b)
		b = b[k:]
		if num != 2 || typ != protowire.BytesType {
			b = b[protowire.ConsumeFieldValue(num, typ, b):]
			continue
		}
		v, k := protowire.ConsumeBytes(b)
		b = b[k:]
		m, _ := parseMetric(v, false)
		var def *metric
		if m.hasAlias {
			def = n.aliases[m.alias]
			if def == nil {
				return dst[:start], d.rebirth(n, t, fmt.Errorf("%s metric %d: unknown alias %d (not in the births of %s/%s)", t.Type, i, m.alias, t.Group, t.Node))
			}
			if def.device != t.Device {
				return dst[:start], d.rebirth(n, t, fmt.Errorf("%s metric %d: alias %d is %q of device %q, not of %q", t.Type, i, m.alias, def.name, def.device, t.Device))
			}
		} else {
			def = n.names[devName{t.Device, string(m.name)}]
			if def == nil {
				return dst[:start], d.rebirth(n, t, fmt.Errorf("%s metric %d: unknown metric %q (not in the births of %s/%s)", t.Type, i, m.name, t.Group, t.Node))
			}
		}
		dt := def.dt
		if m.dt != 0 {
			dt = sproto.DataType(m.dt)
		}
		val, err := valueOf(m.v, m.isNull, dt)
		if err == errSkip {
			d.st.skipped.Add(1)
			i++
			continue
		}
		if err != nil {
			return dst[:start], fmt.Errorf("%s metric %q: %w", t.Type, def.name, err)
		}
		pts := ts
		if m.hasTS {
			if pts, err = msToNs(m.ts); err != nil {
				return dst[:start], fmt.Errorf("%s metric %q: timestamp: %w", t.Type, def.name, err)
			}
		}
		q := engine.Good
		if m.hasProps {
			var ps sproto.Payload_PropertySet
			if proto.Unmarshal(m.props, &ps) == nil {
				if code, ok := qualityProperty(&ps); ok {
					q = code
				}
			}
		}
		dst = append(dst, engine.Point{Asset: def.asset, Tag: def.name, Value: val, Quality: q, TS: pts, Attrs: def.attrs})
		i++
	}
	return dst, nil
}
