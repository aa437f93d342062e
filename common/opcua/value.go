package opcua

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/gopcua/opcua/ua"
)

// Status codes flowd sets itself.
var (
	// StatusBadNotConnected marks tags while their server is unreachable.
	StatusBadNotConnected = uint32(ua.StatusBadNotConnected)
	// StatusBadNoValue marks a data value that carried no value.
	StatusBadNoValue = uint32(ua.StatusBadNoData)
)

// OverflowBit is the InfoBits flag a server sets on a value when its
// monitored item queue overflowed and older values were discarded.
const OverflowBit = 0x80

// DataValueOverflow reports whether a status signals a queue overflow.
func DataValueOverflow(code ua.StatusCode) bool {
	c := uint32(code)
	return c&0x0C00 == 0x0400 && c&OverflowBit != 0
}

// Scalar converts a scalar variant value to a point value. UInt64 is exact
// over its whole range (engine.Uint); DateTime becomes an RFC 3339 string; a
// ByteString its standard base64 (RFC 4648, padded), so any bytes survive;
// GUIDs, node ids and localized text their string form. ok is false for
// arrays and values it cannot map.
func Scalar(x any) (engine.Value, bool) {
	switch t := x.(type) {
	case nil:
		return engine.Null(), true
	case float64:
		return engine.Float(t), true
	case float32:
		// shortest decimal of the float32, so 24.47 stays 24.47 and not 24.469999313354492
		var b [32]byte
		f, err := strconv.ParseFloat(string(strconv.AppendFloat(b[:0], float64(t), 'g', -1, 32)), 64)
		if err != nil {
			f = float64(t)
		}
		return engine.Float(f), true
	case int32:
		return engine.Int(int64(t)), true
	case int64:
		return engine.Int(t), true
	case int16:
		return engine.Int(int64(t)), true
	case int8:
		return engine.Int(int64(t)), true
	case uint8:
		return engine.Int(int64(t)), true
	case uint16:
		return engine.Int(int64(t)), true
	case uint32:
		return engine.Int(int64(t)), true
	case uint64:
		return engine.Uint(t), true
	case bool:
		return engine.Bool(t), true
	case string:
		return engine.String(t), true
	case time.Time:
		return engine.String(t.UTC().Format(time.RFC3339Nano)), true
	case []byte:
		// Raw bytes are no valid string (JSON would replace them); base64
		// keeps every byte.
		return engine.String(base64.StdEncoding.EncodeToString(t)), true
	case *ua.LocalizedText:
		if t == nil {
			return engine.Null(), true
		}
		return engine.String(t.Text), true
	case *ua.QualifiedName:
		if t == nil {
			return engine.Null(), true
		}
		return engine.String(t.Name), true
	case *ua.GUID:
		return engine.String(t.String()), true
	case *ua.NodeID:
		return engine.String(t.String()), true
	case ua.StatusCode:
		return engine.Int(int64(t)), true
	}
	return engine.Null(), false
}

// Array returns the elements of an array value, or ok=false for a scalar.
func Array(x any) ([]engine.Value, bool) {
	if x == nil {
		return nil, false
	}
	if _, isBytes := x.([]byte); isBytes {
		return nil, false
	}
	rv := reflect.ValueOf(x)
	if rv.Kind() != reflect.Slice {
		return nil, false
	}
	out := make([]engine.Value, rv.Len())
	for i := range out {
		v, ok := Scalar(rv.Index(i).Interface())
		if !ok {
			v = engine.String(fmt.Sprint(rv.Index(i).Interface()))
		}
		out[i] = v
	}
	return out, true
}

// ArrayJSON renders array elements as a JSON array string.
func ArrayJSON(vals []engine.Value) engine.Value {
	xs := make([]any, len(vals))
	for i, v := range vals {
		xs[i] = v.Any()
	}
	b, err := json.Marshal(xs)
	if err != nil {
		return engine.String(fmt.Sprint(xs))
	}
	return engine.String(string(b))
}

// Timestamp picks a data value's time: the source timestamp, else the server
// timestamp, else now (when sourceOnly is false the order is server, now).
func Timestamp(dv *ua.DataValue, pref string, now time.Time) int64 {
	switch pref {
	case "server":
		if !dv.ServerTimestamp.IsZero() {
			return dv.ServerTimestamp.UnixNano()
		}
	case "receive":
		return now.UnixNano()
	}
	if !dv.SourceTimestamp.IsZero() {
		return dv.SourceTimestamp.UnixNano()
	}
	if !dv.ServerTimestamp.IsZero() {
		return dv.ServerTimestamp.UnixNano()
	}
	return now.UnixNano()
}
