// Package payload decodes message payloads into points for the sources that
// receive payloads (MQTT, HTTP, UDP): the map block of expressions over any
// JSON object, or any codec that decodes (json, raw, …: see codecs/), with
// the source's asset and tag settings for points the payload leaves bare. Expressions see the message's
// subject as a list of levels (an MQTT topic, an HTTP path) under a name the
// source chooses, and in the map block the decoded payload.
package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/flowd/flowd/common/sparkplug"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
	"github.com/flowd/flowd/engine/pointexpr"
)

// Decoder turns messages into points. It is not safe for concurrent use (it
// reuses its expression VM); Clone gives another goroutine its own.
type Decoder struct {
	maxPayload int
	subject    string // name of the subject's levels in expressions; "" for none
	asset      field  // asset for points that carry none
	tag        field  // tag for points that carry none (raw: always)
	mapping    map[string]*msgExpr
	values     *msgExpr // map.values, where the source allows it
	ev         *evaluator
	codec      *engine.Codec // nil: format map or sparkplug
	msg        engine.Message
	sp         *sparkplug.Decoder // format sparkplug; its state is shared by clones
	fast       *fastState         // the json format's fast path (fast.go)
}

// Clone returns a decoder sharing the compiled expressions, with its own VM.
func (d *Decoder) Clone() *Decoder {
	c := *d
	c.ev = &evaluator{}
	if d.sp != nil {
		c.sp = sparkplug.NewDecoder(d.sp.State(), c.spAsset)
	}
	c.fast = nil
	return &c
}

// Sparkplug is the Sparkplug host state shared by the clones (format
// sparkplug), or nil.
func (d *Decoder) Sparkplug() *sparkplug.State {
	if d.sp == nil {
		return nil
	}
	return d.sp.State()
}

// spAsset names the asset of a Sparkplug edge node or device at its birth:
// asset or asset_expr over the birth's topic, by default group/node[/device].
func (d *Decoder) spAsset(topic string, t sparkplug.Topic) (string, error) {
	if d.asset.set {
		return d.str(&d.asset, topic)
	}
	if t.Device != "" {
		return t.Group + "/" + t.Node + "/" + t.Device, nil
	}
	return t.Group + "/" + t.Node, nil
}

// ErrTooLarge is returned for a payload above max_payload.
var ErrTooLarge = errors.New("payload too large")

// field yields a string from a message: a literal, the topic itself, or an
// expression over the topic levels.
type field struct {
	set   bool
	lit   string
	topic bool // the whole topic
	expr  *msgExpr
}

func (d *Decoder) str(f *field, topic string) (string, error) {
	switch {
	case f.expr != nil:
		return d.ev.evalString(d.subject, f.expr, topic, nil)
	case f.topic:
		return topic, nil
	}
	return f.lit, nil
}

// assetTag fills a point's asset and tag from asset/asset_expr and tag_expr
// where the payload gave none.
func (d *Decoder) assetTag(p *engine.Point, topic string) error {
	var err error
	if p.Asset == "" && d.asset.set {
		if p.Asset, err = d.str(&d.asset, topic); err != nil {
			return err
		}
	}
	if p.Tag == "" && d.tag.set {
		if p.Tag, err = d.str(&d.tag, topic); err != nil {
			return err
		}
	}
	return nil
}

// Decode appends the points of one message to dst. topic is the message's
// subject (an MQTT topic, an HTTP path); now is the receive time (Unix ns),
// used when the payload carries no timestamp.
func (d *Decoder) Decode(dst []engine.Point, topic string, payload []byte, now int64) ([]engine.Point, error) {
	if d.maxPayload > 0 && len(payload) > d.maxPayload {
		return dst, fmt.Errorf("%w: %d bytes, max_payload is %d", ErrTooLarge, len(payload), d.maxPayload)
	}
	d.ev.reset()
	if d.sp != nil {
		return d.sp.Decode(dst, topic, payload, now)
	}
	if d.codec == nil {
		return d.decodeMap(dst, topic, payload, now)
	}
	if d.codec.Name == "json" {
		return d.decodeJSON(dst, topic, payload, now)
	}
	return d.decodeGeneral(dst, topic, payload, now)
}

// FillPoint gives a decoded point the asset and tag the source's settings
// name, where the payload carried none (engine.PointFiller).
func (d *Decoder) FillPoint(p *engine.Point, subject string) error {
	return d.assetTag(p, subject)
}

// decodeJSON decodes the json codec's payload: the fast path (fast.go) for
// the canonical shapes, the codec for everything it leaves (rejects,
// escapes, repeated members, asset_json).
func (d *Decoder) decodeJSON(dst []engine.Point, topic string, payload []byte, now int64) ([]engine.Point, error) {
	if data := bytes.TrimSpace(payload); len(data) > 0 && (data[0] == '[' || data[0] == '{') {
		if out, ok := d.decodeFast(dst, topic, data, now); ok {
			return out, nil
		}
	}
	return d.decodeGeneral(dst, topic, payload, now)
}

// decodeGeneral decodes with the json codec (encoding/json): the reference
// the fast path is checked against.
func (d *Decoder) decodeGeneral(dst []engine.Point, topic string, payload []byte, now int64) ([]engine.Point, error) {
	d.msg = engine.Message{Subject: topic, Payload: payload, Now: now, Fill: d}
	dst, err := d.codec.Decode(dst, &d.msg)
	d.msg.Payload = nil
	return dst, err
}

func (d *Decoder) decodeMap(dst []engine.Point, topic string, payload []byte, now int64) ([]engine.Point, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return dst, fmt.Errorf("invalid JSON object: %w", err)
	}
	if dec.More() {
		return dst, errors.New("invalid JSON: data after the object")
	}
	if doc == nil {
		return dst, errors.New("payload is null, not a JSON object")
	}
	if _, err := numbers(doc); err != nil {
		return dst, err
	}
	p := engine.Point{TS: now}
	for _, name := range mapOrder {
		e := d.mapping[name]
		if e == nil {
			continue
		}
		v, err := d.ev.eval(d.subject, e, topic, doc)
		if err != nil {
			return dst, err
		}
		switch name {
		case "asset", "tag":
			// A name is a string or a number; an object or a list would
			// become a name like "map[x:1]".
			if k := reflect.ValueOf(v).Kind(); k == reflect.Map || k == reflect.Slice || k == reflect.Array || k == reflect.Struct {
				return dst, fmt.Errorf("map.%s: must be a string or a number, not %s", name, jsonKind(v))
			}
			if name == "asset" {
				p.Asset = valueString(v)
			} else {
				p.Tag = valueString(v)
			}
		case "value":
			if v == nil {
				return dst, errors.New("map.value: no value (the payload has no such field, or it is null)")
			}
			val, err := anyValue(v)
			if err != nil {
				return dst, fmt.Errorf("map.value: %w", err)
			}
			p.Value = val
		case "quality":
			if v == nil {
				continue
			}
			s := valueString(v)
			q, ok := engine.ParseQuality(s)
			if !ok {
				return dst, fmt.Errorf("map.quality: %q is not good, uncertain or bad", s)
			}
			p.Quality = q
		case "ts":
			ts, err := tsOf(v)
			if err != nil {
				return dst, fmt.Errorf("map.ts: %w", err)
			}
			if ts != 0 {
				p.TS = ts
			}
		}
	}
	if err := d.assetTag(&p, topic); err != nil {
		return dst, err
	}
	if e := d.values; e != nil {
		return d.mapValues(dst, e, topic, doc, p)
	}
	if p.Tag == "" {
		return dst, codec.ErrNoTag
	}
	return append(dst, p), nil
}

// mapValues appends a point per entry of the object the values expression
// gives (tag: value), sorted by tag; asset, quality and ts are shared.
func (d *Decoder) mapValues(dst []engine.Point, e *msgExpr, topic string, doc map[string]any, p engine.Point) ([]engine.Point, error) {
	v, err := d.ev.eval(d.subject, e, topic, doc)
	if err != nil {
		return dst, err
	}
	obj, ok := v.(map[string]any)
	if !ok || len(obj) == 0 {
		return dst, fmt.Errorf("map.values: want an object of tag: value entries, got %s", describe(v))
	}
	if err := d.assetTag(&p, topic); err != nil {
		return dst, err
	}
	n := len(dst)
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "" {
			return dst[:n], errors.New("map.values: empty tag name")
		}
		val, err := anyValue(obj[k])
		if err != nil {
			return dst[:n], fmt.Errorf("map.values.%s: %w", k, err)
		}
		q := p
		q.Tag, q.Value = k, val
		if p.Tag != "" {
			q.Tag = p.Tag + "." + k
		}
		dst = append(dst, q)
	}
	return dst, nil
}

func describe(v any) string {
	switch v.(type) {
	case nil:
		return "nothing (the payload has no such field, or it is null)"
	case map[string]any:
		return "an empty object"
	}
	return fmt.Sprintf("a %T", v)
}

// mapOrder is the order map entries are evaluated in.
var mapOrder = [...]string{"asset", "tag", "value", "quality", "ts"}

// tsOf reads a timestamp: an RFC 3339 string or Unix milliseconds, through
// the same checks as the JSON formats (out-of-range times are rejected).
func tsOf(v any) (int64, error) {
	switch t := v.(type) {
	case nil:
		return 0, nil
	case string:
		return codec.ParseTime(t)
	case int:
		return codec.MillisToNanos(int64(t))
	case int64:
		return codec.MillisToNanos(t)
	case float64:
		return codec.FloatMillisToNanos(t)
	}
	return 0, fmt.Errorf("ts must be an RFC 3339 string or Unix milliseconds, not %T", v)
}

// jsonKind names the JSON type of a decoded value for messages.
func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("a %T", v)
}

func anyValue(v any) (engine.Value, error) {
	switch t := v.(type) {
	case nil:
		return engine.Null(), nil
	case bool:
		return engine.Bool(t), nil
	case string:
		return engine.String(t), nil
	case int:
		return engine.Int(int64(t)), nil
	case int64:
		return engine.Int(t), nil
	case float64:
		return engine.Float(t), nil
	}
	if _, ok := v.(map[string]any); ok {
		return engine.Value{}, errors.New("must be a number, bool, string or null, not an object")
	}
	return engine.Value{}, fmt.Errorf("must be a number, bool, string or null, not %T", v)
}

// Options configure a Decoder; the sources copy them from their own config,
// whose attributes carry the same names.
type Options struct {
	Format     string // map, or a codec that decodes (json, raw, …)
	Codecs     *engine.Codecs
	MaxPayload int // bytes; 0: no limit
	// Subject names the message's subject in asset_expr, tag_expr and the map
	// block ("topic", "path"), or "" when a source has none (then asset_expr
	// and tag_expr are not allowed, and raw needs a literal tag).
	Subject   string
	Asset     string
	AssetExpr engine.Expr
	Tag       string // literal tag of points that carry none (sources without a subject)
	TagExpr   engine.Expr
	Map       map[string]engine.Expr
	// Values allows the map entry values: an expression giving an object whose
	// entries become one point each (tag: value), in place of value.
	Values bool
	// Sparkplug configures format sparkplug (Subject must be "topic").
	Sparkplug sparkplug.Options
}

// New validates the options and compiles their expressions; errors are
// *engine.FieldError values naming the attribute.
func New(o Options) (*Decoder, error) {
	switch o.Subject {
	case "", "topic", "path":
	default:
		return nil, fmt.Errorf("payload: unknown subject %q", o.Subject)
	}
	d := &Decoder{maxPayload: o.MaxPayload, subject: o.Subject, ev: &evaluator{}}
	// Each step checks the attributes it owns; the order fixes which error
	// a config with several mistakes reports first.
	if err := d.setAsset(&o); err != nil {
		return nil, err
	}
	if err := d.setTag(&o); err != nil {
		return nil, err
	}
	if err := d.setSparkplug(&o); err != nil {
		return nil, err
	}
	if err := d.setMap(&o); err != nil {
		return nil, err
	}
	if err := d.setCodec(&o); err != nil {
		return nil, err
	}
	return d, nil
}

// setAsset sets the asset from asset or asset_expr.
func (d *Decoder) setAsset(o *Options) error {
	if o.AssetExpr.Src != "" {
		if o.Asset != "" {
			return &engine.FieldError{Field: "asset_expr", Offset: -1, Err: errors.New("set asset or asset_expr, not both")}
		}
		e, err := compileExpr(o.Subject, "asset_expr", o.AssetExpr, false, pointexpr.StringResult)
		if err != nil {
			return err
		}
		d.asset = field{set: true, expr: e}
	} else if o.Asset != "" {
		d.asset = field{set: true, lit: o.Asset}
	}
	return nil
}

// setTag sets the tag from tag or tag_expr; raw payloads carry no tag and
// take the subject unless a literal one is given.
func (d *Decoder) setTag(o *Options) error {
	if o.TagExpr.Src != "" {
		if o.Tag != "" {
			return &engine.FieldError{Field: "tag_expr", Offset: -1, Err: errors.New("set tag or tag_expr, not both")}
		}
		e, err := compileExpr(o.Subject, "tag_expr", o.TagExpr, false, pointexpr.StringResult)
		if err != nil {
			return err
		}
		d.tag = field{set: true, expr: e}
	} else if o.Tag != "" {
		d.tag = field{set: true, lit: o.Tag}
	} else if o.Format == "raw" {
		if o.Subject == "" {
			return &engine.FieldError{Field: "tag", Offset: -1, Err: errors.New("format raw needs tag: the payload carries none")}
		}
		d.tag = field{set: true, topic: true}
	}
	return nil
}

// setSparkplug sets up the Sparkplug decoder for format sparkplug, which
// names points by topic and metric itself.
func (d *Decoder) setSparkplug(o *Options) error {
	if o.Format != "sparkplug" {
		return nil
	}
	switch {
	case o.Subject != "topic":
		return &engine.FieldError{Field: "format", Offset: -1, Err: errors.New("sparkplug is read from MQTT topics only")}
	case d.tag.set:
		return &engine.FieldError{Field: "tag_expr", Offset: -1, Err: errors.New("format sparkplug names tags by metric name; tag_expr is not used")}
	}
	d.sp = sparkplug.NewDecoder(sparkplug.NewState(o.Sparkplug), d.spAsset)
	return nil
}

// setMap compiles the map block of format map, which no other format uses.
func (d *Decoder) setMap(o *Options) error {
	if o.Format != "map" {
		if len(o.Map) > 0 {
			return &engine.FieldError{Field: "map", Offset: -1, Err: errors.New("map is only used with format = \"map\"")}
		}
		return nil
	}
	if err := checkMapValue(o); err != nil {
		return err
	}
	if _, hasValues := o.Map["values"]; o.Values && hasValues {
		e, err := compileExpr(o.Subject, "map.values", o.Map["values"], true, pointexpr.ObjectResult)
		if err != nil {
			return err
		}
		d.values = e
	}
	if err := checkMapNames(o); err != nil {
		return err
	}
	d.mapping = map[string]*msgExpr{}
	for _, k := range mapOrder {
		x, ok := o.Map[k]
		if !ok {
			continue
		}
		w := pointexpr.StringResult
		switch k {
		case "value":
			w = pointexpr.ScalarResult
		case "ts":
			w = pointexpr.TimeResult
		}
		e, err := compileExpr(o.Subject, "map."+k, x, true, w)
		if err != nil {
			return err
		}
		d.mapping[k] = e
	}
	return nil
}

// checkMapValue checks that the map block has exactly one of value and
// values (values only where the source allows it).
func checkMapValue(o *Options) error {
	if len(o.Map) == 0 {
		return &engine.FieldError{Field: "map", Offset: -1, Err: errors.New("format map needs the map attribute (at least value)")}
	}
	_, hasValues := o.Map["values"]
	_, hasValue := o.Map["value"]
	if !hasValue && !(o.Values && hasValues) {
		if o.Values {
			return &engine.FieldError{Field: "map", Offset: -1, Err: errors.New("map needs a value or a values entry")}
		}
		return &engine.FieldError{Field: "map", Offset: -1, Err: errors.New("map needs a value entry")}
	}
	if o.Values && hasValues && hasValue {
		return &engine.FieldError{Field: "map", Offset: -1, Err: errors.New("set value or values, not both")}
	}
	return nil
}

// checkMapNames refuses entries of the map block that are not known.
func checkMapNames(o *Options) error {
	for k := range o.Map {
		if o.Values && k == "values" {
			continue
		}
		if !slices.Contains(mapOrder[:], k) {
			if o.Values {
				return &engine.FieldError{Field: "map", Offset: -1, Err: fmt.Errorf("unknown entry %q: use asset, tag, value or values, quality or ts", k)}
			}
			return &engine.FieldError{Field: "map", Offset: -1, Err: fmt.Errorf("unknown entry %q: use asset, tag, value, quality or ts", k)}
		}
	}
	return nil
}

// setCodec picks the codec of the formats that are not decoded here.
func (d *Decoder) setCodec(o *Options) error {
	if o.Format == "map" || o.Format == "sparkplug" {
		return nil
	}
	c, err := o.Codecs.Decoder(o.Format, "map", "sparkplug")
	if err != nil {
		return &engine.FieldError{Field: "format", Offset: -1, Err: err}
	}
	d.codec = c
	return nil
}
