package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
)

// Sink describes a sink under test.
type Sink struct {
	Spec *engine.Spec
	// Setup prepares one destination (a fresh topic, table or file). addr
	// is where the sink must reach its peer: a fault proxy's address in the
	// checks that make the peer fail, "" otherwise (use the server's own).
	Setup func(t *testing.T, addr string) SinkSetup
	// Peer is the server the sink writes to, for a fault proxy; nil skips
	// the failure checks with NoFailure as the reason.
	Peer      func(t *testing.T) Peer
	NoFailure string
	// NoReject is why no point can be unwritable for this sink (skips
	// SettlesRejects when SinkSetup.Poison is nil).
	NoReject string
	// NoReadBack is why what the sink wrote cannot be read back (discard):
	// the checks then rest on outcomes and counters alone.
	NoReadBack string
}

// SinkSetup is one destination of a sink.
type SinkSetup struct {
	// Config is the body of the sink block (without inputs and buffer).
	Config string
	// Received reads back the values of every point the peer holds so far
	// (one entry per copy it holds); nil with Sink.NoReadBack.
	Received func(ctx context.Context) ([]int64, error)
	// Poison, when set, makes a point with value v that the sink can never
	// write (too large for the peer, a value its schema cannot hold).
	Poison func(v int64) engine.Point
}

// RunSink runs the sink suite:
//
//   - Delivers: every point reaches the peer once, every batch settles nil,
//     the counters add up.
//   - SettlesRejects: points the peer can never take are rejected through
//     *engine.WriteError: the batch settles with ErrRejected, they reach the
//     dead-letter sink once and are counted once, the rest are delivered.
//   - RetriesAfterFailure: while the peer is away nothing is acknowledged;
//     once it is back the points are delivered and counted once.
//   - ShutsDownOnContext: with its peer not answering, the sink ends within
//     the drain deadline and what it could not write is settled as not
//     delivered.
func RunSink(t *testing.T, h Sink) {
	t.Run("Delivers", func(t *testing.T) { sinkDelivers(t, h) })
	t.Run("SettlesRejects", func(t *testing.T) { sinkRejects(t, h) })
	t.Run("RetriesAfterFailure", func(t *testing.T) { sinkRetries(t, h) })
	t.Run("ShutsDownOnContext", func(t *testing.T) { sinkShutdown(t, h) })
}

const sinkID = "sink.under_test"

// startSink runs src into the sink of cfg, with a dead-letter probe.
func startSink(t *testing.T, h Sink, cfg string, src *probeSource, dead *probeSink, drain time.Duration) *pipe {
	t.Helper()
	hcl := fmt.Sprintf("pipeline \"conformance\" {\n  dead_letter = sink.dead\n  source \"probe\" \"in\" {}\n"+
		"  sink %q \"under_test\" {\n    inputs = [source.in]\n%s\n  }\n  sink \"probe\" \"dead\" {}\n}\n",
		h.Spec.Type, indent(cfg))
	reg := engine.NewRegistry(h.Spec, probeSourceSpec(src), probeSinkSpec(dead))
	return start(t, reg, hcl, drain, sinkGrace)
}

// tsBase keeps every point of a run at its own timestamp (a store keyed by
// time must not fold two into one).
var tsBase = time.Now().Truncate(time.Second).UnixNano()

// Point is the point with value v the suite writes (the suite sets its
// asset to Asset of the check).
func Point(v int64) engine.Point {
	return engine.Point{Asset: "conformance", Tag: "v", Value: engine.Int(v), Quality: engine.Good,
		TS: tsBase + v*int64(time.Millisecond)}
}

// Asset is the asset of every point a sink check writes: its own, so that
// a peer shared with other tests (or other runs) can be read back by it.
func Asset(t *testing.T) string {
	return fmt.Sprintf("conformance-%d-%s", tsBase/1e9, strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()))
}

func points(t *testing.T, vals []int64) []engine.Point {
	out := make([]engine.Point, len(vals))
	for i, v := range vals {
		out[i] = Point(v)
		out[i].Asset = Asset(t)
	}
	return out
}

// received waits until the peer holds every value of want and returns
// what it holds (nil when it cannot be read back).
func received(t *testing.T, s SinkSetup, want []int64) *values {
	t.Helper()
	if s.Received == nil {
		return nil
	}
	var got *values
	var last error
	deadline := time.Now().Add(waitFor)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		vals, err := s.Received(ctx)
		cancel()
		got = &values{}
		for _, v := range vals {
			got.add([]engine.Point{{Value: engine.Int(v)}})
		}
		last = err
		if err == nil && len(got.missing(want)) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s the peer is missing %s (read error: %v)", waitFor, short(got.missing(want)), last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// counted checks the sink's counters once the pipeline ended: delivered
// and dropped exactly as given, nothing pending.
func counted(t *testing.T, p *pipe, delivered int64, dropped map[string]int64) {
	t.Helper()
	c := p.component(sinkID)
	if c.Delivered != delivered {
		t.Errorf("sink delivered %d points, want %d (each counted once)", c.Delivered, delivered)
	}
	for reason, n := range dropped {
		if c.Dropped[reason] != n {
			t.Errorf("sink dropped %d points for %s, want %d (all drops: %v)", c.Dropped[reason], reason, n, c.Dropped)
		}
	}
	if got, want := sum(c.Dropped), sum(dropped); got != want {
		t.Errorf("sink dropped %d points in all (%v), want %d", got, c.Dropped, want)
	}
	if c.Buffer != nil && c.Buffer.Points != 0 {
		t.Errorf("sink still holds %d points after the pipeline ended", c.Buffer.Points)
	}
	if c.Received != delivered+sum(dropped) {
		t.Errorf("sink received %d points, delivered %d + dropped %d", c.Received, c.Delivered, sum(c.Dropped))
	}
}

func sinkDelivers(t *testing.T, h Sink) {
	s := h.Setup(t, "")
	src, dead := newProbeSource(), newProbeSink(accept)
	p := startSink(t, h, s.Config, src, dead, 5*time.Second)
	var all []int64
	for b := range int64(3) {
		vals := seq(1+50*b, 51+50*b)
		all = append(all, vals...)
		if err := outcome(t, src.emit(t, points(t, vals)), "a batch"); err != nil {
			t.Errorf("batch %d settled with %v, want nil (delivered)", b, err)
		}
	}
	if got := received(t, s, all); got != nil {
		for _, v := range all {
			if n := got.n[v]; n != 1 {
				t.Errorf("the peer holds value %d %d times, want once", v, n)
			}
		}
	} else {
		t.Logf("not reading back what was written: %s", h.NoReadBack)
	}
	if err := p.stop(); err != nil {
		t.Error(err)
	}
	counted(t, p, int64(len(all)), nil)
	if n := len(dead.taken()); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

func sinkRejects(t *testing.T, h Sink) {
	s := h.Setup(t, "")
	if s.Poison == nil {
		t.Skip(h.NoReject)
	}
	src, dead := newProbeSource(), newProbeSink(accept)
	p := startSink(t, h, s.Config, src, dead, 5*time.Second)
	good := seq(1, 41)
	pts := points(t, good[:20])
	poison := func(v int64) engine.Point {
		p := s.Poison(v)
		p.Attrs = cloneAttrs(p.Attrs)
		if p.Attrs == nil {
			p.Attrs = map[string]string{}
		}
		p.Attrs["conformance_poison"] = fmt.Sprint(v)
		p.Asset = Asset(t)
		return p
	}
	pts = append(pts, poison(5001))
	pts = append(pts, points(t, good[20:])...)
	pts = append(pts, poison(5002))
	err := outcome(t, src.emit(t, pts), "a batch with unwritable points")
	if !errors.Is(err, engine.ErrRejected) {
		t.Errorf("the batch settled with %v, want an error wrapping engine.ErrRejected", err)
	}
	received(t, s, good)
	if err := p.stop(); err != nil {
		t.Error(err)
	}
	counted(t, p, int64(len(good)), map[string]int64{reasonOf(t, dead): 2})
	letters := dead.taken()
	if len(letters) != 2 {
		t.Fatalf("%d dead letters, want the 2 unwritable points once each", len(letters))
	}
	for _, l := range letters {
		if v := l.Attrs["conformance_poison"]; v != "5001" && v != "5002" {
			t.Errorf("dead letter %+v is not one of the unwritable points", l)
		}
		if l.Attrs["dead_letter_component"] != sinkID || l.Attrs["dead_letter_reason"] == "" {
			t.Errorf("dead letter attrs %v: want dead_letter_component %s and a reason", l.Attrs, sinkID)
		}
	}
}

// reasonOf is the drop reason the dead letters carry.
func reasonOf(t *testing.T, dead *probeSink) string {
	for _, l := range dead.taken() {
		if r := l.Attrs["dead_letter_reason"]; r != "" {
			return r
		}
	}
	return "(no dead letter)"
}

func sinkRetries(t *testing.T, h Sink) {
	if h.Peer == nil {
		t.Skip(h.NoFailure)
	}
	proxy := h.Peer(t).proxy(t)
	s := h.Setup(t, proxy.Addr())
	src, dead := newProbeSource(), newProbeSink(accept)
	// A drain long enough for the sink to close after the outage (the
	// engine gives Close 10 s): how fast it ends is ShutsDownOnContext's
	// check, not this one's.
	p := startSink(t, h, s.Config, src, dead, 15*time.Second)
	first := seq(1, 21)
	if err := outcome(t, src.emit(t, points(t, first)), "the first batch"); err != nil {
		t.Fatalf("the first batch settled with %v", err)
	}
	proxy.Down()
	second := seq(21, 61)
	done := src.emit(t, points(t, second))
	select {
	case err := <-done:
		t.Fatalf("a batch settled with %v while the peer was away, before it could be written", err)
	case <-time.After(1500 * time.Millisecond):
	}
	proxy.Up()
	if err := outcome(t, done, "the batch written during the outage"); err != nil {
		t.Errorf("the batch written during the outage settled with %v, want nil", err)
	}
	if got := received(t, s, append(first, second...)); got != nil {
		dups := 0
		for _, v := range append(first, second...) {
			dups += got.n[v] - 1
		}
		t.Logf("%d points written again by the retry (at least once)", dups)
	}
	if err := p.stop(); err != nil {
		t.Error(err)
	}
	counted(t, p, int64(len(first)+len(second)), nil)
}

func sinkShutdown(t *testing.T, h Sink) {
	if h.Peer == nil {
		// Without a peer to silence, shutdown is checked after a write.
		s := h.Setup(t, "")
		src, dead := newProbeSource(), newProbeSink(accept)
		p := startSink(t, h, s.Config, src, dead, time.Second)
		if err := outcome(t, src.emit(t, points(t, seq(1, 11))), "a batch"); err != nil {
			t.Fatal(err)
		}
		if err := p.stop(); err != nil {
			t.Error(err)
		}
		counted(t, p, 10, nil)
		t.Logf("the peer cannot be silenced (%s): checked an idle shutdown only", h.NoFailure)
		return
	}
	proxy := h.Peer(t).proxy(t)
	s := h.Setup(t, proxy.Addr())
	src, dead := newProbeSource(), newProbeSink(accept)
	p := startSink(t, h, s.Config, src, dead, time.Second)
	if err := outcome(t, src.emit(t, points(t, seq(1, 11))), "the first batch"); err != nil {
		t.Fatalf("the first batch settled with %v", err)
	}
	// The peer stops answering but keeps its connections open: the
	// nastiest outage for a write that does not honour its context.
	proxy.Timeout(0)
	done := src.emit(t, points(t, seq(11, 31)))
	time.Sleep(500 * time.Millisecond)
	p.stop() // fails the test when the pipeline does not end in time
	err := outcome(t, done, "the batch cut off at shutdown")
	if err == nil || errors.Is(err, engine.ErrRejected) {
		t.Errorf("a batch the peer never answered settled with %v, want an error that is not a reject (not delivered)", err)
	}
	counted(t, p, 10, map[string]int64{"shutdown": 20})
}
