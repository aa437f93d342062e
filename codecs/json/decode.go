package json

import (
	"bytes"
	stdjson "encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
)

// wire is a point object in a payload.
type wire struct {
	Asset   string             `json:"asset"`
	Tag     string             `json:"tag"`
	Value   stdjson.RawMessage `json:"value"`
	Quality string             `json:"quality"`
	Status  uint32             `json:"status"`
	TS      stdjson.RawMessage `json:"ts"`
	Attrs   map[string]string  `json:"attrs"`
}

// fillLast completes the point just appended to dst. The point is filled in
// place: a local point handed to the interface would escape to the heap, an
// allocation per message.
func fillLast(dst []engine.Point, m *engine.Message) error {
	if m.Fill == nil {
		return nil
	}
	return m.Fill.FillPoint(&dst[len(dst)-1], m.Subject)
}

var errNoTag = &engine.DecodeError{Reason: engine.ReasonNoTag, Err: codec.ErrNoTag}

// Decode reads a point object, an array of them, a tag map or a bare scalar.
func Decode(dst []engine.Point, m *engine.Message) ([]engine.Point, error) {
	data := bytes.TrimSpace(m.Payload)
	if len(data) == 0 {
		return dst, engine.Rejectf(engine.ReasonEmpty, "empty payload")
	}
	n := len(dst)
	switch data[0] {
	case '[':
		var items []wire
		if err := stdjson.Unmarshal(data, &items); err != nil {
			return dst[:n], engine.Rejectf(engine.ReasonSyntax, "invalid JSON: %w", err)
		}
		if len(items) == 0 {
			return dst, engine.Rejectf(engine.ReasonEmpty, "empty array")
		}
		for i := range items {
			var err error
			if dst, err = appendPoint(dst, &items[i], m); err != nil {
				return dst[:n], &engine.DecodeError{Reason: engine.RejectReason(err), Err: fmt.Errorf("item %d: %w", i, err)}
			}
		}
		return dst, nil
	case '{':
		var w wire
		if err := stdjson.Unmarshal(data, &w); err != nil {
			return dst, engine.Rejectf(engine.ReasonSyntax, "invalid JSON: %w", err)
		}
		if w.Tag != "" || w.Value != nil {
			dst, err := appendPoint(dst, &w, m)
			if err != nil {
				return dst[:n], err
			}
			return dst, nil
		}
		// The asset_json shape the sinks write ({"asset":…,"points":{…}})
		// reads back through json too, so a consumer need not know which
		// of the json codecs a producer used.
		if w.Asset != "" && hasPoints(data) {
			return DecodeAsset(dst, m)
		}
		return decodeTagMap(dst, m, data)
	}
	// A bare scalar: one value of the tag named by tag_expr.
	v, err := scalar(data)
	if err != nil {
		return dst, err
	}
	dst = append(dst, engine.Point{Value: v, TS: m.Now})
	if err := fillLast(dst, m); err != nil {
		return dst[:n], err
	}
	if dst[n].Tag == "" {
		return dst[:n], engine.Rejectf(engine.ReasonNoTag, "payload is a bare value and tag_expr is not set")
	}
	return dst, nil
}

// scalar parses a JSON number, bool, string or null; objects and arrays are
// the wrong type for a value.
func scalar(raw stdjson.RawMessage) (engine.Value, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && (raw[0] == '{' || raw[0] == '[') {
		return engine.Value{}, engine.Rejectf(engine.ReasonValue, "value must be a number, bool, string or null, not an object or array")
	}
	if len(raw) > 0 && raw[0] != '"' && raw[0] != 't' && raw[0] != 'f' && raw[0] != 'n' && !stdjson.Valid(raw) {
		return engine.Value{}, engine.Rejectf(engine.ReasonSyntax, "value %.40q is not valid JSON", raw)
	}
	v, err := codec.ParseValue(raw)
	if err != nil {
		return v, &engine.DecodeError{Reason: engine.ReasonValue, Err: err}
	}
	return v, nil
}

// appendPoint appends the point of a point object; on error dst may hold a
// partial point past its original length, which the caller cuts off.
func appendPoint(dst []engine.Point, w *wire, m *engine.Message) ([]engine.Point, error) {
	v, err := scalar(w.Value)
	if err != nil {
		return dst, err
	}
	q, ok := engine.ParseQuality(w.Quality)
	if !ok {
		return dst, engine.Rejectf(engine.ReasonQuality, "quality %q is not good, uncertain or bad", w.Quality)
	}
	ts, err := codec.ParseTS(w.TS)
	if err != nil {
		return dst, &engine.DecodeError{Reason: engine.ReasonTS, Err: err}
	}
	if ts == 0 {
		ts = m.Now
	}
	dst = append(dst, engine.Point{Asset: w.Asset, Tag: w.Tag, Value: v, Quality: q, Status: w.Status, TS: ts})
	p := &dst[len(dst)-1]
	if p.Status != 0 && w.Quality == "" {
		p.Quality = engine.QualityFromStatus(p.Status)
	}
	if err := fillLast(dst, m); err != nil {
		return dst, err
	}
	if p.Tag == "" {
		return dst, errNoTag
	}
	if len(w.Attrs) > 0 {
		p.Attrs = w.Attrs
	}
	return dst, nil
}

// gatewayValue is one entry of the tag-map shape OPC UA gateways publish:
// {"Temp": {"Value": 21.5, "SourceTimestamp": "…", "StatusCode": 0}}.
type gatewayValue struct {
	Value           stdjson.RawMessage `json:"Value"`
	SourceTimestamp stdjson.RawMessage `json:"SourceTimestamp"`
	StatusCode      stdjson.RawMessage `json:"StatusCode"`
}

func decodeTagMap(dst []engine.Point, m *engine.Message, data []byte) ([]engine.Point, error) {
	n := len(dst)
	var tags map[string]stdjson.RawMessage
	if err := stdjson.Unmarshal(data, &tags); err != nil {
		return dst, engine.Rejectf(engine.ReasonSyntax, "invalid JSON: %w", err)
	}
	if len(tags) == 0 {
		return dst, engine.Rejectf(engine.ReasonEmpty, "object has neither tag nor value, nor any tag entries")
	}
	// A point object without its tag or value is not a tag map whose tags are
	// named asset or quality: reading it so would invent points.
	for _, k := range codec.PointFields {
		if _, ok := tags[k]; ok {
			return dst, engine.Rejectf(engine.ReasonShape, "object has %q but no tag and no value: not a point, and not a tag map (whose tags cannot be named %s)", k, strings.Join(codec.PointFields[:], ", "))
		}
	}
	// The asset the source gives is the same for every tag of the message.
	var asset string
	if m.Fill != nil {
		dst = append(dst, engine.Point{Tag: "-"})
		err := fillLast(dst, m)
		asset = dst[n].Asset
		dst = dst[:n]
		if err != nil {
			return dst, err
		}
	}
	for tag, raw := range tags {
		if tag == "" {
			return dst[:n], engine.Rejectf(engine.ReasonNoTag, "tag map has an empty tag name")
		}
		p := engine.Point{Asset: asset, Tag: tag, TS: m.Now}
		raw = bytes.TrimSpace(raw)
		if len(raw) > 0 && raw[0] == '{' {
			var g gatewayValue
			if err := stdjson.Unmarshal(raw, &g); err != nil {
				return dst[:n], engine.Rejectf(engine.ReasonSyntax, "tag %q: %w", tag, err)
			}
			if g.Value == nil {
				return dst[:n], engine.Rejectf(engine.ReasonShape, "tag %q: no Value", tag)
			}
			v, err := scalar(g.Value)
			if err != nil {
				return dst[:n], &engine.DecodeError{Reason: engine.RejectReason(err), Err: fmt.Errorf("tag %q: %w", tag, err)}
			}
			p.Value = v
			if ts, err := codec.ParseTS(g.SourceTimestamp); err != nil {
				return dst[:n], engine.Rejectf(engine.ReasonTS, "tag %q: %w", tag, err)
			} else if ts != 0 {
				p.TS = ts
			}
			code, err := statusCode(g.StatusCode)
			if err != nil {
				return dst[:n], engine.Rejectf(engine.ReasonValue, "tag %q: %w", tag, err)
			}
			p.Status = code
			p.Quality = engine.QualityFromStatus(code)
		} else {
			v, err := scalar(raw)
			if err != nil {
				return dst[:n], &engine.DecodeError{Reason: engine.RejectReason(err), Err: fmt.Errorf("tag %q: %w", tag, err)}
			}
			p.Value = v
		}
		dst = append(dst, p)
	}
	return dst, nil
}

// statusCode reads an OPC UA status code: a number, or {"Code": n, …}.
func statusCode(raw stdjson.RawMessage) (uint32, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	if raw[0] == '{' {
		var s struct {
			Code uint32 `json:"Code"`
		}
		if err := stdjson.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("StatusCode: %w", err)
		}
		return s.Code, nil
	}
	var c uint32
	if err := stdjson.Unmarshal(raw, &c); err != nil {
		return 0, fmt.Errorf("StatusCode: %w", err)
	}
	return c, nil
}

// assetWire is an asset_json message.
type assetWire struct {
	Asset  *string                       `json:"asset"`
	Points map[string]stdjson.RawMessage `json:"points"`
}

// DecodeAsset reads an asset_json message: a point per tag, in tag order.
func DecodeAsset(dst []engine.Point, m *engine.Message) ([]engine.Point, error) {
	data := bytes.TrimSpace(m.Payload)
	if len(data) == 0 {
		return dst, engine.Rejectf(engine.ReasonEmpty, "empty payload")
	}
	var w assetWire
	if err := stdjson.Unmarshal(data, &w); err != nil {
		return dst, engine.Rejectf(engine.ReasonSyntax, "invalid JSON: %w", err)
	}
	if w.Asset == nil || w.Points == nil {
		return dst, engine.Rejectf(engine.ReasonShape, `asset_json needs an object {"asset": …, "points": {tag: {value, quality, ts}}}`)
	}
	if len(w.Points) == 0 {
		return dst, engine.Rejectf(engine.ReasonEmpty, "asset_json message without points")
	}
	tags := make([]string, 0, len(w.Points))
	for t := range w.Points {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	n := len(dst)
	for _, tag := range tags {
		if tag == "" {
			return dst[:n], engine.Rejectf(engine.ReasonNoTag, "points has an empty tag name")
		}
		var ap wire // a point object; tag and asset, when given, must match
		if err := stdjson.Unmarshal(w.Points[tag], &ap); err != nil {
			return dst[:n], engine.Rejectf(engine.ReasonSyntax, "tag %q: %w", tag, err)
		}
		if ap.Value == nil {
			return dst[:n], engine.Rejectf(engine.ReasonShape, "tag %q: no value", tag)
		}
		// A point that names another tag or asset than the one it is filed
		// under is ambiguous: never guess which one is meant.
		if (ap.Tag != "" && ap.Tag != tag) || (ap.Asset != "" && ap.Asset != *w.Asset) {
			return dst[:n], engine.Rejectf(engine.ReasonShape, "tag %q: the point names tag %q / asset %q, not the ones it is filed under", tag, ap.Tag, ap.Asset)
		}
		v, err := scalar(ap.Value)
		if err != nil {
			return dst[:n], &engine.DecodeError{Reason: engine.RejectReason(err), Err: fmt.Errorf("tag %q: %w", tag, err)}
		}
		q, ok := engine.ParseQuality(ap.Quality)
		if !ok {
			return dst[:n], engine.Rejectf(engine.ReasonQuality, "tag %q: quality %q is not good, uncertain or bad", tag, ap.Quality)
		}
		ts, err := codec.ParseTS(ap.TS)
		if err != nil {
			return dst[:n], engine.Rejectf(engine.ReasonTS, "tag %q: %w", tag, err)
		}
		if ts == 0 {
			ts = m.Now
		}
		dst = append(dst, engine.Point{Asset: *w.Asset, Tag: tag, Value: v, Quality: q, Status: ap.Status, TS: ts})
		if ap.Status != 0 && ap.Quality == "" {
			dst[len(dst)-1].Quality = engine.QualityFromStatus(ap.Status)
		}
		if len(ap.Attrs) > 0 {
			dst[len(dst)-1].Attrs = ap.Attrs
		}
		if *w.Asset == "" {
			if err := fillLast(dst, m); err != nil {
				return dst[:n], err
			}
		}
	}
	return dst, nil
}

// hasPoints reports whether a JSON object has a "points" member.
func hasPoints(data []byte) bool {
	var probe struct {
		Points stdjson.RawMessage `json:"points"`
	}
	return stdjson.Unmarshal(data, &probe) == nil && len(probe.Points) > 0
}
