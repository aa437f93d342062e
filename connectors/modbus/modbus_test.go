package modbus

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/config"
	simmodbus "github.com/flowd/flowd/sim/modbus"
)

type nopSink struct{}

func (nopSink) Write(context.Context, []engine.Point) error { return nil }

var nopSpec = engine.SinkSpec(engine.Info{Type: "nop", Summary: "test"}, func(*struct{}, *engine.Env) (engine.Sink, error) { return nopSink{}, nil })

// load decodes a pipeline holding one modbus source and builds it.
func load(t testing.TB, body string) (*Source, hcl.Diagnostics) {
	t.Helper()
	src := "pipeline \"p\" {\n  source \"modbus\" \"m\" {\n" + body + "\n  }\n  sink \"nop\" \"out\" {\n    inputs = [source.m]\n  }\n}\n"
	l := config.NewLoader(config.Options{Registry: engine.NewRegistry(Spec, nopSpec), LookupEnv: func(string) (string, bool) { return "", false }})
	cfg, diags := l.LoadSource("p.hcl", []byte(src))
	if diags.HasErrors() {
		return nil, diags
	}
	for _, n := range cfg.Pipelines[0].Nodes {
		if s, ok := n.Component.(*Source); ok {
			return s, nil
		}
	}
	t.Fatal("no modbus source built")
	return nil, nil
}

func mustLoad(t testing.TB, body string) *Source {
	t.Helper()
	s, diags := load(t, body)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	return s
}

// collect is an Output that keeps every point.
type collect struct {
	mu  sync.Mutex
	pts []engine.Point
}

func (c *collect) Emit(_ context.Context, pts []engine.Point, done func(error)) error {
	c.mu.Lock()
	c.pts = append(c.pts, pts...)
	c.mu.Unlock()
	engine.PutPoints(pts)
	if done != nil {
		done(nil)
	}
	return nil
}

func (c *collect) snapshot() []engine.Point {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]engine.Point(nil), c.pts...)
}

type output interface {
	engine.Output
	snapshot() []engine.Point
}

// run runs s until cond holds on the points so far, or fails after max.
func run(t *testing.T, s *Source, out output, max time.Duration, cond func([]engine.Point) bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	deadline := time.Now().Add(max)
	for !cond(out.snapshot()) {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s; %d points", max, len(out.snapshot()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startSim(t testing.TB, cfg simmodbus.Config) *simmodbus.Sim {
	t.Helper()
	sim, err := simmodbus.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

var orderNames = []struct{ name, byteO, wordO string }{
	{"abcd", "big", "big"}, {"cdab", "big", "little"}, {"badc", "little", "big"}, {"dcba", "little", "little"},
}

// everyTypeTags declares every type in every order, in holding and input
// registers, plus bits of a register, coils and discrete inputs.
func everyTypeTags() string {
	var b strings.Builder
	for _, tbl := range []string{"holding", "input"} {
		for o, on := range orderNames {
			base := o * simmodbus.OrderStride
			for _, ty := range []struct {
				name string
				off  int
			}{{"uint16", simmodbus.OffUint16}, {"int16", simmodbus.OffInt16}, {"uint32", simmodbus.OffUint32}, {"int32", simmodbus.OffInt32},
				{"uint64", simmodbus.OffUint64}, {"int64", simmodbus.OffInt64}, {"float32", simmodbus.OffFloat32}, {"float64", simmodbus.OffFloat64}} {
				fmt.Fprintf(&b, "tag %q {\n table = %q\n address = %d\n type = %q\n byte_order = %q\n word_order = %q\n}\n",
					tbl+"_"+on.name+"_"+ty.name, tbl, base+ty.off, ty.name, on.byteO, on.wordO)
			}
			fmt.Fprintf(&b, "tag %q {\n table = %q\n address = %d\n type = \"string\"\n length = %d\n byte_order = %q\n}\n",
				tbl+"_"+on.name+"_string", tbl, base+simmodbus.OffString, simmodbus.StringLen, on.byteO)
			fmt.Fprintf(&b, "tag %q {\n table = %q\n address = %d\n type = \"bool\"\n bit = 0\n byte_order = %q\n}\n",
				tbl+"_"+on.name+"_bit0", tbl, base+simmodbus.OffUint16, on.byteO)
		}
	}
	for i := 0; i < 4; i++ {
		fmt.Fprintf(&b, "tag \"coil%d\" {\n table = \"coil\"\n address = %d\n}\n", i, i)
		fmt.Fprintf(&b, "tag \"di%d\" {\n table = \"discrete\"\n address = %d\n}\n", i, i)
	}
	return b.String()
}

// expected computes a tag's value at tick k of device d from the simulator's
// logical values.
func expected(name string, d int, k uint64) engine.Value {
	v := simmodbus.ValuesAt(d, k)
	parts := strings.Split(name, "_")
	switch parts[len(parts)-1] {
	case "uint16":
		return engine.Int(int64(v.U16))
	case "int16":
		return engine.Int(int64(v.I16))
	case "uint32":
		return engine.Int(int64(v.U32))
	case "int32":
		return engine.Int(int64(v.I32))
	case "uint64":
		return engine.Int(int64(v.U64))
	case "int64":
		return engine.Int(v.I64)
	case "float32":
		return engine.Float(float64(v.F32))
	case "float64":
		return engine.Float(v.F64)
	case "string":
		return engine.String(v.Str)
	case "bit0":
		return engine.Bool(v.U16&1 == 1)
	}
	return engine.Null()
}

// TestEveryTypeAndOrder reads every data type in every byte and word order
// from the simulator and checks each value against the simulator's logical
// values at the tick the read was served (taken from the uint16 of the same
// read).
func TestEveryTypeAndOrder(t *testing.T) {
	sim := startSim(t, simmodbus.Config{Devices: 2, Interval: 30 * time.Millisecond})
	dev := sim.Devices()[1]
	s := mustLoad(t, fmt.Sprintf("interval = \"40ms\"\ndevice \"plc\" {\n endpoint = %q\n%s}\n", dev.Addr(), everyTypeTags()))
	out := &collect{}
	run(t, s, out, 10*time.Second, func(p []engine.Point) bool { return len(p) >= 3*(2*4*10+8) })
	pts := out.snapshot()
	checked := 0
	for i := 0; i < len(pts); {
		// one batch per poll; within it, each read's tags share a tick
		ts := pts[i].TS
		j := i
		tick := map[string]uint64{} // table_order → tick
		for j < len(pts) && pts[j].TS == ts {
			if strings.HasSuffix(pts[j].Tag, "_uint16") {
				u, _ := pts[j].Value.Int64()
				tick[strings.TrimSuffix(pts[j].Tag, "_uint16")] = uint64(u)
			}
			j++
		}
		for _, p := range pts[i:j] {
			if p.Quality != engine.Good {
				t.Fatalf("%s: quality %s status %d", p.Tag, p.Quality, p.Status)
			}
			if strings.HasPrefix(p.Tag, "coil") || strings.HasPrefix(p.Tag, "di") {
				continue
			}
			parts := strings.Split(p.Tag, "_")
			k, ok := tick[parts[0]+"_"+parts[1]]
			if !ok {
				continue // read at another instant than its uint16
			}
			want := expected(p.Tag, 1, k)
			if !p.Value.Equal(want) || p.Value.Kind() != want.Kind() {
				t.Errorf("%s at tick %d: got %v (%s), want %v (%s)", p.Tag, k, p.Value, p.Value.Kind(), want, want.Kind())
			}
			checked++
		}
		i = j
	}
	if checked < 2*4*9*2 {
		t.Fatalf("checked only %d values", checked)
	}
	// bits: coil i is (k+i)%3==0, discrete input i is (k+i+1)%2==0 for device 1;
	// consecutive coils are never both set
	for _, p := range pts {
		if p.Tag == "coil0" || p.Tag == "coil1" {
			if p.Value.Kind() != engine.KindBool {
				t.Fatalf("%s: %v is not a bool", p.Tag, p.Value)
			}
		}
	}
}

// TestPlanAndRequestCount checks the block-read plan (merging across small
// gaps, splitting at max_registers and at tables) and that a poll sends
// exactly the planned requests.
func TestPlanAndRequestCount(t *testing.T) {
	sim := startSim(t, simmodbus.Config{Registers: 400, Interval: time.Hour})
	dev := sim.Devices()[0]
	var b strings.Builder
	// 300 registers with a tag every 3rd: max 125 per read → 3 reads
	for a := 0; a < 300; a += 3 {
		fmt.Fprintf(&b, "tag \"r%d\" {\n address = %d\n}\n", a, simmodbus.BulkStart+a)
	}
	// two input tags 10 apart (joined), and one 40 further (split: gap 16)
	fmt.Fprintf(&b, "tag \"i0\" {\n table = \"input\"\n address = %d\n}\n", simmodbus.BulkStart)
	fmt.Fprintf(&b, "tag \"i1\" {\n table = \"input\"\n address = %d\n}\n", simmodbus.BulkStart+10)
	fmt.Fprintf(&b, "tag \"i2\" {\n table = \"input\"\n address = %d\n}\n", simmodbus.BulkStart+51)
	// a faster group of its own
	fmt.Fprintf(&b, "tag \"fast\" {\n address = %d\n interval = \"25ms\"\n}\n", simmodbus.BulkStart+399)
	s := mustLoad(t, fmt.Sprintf("interval = \"100ms\"\ndevice \"d\" {\n endpoint = %q\n%s}\n", dev.Addr(), b.String()))
	plan := s.Plan()
	for _, want := range []string{"every 25ms: 1 tags in 1 reads", "every 100ms: 103 tags in 5 reads", "read holding   1000 +124", "read input     1000 +11", "read input     1051 +1 "} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q:\n%s", want, plan)
		}
	}
	out := &collect{}
	run(t, s, out, 10*time.Second, func(p []engine.Point) bool { return len(p) >= 103*4 })
	pts := out.snapshot()
	slow, fast := 0, 0
	for _, p := range pts {
		if p.Tag == "fast" {
			fast++
		} else {
			slow++
		}
	}
	// every request answered is one of the planned reads of a poll
	wantReq := slow/103*5 + fast
	if got := int(dev.Requests()); got < wantReq || got > wantReq+6 {
		t.Fatalf("device answered %d requests; the plan says %d for %d slow and %d fast polls", got, wantReq, slow/103, fast)
	}
	if fast <= slow/103 {
		t.Fatalf("fast group polled %d times, slow %d: intervals not kept apart", fast, slow/103)
	}
}

// TestExceptionMarksBlockBad checks that an exception answer turns the
// tags of that read bad with the exception code, and leaves other reads good.
func TestExceptionMarksBlockBad(t *testing.T) {
	sim := startSim(t, simmodbus.Config{Interval: time.Hour})
	dev := sim.Devices()[0]
	dev.FailAt(1000, 6) // busy
	s := mustLoad(t, fmt.Sprintf(`interval = "30ms"
device "d" {
  endpoint = %q
  tag "busy" {
    address = 1000
  }
  tag "fine" {
    address = 0
  }
  tag "nowhere" {
    address = 60000
  }
}`, dev.Addr()))
	out := &collect{}
	run(t, s, out, 5*time.Second, func(p []engine.Point) bool { return len(p) >= 9 })
	for _, p := range out.snapshot() {
		var q engine.Quality
		var st uint32
		switch p.Tag {
		case "busy":
			q, st = engine.Bad, 6
		case "nowhere":
			q, st = engine.Bad, 2
		default:
			q = engine.Good
		}
		if p.Quality != q || p.Status != st {
			t.Fatalf("%s: quality %s status %d, want %s %d", p.Tag, p.Quality, p.Status, q, st)
		}
	}
	if n := testutil.ToFloat64(s.m.exceptions); n < 2 {
		t.Fatalf("exceptions counted: %v", n)
	}
}

// TestDeviceDownAndBack checks that a device switched off turns its tags
// bad once (status 10) and that reading resumes when it is back, without
// restarting the source.
func TestDeviceDownAndBack(t *testing.T) {
	sim := startSim(t, simmodbus.Config{Interval: time.Hour})
	dev := sim.Devices()[0]
	s := mustLoad(t, fmt.Sprintf(`interval = "20ms"
reconnect_min = "20ms"
reconnect_max = "100ms"
device "d" {
  endpoint = %q
  tag "x" {
    address = 0
  }
}`, dev.Addr()))
	out := &collect{}
	phase := 0
	run(t, s, out, 10*time.Second, func(pts []engine.Point) bool {
		switch phase {
		case 0:
			if len(pts) > 2 {
				dev.Stop()
				phase = 1
			}
		case 1:
			if p := pts[len(pts)-1]; p.Quality == engine.Bad {
				if p.Status != StatusPathUnavailable && p.Status != StatusNoResponse {
					t.Fatalf("bad point with status %d", p.Status)
				}
				if err := dev.Restart(); err != nil {
					t.Fatal(err)
				}
				phase = 2
			}
		case 2:
			return pts[len(pts)-1].Quality == engine.Good
		}
		return false
	})
	bad := 0
	for _, p := range out.snapshot() {
		if p.Quality == engine.Bad {
			bad++
		}
	}
	if bad != 1 {
		t.Fatalf("%d bad points; want exactly one while the device was away", bad)
	}
}

// TestConfigErrorsHavePositions checks that config faults deep in device
// and tag blocks are blamed on the attribute, with line and column.
func TestConfigErrorsHavePositions(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"overlap", `device "d" {
      endpoint = "127.0.0.1:502"
      tag "a" {
        address = 10
        type    = "float32"
      }
      tag "b" {
        address = 11
        type    = "int16"
      }
    }`, "10:19 overlaps tag \"a\""},
		{"string without length", `device "d" {
      endpoint = "127.0.0.1:502"
      tag "s" {
        address = 10
        type    = "string"
      }
    }`, "7:19 a string needs length"},
		{"address out of range", `device "d" {
      endpoint = "127.0.0.1:502"
      tag "a" {
        address = 65535
        type    = "uint32"
      }
    }`, "6:19 runs past address 65535"},
		{"negative address", `device "d" {
      endpoint = "127.0.0.1:502"
      tag "a" {
        address = -1
      }
    }`, "6:19 outside 0–65535"},
		{"bit on a coil", `device "d" {
      endpoint = "127.0.0.1:502"
      tag "a" {
        table   = "coil"
        address = 1
        bit     = 2
      }
    }`, "8:19 a coil is a bit already"},
		{"max registers", `max_registers = 126
    device "d" {
      endpoint = "127.0.0.1:502"
      tag "a" {
        address = 1
      }
    }`, "3:21 the protocol's limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, diags := load(t, "    "+c.body)
			if !diags.HasErrors() {
				t.Fatal("no error")
			}
			d := diags[0]
			got := fmt.Sprintf("%d:%d %s", d.Subject.Start.Line, d.Subject.Start.Column, d.Detail)
			pos, text, _ := strings.Cut(c.want, " ")
			if !strings.HasPrefix(got, pos+" ") || !strings.Contains(got, text) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

// TestShardByDevice runs two replicas of one source against the same
// devices: each device is polled by exactly one of them.
func TestShardByDevice(t *testing.T) {
	sim := startSim(t, simmodbus.Config{Devices: 6, Interval: time.Hour})
	var b strings.Builder
	for i, d := range sim.Devices() {
		fmt.Fprintf(&b, "device \"m%d\" {\n endpoint = %q\n tag \"x\" {\n  address = 0\n }\n}\n", i, d.Addr())
	}
	base := mustLoad(t, "interval = \"20ms\"\n"+b.String())
	pollers := map[string]map[int]bool{} // asset → shards that read it
	for idx := 0; idx < 2; idx++ {
		cfg := base.cfg
		src, err := New(&cfg, &engine.Env{Pipeline: "p", Kind: engine.KindSource, Type: "modbus", Name: "m", Shard: engine.Shard{Index: idx, Count: 2}})
		if err != nil {
			t.Fatal(err)
		}
		out := &collect{}
		run(t, src.(*Source), out, 5*time.Second, func(p []engine.Point) bool { return len(p) >= 10 })
		for _, p := range out.snapshot() {
			if pollers[p.Asset] == nil {
				pollers[p.Asset] = map[int]bool{}
			}
			pollers[p.Asset][idx] = true
		}
	}
	if len(pollers) != 6 {
		t.Fatalf("%d of 6 devices polled: %v", len(pollers), pollers)
	}
	for a, by := range pollers {
		if len(by) != 1 {
			t.Fatalf("device %s polled by shards %v", a, by)
		}
	}
}

// TestRefusedMergedReadIsSplit checks that a merged read the device refuses
// (illegal data address: the plan spanned a hole) is split for good, so
// only the tag whose address does not exist turns bad.
func TestRefusedMergedReadIsSplit(t *testing.T) {
	sim := startSim(t, simmodbus.Config{Interval: time.Hour})
	dev := sim.Devices()[0]
	s := mustLoad(t, fmt.Sprintf(`interval = "30ms"
max_gap  = 40
device "d" {
  endpoint = %q
  tag "a" {
    address = 0
  }
  tag "b" {
    address = 1
    type    = "int16"
  }
  tag "hole" {
    address = 30
  }
}`, dev.Addr()))
	if p := s.Plan(); !strings.Contains(p, "read holding      0 +31") {
		t.Fatalf("plan does not merge across the hole:\n%s", p)
	}
	out := &collect{}
	run(t, s, out, 5*time.Second, func(p []engine.Point) bool { return len(p) >= 3*5 })
	pts := out.snapshot()
	for _, p := range pts {
		if p.Tag == "hole" {
			if p.Quality != engine.Bad || p.Status != 2 {
				t.Fatalf("hole: %s %d", p.Quality, p.Status)
			}
		} else if p.Quality != engine.Good {
			t.Fatalf("%s: %s %d: a bad address spoilt its neighbours", p.Tag, p.Quality, p.Status)
		}
	}
	// 1 refused merged read, then 2 reads (0+2 and 30+1) per poll
	polls := len(pts) / 3
	if got := int(dev.Requests()); got < 1+2*polls || got > 1+2*(polls+1) {
		t.Fatalf("%d requests for %d polls", got, polls)
	}
}

// TestArrayTag checks that count reads consecutive values as tag[i], in
// one read.
func TestArrayTag(t *testing.T) {
	sim := startSim(t, simmodbus.Config{Registers: 20, Interval: time.Hour})
	dev := sim.Devices()[0]
	s := mustLoad(t, fmt.Sprintf(`interval = "30ms"
device "d" {
  endpoint = %q
  tag "r" {
    address = 1000
    count   = 20
  }
}`, dev.Addr()))
	if p := s.Plan(); !strings.Contains(p, "read holding   1000 +20") {
		t.Fatalf("plan:\n%s", p)
	}
	out := &collect{}
	run(t, s, out, 5*time.Second, func(p []engine.Point) bool { return len(p) >= 20 })
	for i, p := range out.snapshot()[:20] {
		// register 1000+i holds uint16(k + i), k = 0 (the tick never advances)
		if want := fmt.Sprintf("r[%d]", i); p.Tag != want || !p.Value.Equal(engine.Int(int64(i))) {
			t.Fatalf("point %d: %s = %v, want %s = %d", i, p.Tag, p.Value, want, i)
		}
	}
}

// slowOut blocks each Emit, as a full pipeline does.
type slowOut struct {
	collect
	delay time.Duration
}

func (s *slowOut) Emit(ctx context.Context, pts []engine.Point, done func(error)) error {
	time.Sleep(s.delay)
	return s.collect.Emit(ctx, pts, done)
}

// TestOverrunSkipsAndCounts checks that polls held up by backpressure skip
// the ticks they missed, and count them, instead of queueing up.
func TestOverrunSkipsAndCounts(t *testing.T) {
	sim := startSim(t, simmodbus.Config{Interval: time.Hour})
	s := mustLoad(t, fmt.Sprintf(`interval = "10ms"
device "d" {
  endpoint = %q
  tag "x" {
    address = 0
  }
}`, sim.Devices()[0].Addr()))
	out := &slowOut{delay: 55 * time.Millisecond}
	run(t, s, out, 5*time.Second, func(p []engine.Point) bool { return len(p) >= 6 })
	end := time.Now()
	pts := out.snapshot()
	polls := len(pts)
	skipped := testutil.ToFloat64(s.m.skipped)
	// each 55 ms poll misses about 5 ticks of 10 ms
	if skipped < float64(3*polls) {
		t.Fatalf("%d polls, %v skipped ticks counted", polls, skipped)
	}
	// and a tick is either polled or skipped, never both
	if slots := end.Sub(pts[0].Time())/(10*time.Millisecond) + 2; float64(polls)+skipped > float64(slots) {
		t.Fatalf("%d polls + %v skipped, but only %d ticks passed", polls, skipped, slots)
	}
}

// TestSilentDeviceTimesOut checks that a device that takes the connection
// but never answers turns its tags bad with status 11 once, and is
// reconnected.
func TestSilentDeviceTimesOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go io.Copy(io.Discard, c) // read requests, never answer
		}
	}()
	s := mustLoad(t, fmt.Sprintf(`interval = "20ms"
timeout = "100ms"
reconnect_min = "20ms"
reconnect_max = "40ms"
device "d" {
  endpoint = %q
  tag "x" {
    address = 0
  }
}`, l.Addr()))
	out := &collect{}
	run(t, s, out, 5*time.Second, func(p []engine.Point) bool { return len(p) >= 1 && accepted.Load() >= 3 })
	pts := out.snapshot()
	if len(pts) != 1 || pts[0].Quality != engine.Bad || pts[0].Status != StatusNoResponse {
		t.Fatalf("points %+v; want one bad point with status 11", pts)
	}
	if n := testutil.ToFloat64(s.m.reconnects); n < 2 {
		t.Fatalf("reconnects %v", n)
	}
}

// TestShardOwningNothingIdles checks that a replica whose shard owns none
// of the devices keeps running (an ended source would end the pipeline).
func TestShardOwningNothingIdles(t *testing.T) {
	base := mustLoad(t, "device \"only\" {\n endpoint = \"127.0.0.1:1\"\n tag \"x\" {\n  address = 0\n }\n}\n")
	idx := 1 - engine.ShardOf("only", 2) // the shard that does not own it
	cfg := base.cfg
	src, err := New(&cfg, &engine.Env{Shard: engine.Shard{Index: idx, Count: 2}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, &collect{}) }()
	select {
	case <-done:
		t.Fatal("Run returned while its context was live")
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestUint64BeyondInt64IsExact checks that an unscaled uint64 above 2^63−1
// keeps every digit, and that a scaled one is still a float.
func TestUint64BeyondInt64IsExact(t *testing.T) {
	raw := []byte{0xab, 0x54, 0xa9, 0x8c, 0xeb, 0x1f, 0x0a, 0xd2} // 12345678901234567890
	tg := &tag{typ: dUint64, size: 4}
	if got, want := tg.decodeRegs(raw), engine.Uint(12345678901234567890); !got.Equal(want) || got.Kind() != want.Kind() {
		t.Fatalf("uint64: %v (%v), want %v (%v)", got, got.Kind(), want, want.Kind())
	}
	tg.scaled, tg.scale = true, 0.5
	if got, want := tg.decodeRegs(raw), engine.Float(float64(uint64(12345678901234567890))*0.5); !got.Equal(want) || got.Kind() != want.Kind() {
		t.Fatalf("scaled uint64: %v, want %v", got, want)
	}
}
