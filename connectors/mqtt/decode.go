package mqtt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	mqttc "github.com/flowd/flowd/common/mqtt"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
)

// Decoder turns MQTT messages into points. It is safe for concurrent use.
type Decoder struct {
	format     string
	maxPayload int
	asset      field // asset for points that carry none
	tag        field // tag for points that carry none (raw: always)
	mapping    map[string]field
}

// ErrTooLarge is returned for a payload above max_payload.
var ErrTooLarge = errors.New("payload too large")

// field yields a string from a message: a literal, a topic template, or (in
// the map format) values from the payload.
type field struct {
	set   bool
	terms []mqttc.Term
}

type msgCtx struct {
	topic   string
	payload map[string]any // map format only
}

// compileField parses a concatenation expression over topic, topic[N] and,
// when payload is allowed, payload.PATH. The small language here is the one
// common/mqtt parses; a richer point expression language can replace
// ParseConcat in this one function.
func compileField(attr string, x engine.Expr, allowPayload bool) (field, error) {
	terms, err := mqttc.ParseConcat(x.Src)
	if err != nil {
		off := -1
		var pe *mqttc.PosError
		if errors.As(err, &pe) {
			off = pe.Offset
		}
		return field{}, engine.ExprError(attr, &x, off, err)
	}
	for _, t := range terms {
		if t.IsLit {
			continue
		}
		switch {
		case t.Name == "topic" && len(t.Path) == 0:
		case t.Name == "payload" && allowPayload && t.Index < 0:
		default:
			what := "topic or topic[N]"
			if allowPayload {
				what += " or payload.FIELD"
			}
			return field{}, engine.ExprError(attr, &x, t.Offset, fmt.Errorf("unknown name %q: use %s, or a quoted string", t.Name, what))
		}
	}
	return field{set: true, terms: terms}, nil
}

func literalField(s string) field {
	return field{set: true, terms: []mqttc.Term{{Lit: s, IsLit: true, Index: -1}}}
}

// eval renders the field; ok is false when a payload path is missing.
func (f *field) eval(m *msgCtx) (string, any, bool) {
	if len(f.terms) == 1 {
		v, ok := f.term(&f.terms[0], m)
		if s, isStr := v.(string); isStr {
			return s, v, ok
		}
		return valueString(v), v, ok
	}
	var b strings.Builder
	for i := range f.terms {
		v, ok := f.term(&f.terms[i], m)
		if !ok {
			return "", nil, false
		}
		b.WriteString(valueString(v))
	}
	return b.String(), b.String(), true
}

func (f *field) term(t *mqttc.Term, m *msgCtx) (any, bool) {
	if t.IsLit {
		return t.Lit, true
	}
	if t.Name == "topic" {
		if t.Index >= 0 {
			return mqttc.TopicLevel(m.topic, t.Index), true
		}
		return m.topic, true
	}
	var cur any = m.payload
	for _, p := range t.Path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[p]; !ok {
			return nil, false
		}
	}
	if t.Index >= 0 {
		arr, ok := cur.([]any)
		if !ok || t.Index >= len(arr) {
			return nil, false
		}
		cur = arr[t.Index]
	}
	return cur, true
}

func valueString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case nil:
		return ""
	case json.Number:
		return t.String()
	case bool:
		return strconv.FormatBool(t)
	}
	return fmt.Sprint(v)
}

// Decode appends the points of one message to dst. now is the receive time
// (Unix ns), used when the payload carries no timestamp.
func (d *Decoder) Decode(dst []engine.Point, topic string, payload []byte, now int64) ([]engine.Point, error) {
	if d.maxPayload > 0 && len(payload) > d.maxPayload {
		return dst, fmt.Errorf("%w: %d bytes, max_payload is %d", ErrTooLarge, len(payload), d.maxPayload)
	}
	m := msgCtx{topic: topic}
	switch d.format {
	case "raw":
		p := engine.Point{Value: engine.String(string(payload)), TS: now}
		p.Tag, _, _ = d.tag.eval(&m)
		if d.asset.set {
			p.Asset, _, _ = d.asset.eval(&m)
		}
		if p.Tag == "" {
			return dst, codec.ErrNoTag
		}
		return append(dst, p), nil
	case "map":
		return d.decodeMap(dst, &m, payload, now)
	}
	return d.decodeJSON(dst, &m, payload, now)
}

// wire is a point object in a payload.
type wire struct {
	Asset   string            `json:"asset"`
	Tag     string            `json:"tag"`
	Value   json.RawMessage   `json:"value"`
	Quality string            `json:"quality"`
	Status  uint32            `json:"status"`
	TS      json.RawMessage   `json:"ts"`
	Attrs   map[string]string `json:"attrs"`
}

func (d *Decoder) decodeJSON(dst []engine.Point, m *msgCtx, payload []byte, now int64) ([]engine.Point, error) {
	data := bytes.TrimSpace(payload)
	if len(data) == 0 {
		return dst, errors.New("empty payload")
	}
	n := len(dst)
	switch data[0] {
	case '[':
		var items []wire
		if err := json.Unmarshal(data, &items); err != nil {
			return dst[:n], fmt.Errorf("invalid JSON: %w", err)
		}
		if len(items) == 0 {
			return dst, errors.New("empty array")
		}
		for i := range items {
			p, err := d.point(&items[i], m, now)
			if err != nil {
				return dst[:n], fmt.Errorf("item %d: %w", i, err)
			}
			dst = append(dst, p)
		}
		return dst, nil
	case '{':
		var w wire
		if err := json.Unmarshal(data, &w); err != nil {
			return dst, fmt.Errorf("invalid JSON: %w", err)
		}
		if w.Tag != "" || w.Value != nil {
			p, err := d.point(&w, m, now)
			if err != nil {
				return dst, err
			}
			return append(dst, p), nil
		}
		return d.decodeTagMap(dst, m, data, now)
	}
	// A bare scalar: one value of the tag named by tag_expr.
	v, err := scalar(data)
	if err != nil {
		return dst, err
	}
	p := engine.Point{Value: v, TS: now}
	p.Tag, _, _ = d.tag.eval(m)
	if d.asset.set {
		p.Asset, _, _ = d.asset.eval(m)
	}
	if p.Tag == "" {
		return dst, errors.New("payload is a bare value and tag_expr is not set")
	}
	return append(dst, p), nil
}

// scalar parses a JSON number, bool, string or null; objects and arrays are
// the wrong type for a value.
func scalar(raw json.RawMessage) (engine.Value, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && (raw[0] == '{' || raw[0] == '[') {
		return engine.Value{}, errors.New("value must be a number, bool, string or null, not an object or array")
	}
	if len(raw) > 0 && raw[0] != '"' && raw[0] != 't' && raw[0] != 'f' && raw[0] != 'n' && !json.Valid(raw) {
		return engine.Value{}, fmt.Errorf("value %.40q is not valid JSON", raw)
	}
	return codec.ParseValue(raw)
}

func (d *Decoder) point(w *wire, m *msgCtx, now int64) (engine.Point, error) {
	v, err := scalar(w.Value)
	if err != nil {
		return engine.Point{}, err
	}
	q, ok := engine.ParseQuality(w.Quality)
	if !ok {
		return engine.Point{}, fmt.Errorf("quality %q is not good, uncertain or bad", w.Quality)
	}
	ts, err := codec.ParseTS(w.TS)
	if err != nil {
		return engine.Point{}, err
	}
	if ts == 0 {
		ts = now
	}
	p := engine.Point{Asset: w.Asset, Tag: w.Tag, Value: v, Quality: q, Status: w.Status, TS: ts}
	if p.Status != 0 && w.Quality == "" {
		p.Quality = engine.QualityFromStatus(p.Status)
	}
	if p.Asset == "" && d.asset.set {
		p.Asset, _, _ = d.asset.eval(m)
	}
	if p.Tag == "" && d.tag.set {
		p.Tag, _, _ = d.tag.eval(m)
	}
	if p.Tag == "" {
		return engine.Point{}, codec.ErrNoTag
	}
	if len(w.Attrs) > 0 {
		p.Attrs = w.Attrs
	}
	return p, nil
}

// gatewayValue is one entry of the tag-map shape OPC UA gateways publish:
// {"Temp": {"Value": 21.5, "SourceTimestamp": "…", "StatusCode": 0}}.
type gatewayValue struct {
	Value           json.RawMessage `json:"Value"`
	SourceTimestamp json.RawMessage `json:"SourceTimestamp"`
	StatusCode      json.RawMessage `json:"StatusCode"`
}

func (d *Decoder) decodeTagMap(dst []engine.Point, m *msgCtx, data []byte, now int64) ([]engine.Point, error) {
	n := len(dst)
	var tags map[string]json.RawMessage
	if err := json.Unmarshal(data, &tags); err != nil {
		return dst, fmt.Errorf("invalid JSON: %w", err)
	}
	if len(tags) == 0 {
		return dst, errors.New("object has neither tag nor value, nor any tag entries")
	}
	asset := ""
	if d.asset.set {
		asset, _, _ = d.asset.eval(m)
	}
	for tag, raw := range tags {
		if tag == "" {
			return dst[:n], errors.New("tag map has an empty tag name")
		}
		p := engine.Point{Asset: asset, Tag: tag, TS: now}
		raw = bytes.TrimSpace(raw)
		if len(raw) > 0 && raw[0] == '{' {
			var g gatewayValue
			if err := json.Unmarshal(raw, &g); err != nil {
				return dst[:n], fmt.Errorf("tag %q: %w", tag, err)
			}
			if g.Value == nil {
				return dst[:n], fmt.Errorf("tag %q: no Value", tag)
			}
			v, err := scalar(g.Value)
			if err != nil {
				return dst[:n], fmt.Errorf("tag %q: %w", tag, err)
			}
			p.Value = v
			if ts, err := codec.ParseTS(g.SourceTimestamp); err != nil {
				return dst[:n], fmt.Errorf("tag %q: %w", tag, err)
			} else if ts != 0 {
				p.TS = ts
			}
			if code, err := statusCode(g.StatusCode); err != nil {
				return dst[:n], fmt.Errorf("tag %q: %w", tag, err)
			} else {
				p.Status = code
				p.Quality = engine.QualityFromStatus(code)
			}
		} else {
			v, err := scalar(raw)
			if err != nil {
				return dst[:n], fmt.Errorf("tag %q: %w", tag, err)
			}
			p.Value = v
		}
		dst = append(dst, p)
	}
	return dst, nil
}

// statusCode reads an OPC UA status code: a number, or {"Code": n, …}.
func statusCode(raw json.RawMessage) (uint32, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	if raw[0] == '{' {
		var s struct {
			Code uint32 `json:"Code"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("StatusCode: %w", err)
		}
		return s.Code, nil
	}
	var c uint32
	if err := json.Unmarshal(raw, &c); err != nil {
		return 0, fmt.Errorf("StatusCode: %w", err)
	}
	return c, nil
}

func (d *Decoder) decodeMap(dst []engine.Point, m *msgCtx, payload []byte, now int64) ([]engine.Point, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return dst, fmt.Errorf("invalid JSON object: %w", err)
	}
	if dec.More() {
		return dst, errors.New("invalid JSON: data after the object")
	}
	m.payload = doc
	p := engine.Point{TS: now}
	for name, f := range d.mapping {
		s, v, ok := f.eval(m)
		if !ok {
			return dst, fmt.Errorf("map.%s: the payload has no such field", name)
		}
		switch name {
		case "asset":
			p.Asset = s
		case "tag":
			p.Tag = s
		case "value":
			val, err := anyValue(v)
			if err != nil {
				return dst, fmt.Errorf("map.value: %w", err)
			}
			p.Value = val
		case "quality":
			q, ok := engine.ParseQuality(s)
			if !ok {
				return dst, fmt.Errorf("map.quality: %q is not good, uncertain or bad", s)
			}
			p.Quality = q
		case "ts":
			raw, _ := json.Marshal(v)
			ts, err := codec.ParseTS(raw)
			if err != nil {
				return dst, fmt.Errorf("map.ts: %w", err)
			}
			if ts != 0 {
				p.TS = ts
			}
		}
	}
	if p.Asset == "" && d.asset.set {
		p.Asset, _, _ = d.asset.eval(m)
	}
	if p.Tag == "" && d.tag.set {
		p.Tag, _, _ = d.tag.eval(m)
	}
	if p.Tag == "" {
		return dst, codec.ErrNoTag
	}
	return append(dst, p), nil
}

func anyValue(v any) (engine.Value, error) {
	switch t := v.(type) {
	case nil:
		return engine.Null(), nil
	case bool:
		return engine.Bool(t), nil
	case string:
		return engine.String(t), nil
	case json.Number:
		if i, err := t.Int64(); err == nil && !strings.ContainsAny(t.String(), ".eE") {
			return engine.Int(i), nil
		}
		f, err := t.Float64()
		if err != nil {
			return engine.Value{}, err
		}
		return engine.Float(f), nil
	}
	return engine.Value{}, errors.New("must be a number, bool, string or null, not an object or array")
}
