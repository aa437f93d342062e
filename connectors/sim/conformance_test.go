package sim

import (
	"testing"

	"github.com/flowd/flowd/engine/conformance"
)

// The sim source passes the source conformance suite as a polling source
// without a peer.
func TestConformance(t *testing.T) {
	conformance.RunSource(t, conformance.Source{
		Spec: Spec,
		Setup: func(t *testing.T, _ string) conformance.SourceSetup {
			return conformance.SourceSetup{Config: "assets = 1\ntags = 4\ninterval = \"50ms\""}
		},
		NoAck:       "a polling source reads current values: its peer keeps nothing to acknowledge",
		NoReconnect: "the sim source makes its values in process: it has no peer to lose",
	})
}
