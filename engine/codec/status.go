package codec

import (
	"strings"

	"github.com/gopcua/opcua/ua"
)

// StatusName is the OPC UA name of a status code (BadNotConnected), from
// gopcua's table of the specification's codes, or "" for an unknown code.
// The info bits (limit, overflow, …) in the low 16 bits do not change the
// name. gopcua spells the names with a "Status" prefix (StatusBadNotConnected);
// the specification's name is without it.
func StatusName(code uint32) string {
	d, ok := ua.StatusCodes[ua.StatusCode(code)]
	if !ok {
		d, ok = ua.StatusCodes[ua.StatusCode(code&0xFFFF0000)]
	}
	if !ok {
		return ""
	}
	if n := strings.TrimPrefix(d.Name, "Status"); n != "" {
		return n
	}
	return d.Name
}
