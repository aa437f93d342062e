package opcua

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/engine/conformance"
	simplc "github.com/flowd/flowd/sim/plc"
)

// The opcua source passes the source conformance suite against the
// simulated PLC, polling and subscribed (it reads current values: the
// server keeps nothing to acknowledge).
func TestConformance(t *testing.T) {
	for _, mode := range []string{"poll", "subscribe"} {
		t.Run(mode, func(t *testing.T) {
			// One PLC serves every check of a mode (it takes a while to start).
			plc := startPLC(t, simplc.Config{Assets: 1, Tags: 4, Interval: 50 * time.Millisecond, Change: 1})
			conformance.RunSource(t, conformance.Source{
				Spec: Spec,
				Setup: func(t *testing.T, addr string) conformance.SourceSetup {
					nodes := ""
					if addr == "" {
						addr = strings.TrimPrefix(plc.Endpoint(), "opc.tcp://")
						nodes = fmt.Sprintf("{ t1 = %q, t2 = %q }", plc.NodeID(0, 0), plc.NodeID(0, 1))
					} else {
						nodes = `{ counter = "ns=2;s=Interop.Counter", double = "ns=2;s=Interop.Double" }`
					}
					return conformance.SourceSetup{Config: fmt.Sprintf(`endpoint = "opc.tcp://%s"
mode = %q
interval = "100ms"
request_timeout = "2s"
reconnect_min = "200ms"
reconnect_max = "1s"
watchdog_timeout = "1s"
nodes = %s`, addr, mode, nodes)}
				},
				NoAck: "a polling source reads current values: the server keeps nothing to acknowledge",
				// gopcua's server (the simulated PLC) answers GetEndpoints
				// only for its own URL, not a proxy's: the reconnect check
				// goes through a proxy to the asyncua interop server.
				Peer: func(t *testing.T) conformance.Peer {
					ep := conformance.Require(t, "FLOWD_TEST_OPCUA_INTEROP")
					return conformance.Peer{Upstream: strings.TrimSuffix(strings.TrimPrefix(ep, "opc.tcp://"), "/")}
				},
			})
		})
	}
}
