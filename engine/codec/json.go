// Package codec encodes and decodes points in flowd's canonical JSON, shared
// by every source and sink that reads or writes JSON, and frames points into
// messages by a codec's framing (Framer) for every sink.
//
//	{"asset":"line1","tag":"temperature","value":21.5,"quality":"good","ts":"2026-11-22T10:00:00.123Z"}
//
// asset and attrs are omitted when empty; status (the OPC UA status code) only
// when non-zero, followed by status_name (BadNotConnected) when the code is a
// known one; ts is RFC 3339 UTC with fractional seconds. Readers take the code
// and ignore the name.
package codec

import (
	"math"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/flowd/flowd/engine"
)

// AppendPoint appends one point's canonical JSON (no newline).
func AppendPoint(b []byte, p *engine.Point) []byte {
	b = append(b, '{')
	if p.Asset != "" {
		b = append(b, `"asset":`...)
		b = AppendString(b, p.Asset)
		b = append(b, ',')
	}
	b = append(b, `"tag":`...)
	b = AppendString(b, p.Tag)
	b = append(b, `,"value":`...)
	b = AppendValue(b, p.Value)
	b = append(b, `,"quality":"`...)
	b = append(b, p.Quality.String()...)
	b = append(b, '"')
	if p.Status != 0 {
		b = append(b, `,"status":`...)
		b = strconv.AppendUint(b, uint64(p.Status), 10)
		if name := StatusName(p.Status); name != "" {
			b = append(b, `,"status_name":"`...)
			b = append(b, name...)
			b = append(b, '"')
		}
	}
	b = append(b, `,"ts":`...)
	b = AppendTime(b, p.TS)
	if len(p.Attrs) > 0 {
		b = append(b, `,"attrs":`...)
		b = appendAttrs(b, p.Attrs)
	}
	return append(b, '}')
}

// AppendTime appends a Unix-nanosecond timestamp as a quoted RFC 3339 UTC
// string with the fraction's trailing zeros trimmed, exactly as
// time.RFC3339Nano formats it, writing the digits directly (this is on every
// JSON sink's hot path).
func AppendTime(b []byte, ts int64) []byte {
	t := time.Unix(0, ts).UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		b = append(b, '"')
		b = t.AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	}
	hour, min, sec := t.Clock()
	b = append(b, '"')
	b = append4(b, year)
	b = append(b, '-')
	b = append2(b, int(month))
	b = append(b, '-')
	b = append2(b, day)
	b = append(b, 'T')
	b = append2(b, hour)
	b = append(b, ':')
	b = append2(b, min)
	b = append(b, ':')
	b = append2(b, sec)
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i >= 1; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, 'Z', '"')
}

func append2(b []byte, v int) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }

func append4(b []byte, v int) []byte {
	return append(b, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
}

// AppendValue appends a value as JSON; NaN and infinities become null.
func AppendValue(b []byte, v engine.Value) []byte {
	switch v.Kind() {
	case engine.KindFloat:
		f, _ := v.Float64()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return append(b, "null"...)
		}
		if f == math.Trunc(f) && math.Abs(f) < 1e15 {
			// Keep floats recognisable as floats on the way back in.
			b = strconv.AppendFloat(b, f, 'f', -1, 64)
			return append(b, ".0"...)
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	case engine.KindInt:
		i, _ := v.Int64()
		return strconv.AppendInt(b, i, 10)
	case engine.KindUint:
		u, _ := v.Uint64()
		return strconv.AppendUint(b, u, 10)
	case engine.KindBool:
		x, _ := v.AsBool()
		return strconv.AppendBool(b, x)
	case engine.KindString:
		s, _ := v.Str()
		return AppendString(b, s)
	}
	return append(b, "null"...)
}

func appendAttrs(b []byte, m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, k)
		b = append(b, ':')
		b = AppendString(b, m[k])
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, escaping what JSON requires and
// replacing invalid UTF-8.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendBatch appends points as one JSON array.
func AppendBatch(b []byte, points []engine.Point) []byte {
	b = append(b, '[')
	for i := range points {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendPoint(b, &points[i])
	}
	return append(b, ']')
}

// AppendAssetJSON appends one asset's points in the asset_json shape:
//
//	{"asset":"line1","points":{"temperature":{"value":21.5,"quality":"good","ts":"…"}}}
//
// When a tag appears more than once, the last value wins.
func AppendAssetJSON(b []byte, asset string, points []engine.Point) []byte {
	b = append(b, `{"asset":`...)
	b = AppendString(b, asset)
	b = append(b, `,"points":{`...)
	first := true
	for i := range points {
		p := &points[i]
		if laterSameTag(points[i+1:], p.Tag) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = AppendString(b, p.Tag)
		b = append(b, `:{"value":`...)
		b = AppendValue(b, p.Value)
		b = append(b, `,"quality":"`...)
		b = append(b, p.Quality.String()...)
		b = append(b, `","ts":`...)
		b = AppendTime(b, p.TS)
		b = append(b, '}')
	}
	return append(b, "}}"...)
}

func laterSameTag(rest []engine.Point, tag string) bool {
	for i := range rest {
		if rest[i].Tag == tag {
			return true
		}
	}
	return false
}

// GroupByAsset calls fn once per asset, in asset order, with that asset's
// points. It reorders points in place (stable within an asset).
func GroupByAsset(points []engine.Point, fn func(asset string, pts []engine.Point) error) error {
	sort.SliceStable(points, func(i, j int) bool { return points[i].Asset < points[j].Asset })
	for i := 0; i < len(points); {
		j := i + 1
		for j < len(points) && points[j].Asset == points[i].Asset {
			j++
		}
		if err := fn(points[i].Asset, points[i:j]); err != nil {
			return err
		}
		i = j
	}
	return nil
}
