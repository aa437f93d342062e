// Package discard is a sink that takes points and throws them away: the
// baseline for benchmarks and a way to measure a pipeline without an output.
package discard

import (
	"context"

	"github.com/flowd/flowd/engine"
)

// Config is empty: discard has no settings.
type Config struct{}

// Spec declares the discard sink.
var Spec = engine.SinkSpec(engine.Info{
	Type:    "discard",
	Summary: "Accepts every point and drops it (benchmarks, dry runs). Latency is still measured.",
	Example: `sink "discard" "null" {
  inputs = [source.plant]
}`,
}, func(*Config, *engine.Env) (engine.Sink, error) { return Sink{}, nil })

// Sink discards.
type Sink struct{}

// Write accepts the points.
func (Sink) Write(context.Context, []engine.Point) error { return nil }
