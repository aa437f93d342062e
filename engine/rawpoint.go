package engine

import "time"

// RawBytes is how much of an input that did not decode a source keeps in
// its dead letter: enough to find and read it, not a copy of a runaway
// payload.
const RawBytes = 1024

// RawPoint is the dead letter of an input that did not decode: raw (at most
// its first RawBytes) as a string value of bad quality, stamped now, under
// tag, with attrs saying where it came from. The value is a copy, so raw's
// buffer may be reused.
func RawPoint(tag string, raw []byte, attrs map[string]string) Point {
	if len(raw) > RawBytes {
		raw = raw[:RawBytes]
	}
	return Point{Tag: tag, Value: String(string(raw)), Quality: Bad, TS: time.Now().UnixNano(), Attrs: attrs}
}
