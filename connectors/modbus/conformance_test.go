package modbus

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/engine/conformance"
	simmodbus "github.com/flowd/flowd/sim/modbus"
)

// The modbus source passes the source conformance suite against the Modbus
// TCP simulator (a polling source: it reads current registers).
func TestConformance(t *testing.T) {
	device := func(t *testing.T) string {
		return strings.TrimPrefix(startSim(t, simmodbus.Config{Interval: 50 * time.Millisecond}).Devices()[0].Addr(), "tcp://")
	}
	conformance.RunSource(t, conformance.Source{
		Spec: Spec,
		Setup: func(t *testing.T, addr string) conformance.SourceSetup {
			if addr == "" {
				addr = device(t)
			}
			return conformance.SourceSetup{Config: fmt.Sprintf(`interval = "100ms"
timeout = "1s"
reconnect_min = "200ms"
reconnect_max = "1s"
device "d" {
  endpoint = %q
  tag "t" {
    address = 1000
  }
}`, addr)}
		},
		NoAck: "a polling source reads current values: its peer keeps nothing to acknowledge",
		Peer:  func(t *testing.T) conformance.Peer { return conformance.Peer{Upstream: device(t)} },
	})
}
