package sparkplug

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/flowd/flowd/common/sparkplug/sproto"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
)

// errSkip marks a metric of a complex type (DataSet, Template, PropertySet)
// that has no point form: its birth is recorded, its values are counted as
// skipped.
var errSkip = fmt.Errorf("complex datatype")

// Value field numbers of a Metric (the oneof value).
const (
	fInt     = 10
	fLong    = 11
	fFloat   = 12
	fDouble  = 13
	fBool    = 14
	fString  = 15
	fBytes   = 16
	fDataSet = 17
	fTmpl    = 18
	fExt     = 19
)

// rawValue is a metric's value as it is on the wire: which oneof field, its
// number bits (int, long, bool, float or double bits) or its bytes.
type rawValue struct {
	field int
	u     uint64
	b     []byte
}

func rawOf(m *sproto.Payload_Metric) rawValue {
	switch v := m.Value.(type) {
	case *sproto.Payload_Metric_IntValue:
		return rawValue{field: fInt, u: uint64(v.IntValue)}
	case *sproto.Payload_Metric_LongValue:
		return rawValue{field: fLong, u: v.LongValue}
	case *sproto.Payload_Metric_FloatValue:
		return rawValue{field: fFloat, u: uint64(math.Float32bits(v.FloatValue))}
	case *sproto.Payload_Metric_DoubleValue:
		return rawValue{field: fDouble, u: math.Float64bits(v.DoubleValue)}
	case *sproto.Payload_Metric_BooleanValue:
		if v.BooleanValue {
			return rawValue{field: fBool, u: 1}
		}
		return rawValue{field: fBool}
	case *sproto.Payload_Metric_StringValue:
		return rawValue{field: fString, b: []byte(v.StringValue)}
	case *sproto.Payload_Metric_BytesValue:
		return rawValue{field: fBytes, b: v.BytesValue}
	case *sproto.Payload_Metric_DatasetValue:
		return rawValue{field: fDataSet}
	case *sproto.Payload_Metric_TemplateValue:
		return rawValue{field: fTmpl}
	case *sproto.Payload_Metric_ExtensionValue:
		return rawValue{field: fExt}
	}
	return rawValue{}
}

var fieldNames = map[int]string{fInt: "int_value", fLong: "long_value", fFloat: "float_value", fDouble: "double_value",
	fBool: "boolean_value", fString: "string_value", fBytes: "bytes_value"}

// Value converts a metric's value to a point value by its datatype:
// integers of every width exactly (UInt64 above 2^63-1 as an unsigned
// value), Float and Double as floats, Boolean, String/Text/UUID as strings,
// DateTime as an RFC 3339 UTC string with milliseconds, Bytes and File as
// base64, arrays as a JSON array in a string, is_null as null.
func Value(m *sproto.Payload_Metric, dt sproto.DataType) (engine.Value, error) {
	return valueOf(rawOf(m), m.GetIsNull(), dt)
}

func valueOf(r rawValue, isNull bool, dt sproto.DataType) (engine.Value, error) {
	if isNull {
		return engine.Null(), nil
	}
	switch dt {
	case sproto.DataType_DataSet, sproto.DataType_Template, sproto.DataType_PropertySet, sproto.DataType_PropertySetList:
		return engine.Value{}, errSkip
	}
	switch r.field {
	case fInt:
		switch dt {
		case sproto.DataType_Int8:
			return engine.Int(int64(int8(r.u))), nil
		case sproto.DataType_Int16:
			return engine.Int(int64(int16(r.u))), nil
		case sproto.DataType_Int32:
			return engine.Int(int64(int32(r.u))), nil
		case sproto.DataType_UInt8, sproto.DataType_UInt16, sproto.DataType_UInt32:
			return engine.Int(int64(uint32(r.u))), nil
		}
	case fLong:
		switch dt {
		case sproto.DataType_Int64:
			return engine.Int(int64(r.u)), nil
		case sproto.DataType_UInt64, sproto.DataType_UInt32:
			return engine.Uint(r.u), nil
		case sproto.DataType_DateTime:
			return engine.String(dateTime(int64(r.u))), nil
		}
	case fFloat:
		if dt == sproto.DataType_Float {
			return engine.Float(float64(math.Float32frombits(uint32(r.u)))), nil
		}
	case fDouble:
		if dt == sproto.DataType_Double {
			return engine.Float(math.Float64frombits(r.u)), nil
		}
	case fBool:
		if dt == sproto.DataType_Boolean {
			return engine.Bool(r.u != 0), nil
		}
	case fString:
		switch dt {
		case sproto.DataType_String, sproto.DataType_Text, sproto.DataType_UUID:
			return engine.String(string(r.b)), nil
		}
	case fBytes:
		switch dt {
		case sproto.DataType_Bytes, sproto.DataType_File:
			return engine.String(base64.StdEncoding.EncodeToString(r.b)), nil
		}
		if dt >= sproto.DataType_Int8Array && dt <= sproto.DataType_DateTimeArray {
			s, err := arrayJSON(r.b, dt)
			if err != nil {
				return engine.Value{}, err
			}
			return engine.String(s), nil
		}
	case fDataSet, fTmpl, fExt:
		return engine.Value{}, errSkip
	case 0:
		return engine.Value{}, errNoValue
	}
	return engine.Value{}, fmt.Errorf("value field %s does not match datatype %s", fieldNames[r.field], dt)
}

func dateTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

var elemSize = map[sproto.DataType]int{
	sproto.DataType_Int8Array: 1, sproto.DataType_UInt8Array: 1,
	sproto.DataType_Int16Array: 2, sproto.DataType_UInt16Array: 2,
	sproto.DataType_Int32Array: 4, sproto.DataType_UInt32Array: 4, sproto.DataType_FloatArray: 4,
	sproto.DataType_Int64Array: 8, sproto.DataType_UInt64Array: 8, sproto.DataType_DoubleArray: 8, sproto.DataType_DateTimeArray: 8,
}

// arrayJSON renders a packed array (little-endian elements; BooleanArray: a
// 4-byte element count, then the bits packed most significant first;
// StringArray: NUL-terminated strings) as a JSON array.
func arrayJSON(b []byte, dt sproto.DataType) (string, error) {
	size := elemSize[dt]
	out := make([]byte, 0, 2+len(b)*4)
	out = append(out, '[')
	switch dt {
	case sproto.DataType_BooleanArray:
		if len(b) < 4 {
			return "", fmt.Errorf("%s: %d bytes, shorter than its 4-byte count", dt, len(b))
		}
		n := binary.LittleEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4)*8 {
			return "", fmt.Errorf("%s: count %d needs more than the %d bytes given", dt, n, len(b)-4)
		}
		for i := range n {
			if i > 0 {
				out = append(out, ',')
			}
			out = strconv.AppendBool(out, b[4+i/8]&(0x80>>(i%8)) != 0)
		}
	case sproto.DataType_StringArray:
		first := true
		for len(b) > 0 {
			end := 0
			for end < len(b) && b[end] != 0 {
				end++
			}
			if end == len(b) {
				return "", fmt.Errorf("%s: last string is not NUL-terminated", dt)
			}
			if !first {
				out = append(out, ',')
			}
			first = false
			out = codec.AppendString(out, string(b[:end]))
			b = b[end+1:]
		}
	default:
		if size == 0 || len(b)%size != 0 {
			return "", fmt.Errorf("%s: %d bytes is not a whole number of %d-byte elements", dt, len(b), size)
		}
		for i := 0; i < len(b); i += size {
			if i > 0 {
				out = append(out, ',')
			}
			e := b[i : i+size]
			switch dt {
			case sproto.DataType_Int8Array:
				out = strconv.AppendInt(out, int64(int8(e[0])), 10)
			case sproto.DataType_UInt8Array:
				out = strconv.AppendUint(out, uint64(e[0]), 10)
			case sproto.DataType_Int16Array:
				out = strconv.AppendInt(out, int64(int16(binary.LittleEndian.Uint16(e))), 10)
			case sproto.DataType_UInt16Array:
				out = strconv.AppendUint(out, uint64(binary.LittleEndian.Uint16(e)), 10)
			case sproto.DataType_Int32Array:
				out = strconv.AppendInt(out, int64(int32(binary.LittleEndian.Uint32(e))), 10)
			case sproto.DataType_UInt32Array:
				out = strconv.AppendUint(out, uint64(binary.LittleEndian.Uint32(e)), 10)
			case sproto.DataType_Int64Array:
				out = strconv.AppendInt(out, int64(binary.LittleEndian.Uint64(e)), 10)
			case sproto.DataType_UInt64Array:
				out = strconv.AppendUint(out, binary.LittleEndian.Uint64(e), 10)
			case sproto.DataType_FloatArray:
				out = codec.AppendValue(out, engine.Float(float64(math.Float32frombits(binary.LittleEndian.Uint32(e)))))
			case sproto.DataType_DoubleArray:
				out = codec.AppendValue(out, engine.Float(math.Float64frombits(binary.LittleEndian.Uint64(e))))
			case sproto.DataType_DateTimeArray:
				out = codec.AppendString(out, dateTime(int64(binary.LittleEndian.Uint64(e))))
			}
		}
	}
	return string(append(out, ']')), nil
}

// DataTypeOf is the datatype an edge node declares for a point value: Double,
// Int64, UInt64, Boolean or String (null keeps the declared one).
func DataTypeOf(v engine.Value) sproto.DataType {
	switch v.Kind() {
	case engine.KindFloat:
		return sproto.DataType_Double
	case engine.KindInt:
		return sproto.DataType_Int64
	case engine.KindUint:
		return sproto.DataType_UInt64
	case engine.KindBool:
		return sproto.DataType_Boolean
	}
	return sproto.DataType_String
}

// SetValue stores a point value in a metric declared with datatype dt (see
// DataTypeOf); a null value sets is_null.
func SetValue(m *sproto.Payload_Metric, v engine.Value, dt sproto.DataType) {
	m.Value = nil
	m.IsNull = nil
	if v.IsNull() {
		t := true
		m.IsNull = &t
		return
	}
	switch dt {
	case sproto.DataType_Double:
		f, _ := v.Float64()
		m.Value = &sproto.Payload_Metric_DoubleValue{DoubleValue: f}
	case sproto.DataType_Int64:
		i, _ := v.Int64()
		m.Value = &sproto.Payload_Metric_LongValue{LongValue: uint64(i)}
	case sproto.DataType_UInt64:
		u, _ := v.Uint64()
		m.Value = &sproto.Payload_Metric_LongValue{LongValue: u}
	case sproto.DataType_Boolean:
		b, _ := v.AsBool()
		m.Value = &sproto.Payload_Metric_BooleanValue{BooleanValue: b}
	default:
		m.Value = &sproto.Payload_Metric_StringValue{StringValue: v.String()}
	}
}
