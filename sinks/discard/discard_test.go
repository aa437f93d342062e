package discard

import (
	"testing"

	"github.com/flowd/flowd/engine/conformance"
)

// The discard sink passes the sink conformance suite on outcomes and
// counters (there is nothing to read back).
func TestConformance(t *testing.T) {
	conformance.RunSink(t, conformance.Sink{
		Spec:       Spec,
		Setup:      func(*testing.T, string) conformance.SinkSetup { return conformance.SinkSetup{} },
		NoFailure:  "discard has no peer that could fail",
		NoReject:   "discard takes every point",
		NoReadBack: "discard keeps nothing to read back",
	})
}
