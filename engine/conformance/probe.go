package conformance

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
)

// What the probe sink does with a write.
type sinkMode int

const (
	accept sinkMode = iota // take it
	fail                   // return an error: nothing taken, the engine retries
	block                  // wait until released (or the write's context ends)
)

// probeSink is the sink a source under test feeds: it records what it was
// given to write (attempted) and what it took (accepted).
type probeSink struct {
	mu        sync.Mutex
	mode      sinkMode
	gate      chan struct{} // closed when a blocked sink is released
	attempted values
	accepted  values
	// dead is every point taken, for a dead-letter probe.
	dead []engine.Point
}

func newProbeSink(m sinkMode) *probeSink {
	return &probeSink{mode: m, gate: make(chan struct{})}
}

var errRefused = errors.New("conformance: the probe sink refuses writes")

func (s *probeSink) Write(ctx context.Context, pts []engine.Point) error {
	s.attempted.add(pts)
	s.mu.Lock()
	m, gate := s.mode, s.gate
	s.mu.Unlock()
	switch m {
	case fail:
		return errRefused
	case block:
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.accepted.add(pts)
	s.mu.Lock()
	for _, p := range pts {
		p.Attrs = cloneAttrs(p.Attrs)
		s.dead = append(s.dead, p)
	}
	s.mu.Unlock()
	return nil
}

// release lets a blocked sink take its writes from now on.
func (s *probeSink) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == block {
		close(s.gate)
	}
	s.mode = accept
}

func (s *probeSink) taken() []engine.Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]engine.Point(nil), s.dead...)
}

func cloneAttrs(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// probeSinkSpec declares s as sink type "probe".
func probeSinkSpec(s *probeSink) *engine.Spec {
	return engine.SinkSpec(engine.Info{Type: "probe", Summary: "conformance probe"},
		func(*struct{}, *engine.Env) (engine.Sink, error) { return s, nil })
}

// probeSource is the source that feeds a sink under test: it emits the
// batches it is given and reports each one's outcome.
type probeSource struct {
	batches chan probeBatch
}

type probeBatch struct {
	pts  []engine.Point
	done chan error
}

func newProbeSource() *probeSource { return &probeSource{batches: make(chan probeBatch)} }

func (s *probeSource) Run(ctx context.Context, out engine.Output) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-s.batches:
			pts := append(engine.GetPoints(len(b.pts)), b.pts...)
			if err := out.Emit(ctx, pts, func(err error) { b.done <- err }); err != nil {
				return nil
			}
		}
	}
}

// emit hands pts to the pipeline; the channel receives their outcome.
func (s *probeSource) emit(t *testing.T, pts []engine.Point) chan error {
	t.Helper()
	b := probeBatch{pts: pts, done: make(chan error, 1)}
	select {
	case s.batches <- b:
	case <-time.After(waitFor):
		t.Fatalf("the pipeline did not take a batch for %s", waitFor)
	}
	return b.done
}

// probeSourceSpec declares s as source type "probe".
func probeSourceSpec(s *probeSource) *engine.Spec {
	return engine.SourceSpec(engine.Info{Type: "probe", Summary: "conformance probe"},
		func(*struct{}, *engine.Env) (engine.Source, error) { return s, nil })
}

// outcome waits for a batch's outcome.
func outcome(t *testing.T, done chan error, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(waitFor):
		t.Fatalf("%s: no outcome after %s", what, waitFor)
		return nil
	}
}
