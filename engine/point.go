// Package engine is flowd's runtime: the point and batch model, the component
// interfaces, the registry, the pipeline graph with its bounded channels, acks,
// buffers, metrics and latency tracking. Components never import each other;
// they meet here.
package engine

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Kind is the type held by a Value.
type Kind uint8

const (
	KindNull Kind = iota
	KindFloat
	KindInt
	KindBool
	KindString
	// KindUint holds unsigned integers above math.MaxInt64 (an OPC UA
	// UInt64, a JSON number up to 18446744073709551615); smaller ones are
	// always KindInt, so each number has one form.
	KindUint
)

func (k Kind) String() string {
	switch k {
	case KindFloat:
		return "float"
	case KindInt:
		return "int"
	case KindBool:
		return "bool"
	case KindString:
		return "string"
	case KindUint:
		return "uint"
	}
	return "null"
}

// Value is a small typed scalar: float, int, uint, bool, string or null. It is a
// plain struct (no interface, no pointer for numbers) so points carry values
// without heap allocations.
type Value struct {
	kind Kind
	bits uint64 // float64 bits, int64, uint64 or bool
	str  string
}

func Null() Value            { return Value{} }
func Float(f float64) Value  { return Value{kind: KindFloat, bits: math.Float64bits(f)} }
func Int(i int64) Value      { return Value{kind: KindInt, bits: uint64(i)} }
func String(s string) Value  { return Value{kind: KindString, str: s} }
func (v Value) Kind() Kind   { return v.kind }
func (v Value) IsNull() bool { return v.kind == KindNull }
func (v Value) IsNumeric() bool {
	return v.kind == KindFloat || v.kind == KindInt || v.kind == KindUint
}

// IsInteger reports whether the value is an int or a uint.
func (v Value) IsInteger() bool { return v.kind == KindInt || v.kind == KindUint }

// Uint makes an unsigned integer value: KindInt up to math.MaxInt64,
// KindUint above, so the whole uint64 range is exact.
func Uint(u uint64) Value {
	if u <= math.MaxInt64 {
		return Int(int64(u))
	}
	return Value{kind: KindUint, bits: u}
}

func Bool(b bool) Value {
	v := Value{kind: KindBool}
	if b {
		v.bits = 1
	}
	return v
}

// Float64 returns the value as a number; ints convert, bools are 0/1.
func (v Value) Float64() (float64, bool) {
	switch v.kind {
	case KindFloat:
		return math.Float64frombits(v.bits), true
	case KindInt:
		return float64(int64(v.bits)), true
	case KindUint:
		return float64(v.bits), true
	case KindBool:
		return float64(v.bits), true
	}
	return 0, false
}

// Int64 returns an int value as is and truncates a float. A uint (above
// math.MaxInt64) gives math.MaxInt64 and false.
func (v Value) Int64() (int64, bool) {
	switch v.kind {
	case KindInt:
		return int64(v.bits), true
	case KindUint:
		return math.MaxInt64, false
	case KindFloat:
		return int64(math.Float64frombits(v.bits)), true
	case KindBool:
		return int64(v.bits), true
	}
	return 0, false
}

// Uint64 returns a uint, or an int that is not negative, exactly.
func (v Value) Uint64() (uint64, bool) {
	switch v.kind {
	case KindUint:
		return v.bits, true
	case KindInt:
		if int64(v.bits) >= 0 {
			return v.bits, true
		}
	}
	return 0, false
}

func (v Value) AsBool() (bool, bool) {
	if v.kind == KindBool {
		return v.bits == 1, true
	}
	return false, false
}

func (v Value) Str() (string, bool) {
	if v.kind == KindString {
		return v.str, true
	}
	return "", false
}

// Equal reports whether two values are the same; ints and floats compare as
// numbers, two integers exactly.
func (v Value) Equal(o Value) bool {
	if v.IsNumeric() && o.IsNumeric() {
		if v.kind == o.kind {
			return v.bits == o.bits
		}
		if v.IsInteger() && o.IsInteger() {
			return false // an int and a uint never hold the same number
		}
		a, _ := v.Float64()
		b, _ := o.Float64()
		return a == b
	}
	return v.kind == o.kind && v.bits == o.bits && v.str == o.str
}

// Any converts to a Go value (for expression environments and tests).
func (v Value) Any() any {
	switch v.kind {
	case KindFloat:
		return math.Float64frombits(v.bits)
	case KindInt:
		return int64(v.bits)
	case KindUint:
		return v.bits
	case KindBool:
		return v.bits == 1
	case KindString:
		return v.str
	}
	return nil
}

// ValueOf converts a Go value; unknown types become their string form.
func ValueOf(x any) Value {
	switch t := x.(type) {
	case nil:
		return Null()
	case Value:
		return t
	case float64:
		return Float(t)
	case float32:
		return Float(float64(t))
	case int:
		return Int(int64(t))
	case int8:
		return Int(int64(t))
	case int16:
		return Int(int64(t))
	case int32:
		return Int(int64(t))
	case int64:
		return Int(t)
	case uint:
		return Uint(uint64(t))
	case uint8:
		return Int(int64(t))
	case uint16:
		return Int(int64(t))
	case uint32:
		return Int(int64(t))
	case uint64:
		return Uint(t)
	case bool:
		return Bool(t)
	case string:
		return String(t)
	case time.Time:
		return String(t.UTC().Format(time.RFC3339Nano))
	case []byte:
		return String(string(t))
	}
	return String(fmt.Sprint(x))
}

// String renders the value for logs and string expressions.
func (v Value) String() string {
	switch v.kind {
	case KindFloat:
		return strconv.FormatFloat(math.Float64frombits(v.bits), 'g', -1, 64)
	case KindInt:
		return strconv.FormatInt(int64(v.bits), 10)
	case KindUint:
		return strconv.FormatUint(v.bits, 10)
	case KindBool:
		return strconv.FormatBool(v.bits == 1)
	case KindString:
		return v.str
	}
	return "null"
}

// Quality is the trust level of a value, as OPC UA defines it.
type Quality uint8

const (
	Good Quality = iota
	Uncertain
	Bad
)

func (q Quality) String() string {
	switch q {
	case Uncertain:
		return "uncertain"
	case Bad:
		return "bad"
	}
	return "good"
}

// ParseQuality accepts good, uncertain and bad in lower case (as emitted),
// title case or upper case, and "" as good; other spellings are refused.
func ParseQuality(s string) (Quality, bool) {
	switch s {
	case "good", "Good", "GOOD", "":
		return Good, true
	case "uncertain", "Uncertain", "UNCERTAIN":
		return Uncertain, true
	case "bad", "Bad", "BAD":
		return Bad, true
	}
	return Good, false
}

// QualityFromStatus maps an OPC UA status code's severity bits to a quality.
func QualityFromStatus(code uint32) Quality {
	switch code >> 30 {
	case 0:
		return Good
	case 1:
		return Uncertain
	}
	return Bad
}

// Point is one timestamped value of one tag.
type Point struct {
	Asset   string
	Tag     string
	Value   Value
	Quality Quality
	// Status keeps the source's status code (OPC UA), 0 when there is none.
	Status uint32
	// TS is the source timestamp in Unix nanoseconds.
	TS int64
	// Ingest is when the point entered flowd, in nanoseconds of the engine's
	// monotonic clock (see Now). Sources leave it zero; the engine stamps it.
	Ingest int64
	// Attrs are optional labels. Treat a map as immutable once emitted: a
	// transform that changes attrs installs a new map, because fan-out shares it.
	Attrs map[string]string
}

// Time returns TS as a time.Time in UTC.
func (p *Point) Time() time.Time { return time.Unix(0, p.TS).UTC() }

var monoEpoch = time.Now()

// Now returns the engine's monotonic clock in nanoseconds, the unit of Point.Ingest.
func Now() int64 { return int64(time.Since(monoEpoch)) }

// WallFromMono converts a monotonic Now() reading into Unix nanoseconds.
func WallFromMono(mono int64) int64 { return monoEpoch.UnixNano() + mono }
