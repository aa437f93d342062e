package conformance

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
)

// Source describes a source under test.
type Source struct {
	Spec *engine.Spec
	// Setup prepares one instance of the source's input (a fresh topic, a
	// file, a port). addr is where the source must reach its peer: a fault
	// proxy's address in the Reconnects check, "" otherwise (use the
	// server's own). Setup is called once per check; the check may build
	// the source from its Config more than once (a restart).
	Setup func(t *testing.T, addr string) SourceSetup
	// Peer is the server the source connects to, for a fault proxy; nil
	// skips Reconnects with NoReconnect as the reason.
	Peer        func(t *testing.T) Peer
	NoReconnect string
	// NoAck, when set, is why the source cannot leave its input
	// unacknowledged for redelivery (UDP has no answer): skips
	// AcksOnlyAfterSinks.
	NoAck string
	// Replays, when set, is why a restarted source reads again what was
	// delivered before (a file keeps no position): skips the half of
	// AcksOnlyAfterSinks that checks delivered input is not read again.
	Replays string
	// Lossy, when set, is why the source drops input it cannot hand on
	// rather than slow its peer down: Backpressure then checks that every
	// loss is counted instead of that nothing is lost.
	Lossy string
}

// SourceSetup is one instance of a source's input.
type SourceSetup struct {
	// Config is the body of the source block (its attributes and blocks).
	Config string
	// Produce puts values into the peer, each one to become one point with
	// that number as its value, and returns once the peer has taken them (a
	// source that is itself the server: once the source answered; it retries
	// what the source refused, until ctx ends). Nil for a source that polls
	// current values (OPC UA, Modbus, sim): the checks then look for good
	// points instead of given values.
	Produce func(ctx context.Context, values []int64) error
	// Before: the input must exist before the source starts (a file read to
	// its end, after which the source ends).
	Before bool
}

// RunSource runs the source suite:
//
//   - Delivers: input becomes points at the sink, every counter adds up.
//   - AcksOnlyAfterSinks: input the sinks did not take (a failing sink, then
//     shutdown) comes again from a restarted source; input they took does
//     not.
//   - Reconnects: after the peer went away and came back, input flows again
//     without a restart of the pipeline.
//   - Backpressure: while the sink does not take anything the source waits
//     (or counts what it drops); once it takes again, nothing is lost.
//   - ShutsDownOnContext: with its pipeline full, the source ends promptly
//     when its context does.
func RunSource(t *testing.T, h Source) {
	t.Run("Delivers", func(t *testing.T) { sourceDelivers(t, h) })
	t.Run("AcksOnlyAfterSinks", func(t *testing.T) { sourceAcks(t, h) })
	t.Run("Reconnects", func(t *testing.T) { sourceReconnects(t, h) })
	t.Run("Backpressure", func(t *testing.T) { sourceBackpressure(t, h) })
	t.Run("ShutsDownOnContext", func(t *testing.T) { sourceShutdown(t, h) })
}

const (
	srcID  = "source.under_test"
	probID = "sink.out"
)

// startSource runs the source of cfg into sink.
func startSource(t *testing.T, h Source, cfg string, sink *probeSink, maxPoints int, drain time.Duration) *pipe {
	t.Helper()
	src := fmt.Sprintf("pipeline \"conformance\" {\n  source %q \"under_test\" {\n%s\n  }\n"+
		"  sink \"probe\" \"out\" {\n    inputs = [source.under_test]\n    buffer {\n      max_points = %d\n    }\n  }\n}\n",
		h.Spec.Type, indent(cfg), maxPoints)
	return start(t, engine.NewRegistry(h.Spec, probeSinkSpec(sink)), src, drain, grace)
}

func indent(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n")
}

// marker values are apart from the checks' own values (1…).
var markers = int64(1_000_000)

// ready waits until the running source hands points on: for a source with
// input, it produces a marker value again and again until the sink was
// given it (a subscription may not exist yet); for a polling source, until
// the sink was given a good point.
func ready(t *testing.T, p *pipe, s SourceSetup, sink *probeSink) {
	t.Helper()
	if s.Produce == nil {
		eventually(t, func() bool { return sink.attempted.goodCount() > 0 }, "the source handed on no good point (%s)", p.sourceState())
		return
	}
	markers++
	m := markers
	deadline := time.Now().Add(waitFor)
	var last error
	for !sink.attempted.has(m) {
		if time.Now().After(deadline) {
			t.Fatalf("after %s the source has handed on no input (last produce error: %v; %s)", waitFor, last, p.sourceState())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := s.Produce(ctx, []int64{m}); err != nil {
			last = err
		}
		cancel()
		for i := 0; i < 10 && !sink.attempted.has(m); i++ {
			time.Sleep(30 * time.Millisecond)
		}
	}
}

// produceAsync produces values until ctx ends; the channel gets the result.
func produceAsync(ctx context.Context, s SourceSetup, vals []int64) chan error {
	errc := make(chan error, 1)
	go func() { errc <- s.Produce(ctx, vals) }()
	return errc
}

func sourceDelivers(t *testing.T, h Source) {
	s := h.Setup(t, "")
	sink := newProbeSink(accept)
	vals := seq(1, 201)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if s.Before {
		if err := s.Produce(ctx, vals); err != nil {
			t.Fatal(err)
		}
	}
	p := startSource(t, h, s.Config, sink, 100000, 5*time.Second)
	switch {
	case s.Produce == nil:
		ready(t, p, s, sink)
	case !s.Before:
		ready(t, p, s, sink)
		if err := s.Produce(ctx, vals); err != nil {
			t.Fatal(err)
		}
		fallthrough
	default:
		eventually(t, func() bool { return len(sink.accepted.missing(vals)) == 0 },
			"the sink is missing %s", short(sink.accepted.missing(vals)))
	}
	if err := p.stop(); err != nil {
		t.Error(err)
	}
	p.checkCounts()
	if c := p.component(probID); c.Delivered == 0 {
		t.Errorf("the sink delivered nothing: %+v", c)
	}
}

func sourceAcks(t *testing.T, h Source) {
	if h.NoAck != "" {
		t.Skip(h.NoAck)
	}
	s := h.Setup(t, "")
	if s.Produce == nil {
		t.Skip("a polling source reads current values: its peer keeps nothing to acknowledge")
	}
	vals := seq(1, 101)
	ctx, cancel := context.WithTimeout(context.Background(), 4*waitFor)
	defer cancel()
	var errc chan error
	if s.Before {
		if err := s.Produce(ctx, vals); err != nil {
			t.Fatal(err)
		}
	}

	// 1. The sink refuses every write; the drain deadline cuts the points
	// off, so the source is told they were not delivered.
	refusing := newProbeSink(fail)
	p := startSource(t, h, s.Config, refusing, 100000, 500*time.Millisecond)
	var before int64
	if !s.Before {
		ready(t, p, s, refusing)
		before = p.component(srcID).Emitted
		errc = produceAsync(ctx, s, vals)
	}
	// The sink retries its first write; the rest wait in its buffer.
	eventually(t, func() bool { return p.component(srcID).Emitted >= before+int64(len(vals)) },
		"the source handed on %d of %d points", p.component(srcID).Emitted-before, len(vals))
	p.stop()
	p.checkCounts()

	// 2. A new instance of the source must get all of them again.
	taking := newProbeSink(accept)
	p = startSource(t, h, s.Config, taking, 100000, 5*time.Second)
	eventually(t, func() bool { return len(taking.accepted.missing(vals)) == 0 },
		"the source acknowledged input no sink took: after a restart %s never came again", short(taking.accepted.missing(vals)))
	if errc != nil {
		if err := <-errc; err != nil {
			t.Errorf("producing: %v", err)
		}
	}
	if err := p.stop(); err != nil {
		t.Error(err)
	}
	p.checkCounts()

	// 3. What was taken is acknowledged: a restarted source does not read
	// it again.
	if h.Replays != "" {
		t.Logf("not checking that delivered input is not read again: %s", h.Replays)
		return
	}
	again := newProbeSink(accept)
	p = startSource(t, h, s.Config, again, 100000, 5*time.Second)
	ready(t, p, s, again)
	if seen := again.accepted.seen(vals); len(seen) > 0 {
		t.Errorf("input the sink took came again after a restart: %s (the source never acknowledged it)", short(seen))
	}
	if err := p.stop(); err != nil {
		t.Error(err)
	}
	p.checkCounts()
}

func sourceReconnects(t *testing.T, h Source) {
	if h.Peer == nil {
		t.Skip(h.NoReconnect)
	}
	proxy := h.Peer(t).proxy(t)
	s := h.Setup(t, proxy.Addr())
	sink := newProbeSink(accept)
	p := startSource(t, h, s.Config, sink, 100000, 5*time.Second)
	ready(t, p, s, sink)

	proxy.Down()
	time.Sleep(time.Second) // long enough for the source to notice
	during := sink.accepted.goodCount()
	time.Sleep(time.Second)
	if s.Produce == nil && sink.accepted.goodCount() != during {
		t.Errorf("%d good points while the peer was away: a polling source must not report values it could not read",
			sink.accepted.goodCount()-during)
	}
	proxy.Up()
	good := sink.accepted.goodCount()
	if s.Produce == nil {
		eventually(t, func() bool { return sink.accepted.goodCount() > good }, "no good point since the peer came back")
	} else {
		ready(t, p, s, sink)
	}
	if err := p.stop(); err != nil {
		t.Error(err)
	}
	p.checkCounts()
}

func sourceBackpressure(t *testing.T, h Source) {
	s := h.Setup(t, "")
	sink := newProbeSink(block)
	vals := seq(1, 2001)
	ctx, cancel := context.WithTimeout(context.Background(), 4*waitFor)
	defer cancel()
	if s.Before {
		if err := s.Produce(ctx, vals); err != nil {
			t.Fatal(err)
		}
	}
	// A buffer of 100 points: the pipeline is full at once.
	p := startSource(t, h, s.Config, sink, 100, 5*time.Second)
	var errc chan error
	if s.Produce != nil && !s.Before {
		ready(t, p, s, sink)
		errc = produceAsync(ctx, s, vals)
	} else if s.Produce == nil {
		ready(t, p, s, sink)
	}
	time.Sleep(time.Second) // the source meets a full pipeline
	good := sink.accepted.goodCount()
	sink.release()
	switch {
	case s.Produce == nil:
		eventually(t, func() bool { return sink.accepted.goodCount() > good }, "no good point after the sink took writes again")
	case h.Lossy == "":
		eventually(t, func() bool { return len(sink.accepted.missing(vals)) == 0 },
			"input was lost under backpressure: the sink never got %s", short(sink.accepted.missing(vals)))
	}
	if errc != nil {
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("producing: %v", err)
			}
		case <-time.After(waitFor):
			t.Errorf("producing has not ended %s after the sink took writes again", waitFor)
		}
	}
	if h.Lossy != "" {
		// Let the last of it through before counting.
		time.Sleep(500 * time.Millisecond)
	}
	if err := p.stop(); err != nil {
		t.Error(err)
	}
	p.checkCounts()
	if h.Lossy != "" {
		missing := sink.accepted.missing(vals)
		dropped := sum(p.component(srcID).Dropped)
		if int64(len(missing)) > dropped {
			t.Errorf("%s lost and only %d counted as dropped by the source (%s)", short(missing), dropped, h.Lossy)
		}
		t.Logf("%d of %d lost under backpressure, %d counted as dropped (%s)", len(missing), len(vals), dropped, h.Lossy)
	}
}

func sourceShutdown(t *testing.T, h Source) {
	s := h.Setup(t, "")
	sink := newProbeSink(block)
	vals := seq(1, 2001)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if s.Before {
		if err := s.Produce(ctx, vals); err != nil {
			t.Fatal(err)
		}
	}
	p := startSource(t, h, s.Config, sink, 100, time.Second)
	if s.Before {
		eventually(t, func() bool { return p.component(srcID).Emitted > 0 }, "the source handed on nothing")
	} else {
		ready(t, p, s, sink)
	}
	var errc chan error
	if s.Produce != nil && !s.Before {
		errc = produceAsync(ctx, s, vals)
	}
	time.Sleep(500 * time.Millisecond) // the source is blocked in Emit
	// stop fails the test when the pipeline does not end in time.
	p.stop()
	cancel()
	if errc != nil {
		<-errc
	}
	if c := p.component(srcID); c.State != engine.StateStopped {
		t.Errorf("source state %s after shutdown, want %s", c.State, engine.StateStopped)
	}
	p.checkCounts()
}

// sourceState describes the source's state for a failure message.
func (p *pipe) sourceState() string {
	c := p.component(srcID)
	return fmt.Sprintf("source %s, last error %q, %d restarts", c.State, c.LastError, c.Restarts)
}
