// Package json is flowd's canonical JSON as three codecs that share one
// point encoding and differ in framing: json (a message per point),
// json_batch (a message per batch, an array) and asset_json (a message per
// asset, a tag map).
package json

import (
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
)

const contentType = "application/json"

// Codec is json: one canonical point object per message.
var Codec = &engine.Codec{
	Name:    "json",
	Summary: "A canonical JSON point object per message.",
	Description: "Encodes one point per message: asset (when set), tag, value, quality, status and status_name " +
		"(when the OPC UA status code is not 0), ts (RFC 3339 UTC) and attrs (when set). NaN and infinities are " +
		"written as null. Decodes a point object, an array of them, a tag map " +
		"{\"Temp\": {\"Value\": 1, \"SourceTimestamp\": \"…\", \"StatusCode\": 0}} or {\"Temp\": 21.5}, or a bare " +
		"scalar; asset and tag missing from the payload come from the source's asset/tag settings. A ts is RFC 3339 " +
		"or Unix milliseconds; a point without one gets the receive time. A status without a quality sets the quality.",
	Example:     `{"asset":"line1","tag":"temperature","value":21.5,"quality":"good","ts":"2026-11-22T10:00:00.123Z"}`,
	ContentType: contentType,
	Framing:     engine.FramePoint,
	Encode: func(b []byte, pts []engine.Point) []byte {
		return codec.AppendPoint(b, &pts[0])
	},
	Decode: Decode,
}

// BatchCodec is json_batch: a JSON array of canonical points per message.
var BatchCodec = &engine.Codec{
	Name:    "json_batch",
	Summary: "A JSON array of canonical points per message: one per batch, split to stay under the sink's byte limit.",
	Description: "Encodes a batch (per topic or key where the sink routes) as one array of json point objects. " +
		"A sink with a byte limit (max_message_bytes) halves an array that does not fit until every part does; a " +
		"single point over the limit is rejected (reason too_large). Decodes as json does.",
	Example:     `[{"asset":"line1","tag":"temperature","value":21.5,"quality":"good","ts":"2026-11-22T10:00:00.123Z"},{"asset":"line1","tag":"running","value":true,"quality":"good","ts":"2026-11-22T10:00:00.123Z"}]`,
	ContentType: contentType,
	Framing:     engine.FrameBatch,
	Encode:      codec.AppendBatch,
	Decode:      Decode,
}

// AssetCodec is asset_json: one message per asset with its points by tag.
var AssetCodec = &engine.Codec{
	Name:    "asset_json",
	Summary: "A message per asset per batch: its points as a map from tag to value, quality and ts.",
	Description: "Encodes the points of one asset in a batch as {\"asset\": …, \"points\": {tag: {value, quality, ts}}}; " +
		"when a tag appears more than once in the batch the last value wins. status and attrs are not carried. " +
		"A message over the sink's byte limit is rejected (reason too_large). Decodes the same shape into one point " +
		"per tag, in tag order.",
	Example:     `{"asset":"line1","points":{"running":{"value":true,"quality":"good","ts":"2026-11-22T10:00:00.123Z"},"temperature":{"value":21.5,"quality":"good","ts":"2026-11-22T10:00:00.123Z"}}}`,
	ContentType: contentType,
	Framing:     engine.FrameAsset,
	Encode: func(b []byte, pts []engine.Point) []byte {
		return codec.AppendAssetJSON(b, pts[0].Asset, pts)
	},
	Decode: DecodeAsset,
}
