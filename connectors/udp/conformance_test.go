package udp

import (
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/flowd/flowd/engine/conformance"
)

// The udp source passes the source conformance suite, with what UDP
// cannot do skipped.
func TestConformance(t *testing.T) {
	conformance.RunSource(t, conformance.Source{
		Spec: Spec,
		Setup: func(t *testing.T, _ string) conformance.SourceSetup {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := pc.LocalAddr().String()
			pc.Close()
			return conformance.SourceSetup{
				Config: fmt.Sprintf("listen = %q\nqueue = 1000", addr),
				Produce: func(ctx context.Context, vals []int64) error {
					c, err := net.Dial("udp", addr)
					if err != nil {
						return err
					}
					defer c.Close()
					for _, v := range vals {
						// A refused datagram (no listener yet) is lost, as UDP loses it.
						fmt.Fprintf(c, `{"asset":"a","tag":"t%d","value":%d}`, v, v)
					}
					return nil
				},
			}
		},
		NoReconnect: "the udp source is the server and UDP has no connection to lose",
		NoAck:       "UDP has no acknowledgement: a sender is never told whether its datagram was taken",
		Lossy:       "UDP cannot slow a sender down: datagrams beyond queue are dropped and counted (reason full)",
	})
}
