package modbus

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
	simmodbus "github.com/flowd/flowd/sim/modbus"
)

type discardOut struct{ n int }

func (d *discardOut) Emit(_ context.Context, pts []engine.Point, _ func(error)) error {
	d.n += len(pts)
	engine.PutPoints(pts)
	return nil
}

// BenchmarkDecodeBlock decodes one answer of 26 registers holding every
// register type (and a string, unchanged between reads, as in steady state)
// into points: the per-read work after the network. 0 allocs/op is the goal.
func BenchmarkDecodeBlock(b *testing.B) {
	s := mustLoad(b, fmt.Sprintf("device \"d\" {\n endpoint = \"127.0.0.1:1\"\n%s}\n", everyTypeTags()))
	var bl *block
	for _, g := range s.plans[0] {
		for _, x := range g.blocks {
			if x.table == tHolding && x.start == simmodbus.OrderStride { // the CDAB area
				bl = x
			}
		}
	}
	regs := simmodbus.Layout(0, 12345, 1)
	raw := make([]byte, 2*len(regs))
	for i, r := range regs {
		raw[2*i], raw[2*i+1] = byte(r>>8), byte(r)
	}
	pts := make([]engine.Point, 0, len(bl.tags))
	b.ReportAllocs()
	for b.Loop() {
		pts = decodeBlock(pts[:0], bl, raw, 1)
	}
	b.ReportMetric(float64(b.N*len(bl.tags))/b.Elapsed().Seconds(), "points/s")
}

// BenchmarkPlan plans 1,000 tags of one device (done once, when the
// config is loaded).
func BenchmarkPlan(b *testing.B) {
	var sb strings.Builder
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&sb, "tag \"t%d\" {\n address = %d\n type = \"float32\"\n}\n", i, 2*i+i/10)
	}
	s := mustLoad(b, fmt.Sprintf("device \"d\" {\n endpoint = \"127.0.0.1:1\"\n%s}\n", sb.String()))
	d := s.devs[0]
	b.ReportAllocs()
	for b.Loop() {
		plan(d)
	}
	b.ReportMetric(float64(len(d.tags)), "tags/op")
}

// BenchmarkPollGroup is one poll of 100 uint16 registers (one read) from an
// in-process simulated device over loopback TCP, decoded and emitted.
func BenchmarkPollGroup(b *testing.B) {
	sim := startSim(b, simmodbus.Config{Registers: 100, Interval: time.Hour})
	var sb strings.Builder
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&sb, "tag \"r%d\" {\n address = %d\n}\n", i, simmodbus.BulkStart+i)
	}
	s := mustLoad(b, fmt.Sprintf("device \"d\" {\n endpoint = %q\n%s}\n", sim.Devices()[0].Addr(), sb.String()))
	c, err := s.open(s.devs[0])
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	g := s.plans[0][0]
	out := &discardOut{}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.pollGroup(ctx, c, s.devs[0], g, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(out.n)/b.Elapsed().Seconds(), "points/s")
}
