// Package codecs lists the payload formats of a flowd build. Adding a codec
// means writing its package and adding it here; nothing registers itself.
package codecs

import (
	jsoncodec "github.com/flowd/flowd/codecs/json"
	"github.com/flowd/flowd/codecs/raw"
	"github.com/flowd/flowd/engine"
)

// All is every codec, registered once per call (engine.Env.Codecs).
func All() *engine.Codecs {
	return engine.NewCodecs(
		jsoncodec.Codec,
		jsoncodec.BatchCodec,
		jsoncodec.AssetCodec,
		raw.Codec,
	)
}
