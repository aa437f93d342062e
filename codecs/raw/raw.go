// Package raw is the decode-only codec that takes a whole payload as one
// string value.
package raw

import (
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
)

// Codec is raw.
var Codec = &engine.Codec{
	Name:    "raw",
	Summary: "The whole payload as one string value (decode only).",
	Description: "Each message becomes one point whose value is the payload as a string, with the receive time as ts. " +
		"The tag (and asset) come from the source: its tag or tag_expr setting, or the topic itself on MQTT.",
	Example:     `OK 21.5 degC`,
	ContentType: "text/plain",
	Decode: func(dst []engine.Point, m *engine.Message) ([]engine.Point, error) {
		n := len(dst)
		// Filled in place: a local point passed to the interface would escape.
		dst = append(dst, engine.Point{Value: engine.String(string(m.Payload)), TS: m.Now})
		if m.Fill != nil {
			if err := m.Fill.FillPoint(&dst[n], m.Subject); err != nil {
				return dst[:n], err
			}
		}
		if dst[n].Tag == "" {
			return dst[:n], &engine.DecodeError{Reason: engine.ReasonNoTag, Err: codec.ErrNoTag}
		}
		return dst, nil
	},
}
