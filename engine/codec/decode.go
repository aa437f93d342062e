package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/flowd/flowd/engine"
)

// PointFields are the members a reader takes from a canonical point object
// (status_name is written for people and not read), in the order of
// wirePoint's fields. The json codec and its fast path in common/payload
// match keys against this one list.
var PointFields = [...]string{"asset", "tag", "value", "quality", "status", "ts", "attrs"}

type wirePoint struct {
	Asset   string            `json:"asset"`
	Tag     string            `json:"tag"`
	Value   json.RawMessage   `json:"value"`
	Quality string            `json:"quality"`
	Status  uint32            `json:"status"`
	TS      json.RawMessage   `json:"ts"`
	Attrs   map[string]string `json:"attrs"`
}

// ErrNoTag is returned for a point object without a tag.
var ErrNoTag = errors.New("point has no tag")

// DecodePoints appends the points in data to dst. data holds one canonical
// point object or an array of them.
func DecodePoints(dst []engine.Point, data []byte) ([]engine.Point, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return dst, errors.New("empty payload")
	}
	if data[0] == '[' {
		var items []wirePoint
		if err := json.Unmarshal(data, &items); err != nil {
			return dst, err
		}
		for i := range items {
			p, err := items[i].point()
			if err != nil {
				return dst, fmt.Errorf("item %d: %w", i, err)
			}
			dst = append(dst, p)
		}
		return dst, nil
	}
	var w wirePoint
	if err := json.Unmarshal(data, &w); err != nil {
		return dst, err
	}
	p, err := w.point()
	if err != nil {
		return dst, err
	}
	return append(dst, p), nil
}

func (w *wirePoint) point() (engine.Point, error) {
	if w.Tag == "" {
		return engine.Point{}, ErrNoTag
	}
	v, err := ParseValue(w.Value)
	if err != nil {
		return engine.Point{}, err
	}
	q, ok := engine.ParseQuality(w.Quality)
	if !ok {
		return engine.Point{}, fmt.Errorf("quality %q is not good, uncertain or bad", w.Quality)
	}
	ts, err := ParseTS(w.TS)
	if err != nil {
		return engine.Point{}, err
	}
	p := engine.Point{Asset: w.Asset, Tag: w.Tag, Value: v, Quality: q, Status: w.Status, TS: ts}
	if len(w.Attrs) > 0 {
		p.Attrs = w.Attrs
	}
	return p, nil
}

// ParseValue reads a JSON scalar: a number with a fraction or exponent is a
// float, a whole number an int (a uint above math.MaxInt64, a float beyond
// the uint64 range); objects and arrays are kept as JSON strings.
func ParseValue(raw json.RawMessage) (engine.Value, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return engine.Null(), nil
	}
	switch raw[0] {
	case 't', 'f':
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return engine.Value{}, err
		}
		return engine.Bool(b), nil
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return engine.Value{}, err
		}
		return engine.String(s), nil
	case '{', '[':
		if !json.Valid(raw) {
			return engine.Value{}, errors.New("invalid JSON value")
		}
		return engine.String(string(raw)), nil
	}
	s := string(raw)
	if bytes.ContainsAny(raw, ".eE") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return engine.Value{}, fmt.Errorf("value %s is not a number", s)
		}
		return engine.Float(f), nil
	}
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if u, uerr := strconv.ParseUint(s, 10, 64); uerr == nil {
			return engine.Uint(u), nil // above math.MaxInt64: exact, not a float
		}
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return engine.Value{}, fmt.Errorf("value %s is not a number", s)
		}
		return engine.Float(f), nil
	}
	return engine.Int(i), nil
}

// ParseTS reads an RFC 3339 string or a number of Unix milliseconds; absent
// means 0 (the caller substitutes the receive time). A time outside the range
// of Unix nanoseconds is an error wrapping ErrTimeRange, never wrapped around.
func ParseTS(raw json.RawMessage) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
		return ParseTime(s)
	}
	return ParseMillis(string(raw))
}
