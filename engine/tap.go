package engine

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TapConfig asks for a copy of the points leaving some components: what a
// source or a transform passes downstream, what a sink has delivered. A tap
// never slows the pipeline: it samples, it is rate limited, and Emit must not
// block (a reader that cannot keep up loses points, counted as skipped).
type TapConfig struct {
	// Patterns select components: "pipeline/kind.name" or "kind.name" (any
	// pipeline), each part a path.Match glob. None (and no InputsOf) selects
	// every component.
	Patterns []string
	// InputsOf selects, in the same form, components whose inputs to tap:
	// what arrives at them.
	InputsOf []string
	// Sample passes one point in this many (per component); 0 or 1: all.
	Sample int
	// Limit is the most points passed per Interval, over all the tap's
	// components; beyond it points are skipped. 0 means 100 per 500 ms.
	Limit    int
	Interval time.Duration
	// Emit receives each point passed, on the component's own goroutine; the
	// point is only valid during the call. It returns false when it could not
	// take the point (counted as skipped).
	Emit func(pipeline, component string, p *Point) bool
}

// ErrNoComponent is returned by Tap when no component matches the patterns.
var ErrNoComponent = errors.New("no component matches")

// TapHandle is a running tap.
type TapHandle struct {
	sub   *tapSub
	nodes []*node
	rt    *Runtime
	// Components are the taps' "pipeline/kind.name" IDs, sorted.
	Components []string
}

// Skipped is the number of points the sample, the rate limit or a slow
// reader left out since the last call.
func (h *TapHandle) Skipped() int64 { return h.sub.skipped.Swap(0) }

// Close detaches the tap; once it returns, Emit is not called again.
func (h *TapHandle) Close() {
	h.rt.tapMu.Lock()
	defer h.rt.tapMu.Unlock()
	for _, n := range h.nodes {
		n.setTaps(without(n.tapList(), h.sub))
	}
	// Wait for calls already under way on the components' goroutines.
	h.sub.mu.Lock()
	h.sub.closed = true
	h.sub.mu.Unlock()
}

// Tap attaches a tap to the components matching cfg.Patterns.
func (rt *Runtime) Tap(cfg TapConfig) (*TapHandle, error) {
	if cfg.Emit == nil {
		return nil, errors.New("tap: no Emit function")
	}
	for _, p := range append(cfg.Patterns[:len(cfg.Patterns):len(cfg.Patterns)], cfg.InputsOf...) {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("tap: pattern %q: %w", p, err)
		}
	}
	sub := &tapSub{cfg: cfg, perNode: map[*node]uint64{}}
	if sub.cfg.Sample < 1 {
		sub.cfg.Sample = 1
	}
	if sub.cfg.Limit <= 0 {
		sub.cfg.Limit = 100
	}
	if sub.cfg.Interval <= 0 {
		sub.cfg.Interval = 500 * time.Millisecond
	}
	h := &TapHandle{sub: sub, rt: rt}
	rt.tapMu.Lock()
	defer rt.tapMu.Unlock()
	all := len(cfg.Patterns) == 0 && len(cfg.InputsOf) == 0
	seen := map[*node]bool{}
	add := func(n *node) {
		if !seen[n] {
			seen[n] = true
			h.nodes = append(h.nodes, n)
			h.Components = append(h.Components, n.p.cfg.Name+"/"+n.id)
		}
	}
	for _, p := range rt.list() {
		for _, n := range p.nodes {
			if all || (len(cfg.Patterns) > 0 && tapMatches(cfg.Patterns, p.cfg.Name, n.id)) {
				add(n)
			}
			if len(cfg.InputsOf) > 0 && tapMatches(cfg.InputsOf, p.cfg.Name, n.id) {
				for _, in := range n.cfg.Inputs {
					if up := p.byID[in]; up != nil {
						add(up)
					}
				}
			}
		}
	}
	if len(h.nodes) == 0 {
		asked := strings.Join(cfg.Patterns, " ")
		if len(cfg.InputsOf) > 0 {
			asked = strings.TrimSpace(asked + " inputs of " + strings.Join(cfg.InputsOf, " "))
		}
		return nil, fmt.Errorf("%w %s; components: %s", ErrNoComponent, asked, strings.Join(rt.componentIDs(), " "))
	}
	sort.Strings(h.Components)
	for _, n := range h.nodes {
		n.setTaps(append(n.tapList(), sub))
	}
	return h, nil
}

func (rt *Runtime) componentIDs() []string {
	var ids []string
	for _, p := range rt.list() {
		for _, n := range p.nodes {
			ids = append(ids, p.cfg.Name+"/"+n.id)
		}
	}
	return ids
}

func tapMatches(patterns []string, pipeline, id string) bool {
	for _, pat := range patterns {
		name := id
		if strings.Contains(pat, "/") {
			name = pipeline + "/" + id
		}
		if ok, _ := path.Match(pat, name); ok {
			return true
		}
	}
	return false
}

// tapSub is one tap's state, shared by the components it watches.
type tapSub struct {
	cfg     TapConfig
	skipped atomic.Int64

	mu      sync.Mutex
	closed  bool
	perNode map[*node]uint64 // points seen, for sampling
	window  time.Time        // start of the current rate-limit interval
	passed  int              // points passed in it
}

// offer runs on the component's goroutine for every batch leaving it.
func (s *tapSub) offer(n *node, points []Point) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	now := time.Now()
	if now.Sub(s.window) >= s.cfg.Interval {
		s.window, s.passed = now, 0
	}
	seen := s.perNode[n]
	skipped := 0
	for i := range points {
		seen++
		if seen%uint64(s.cfg.Sample) != 0 || s.passed >= s.cfg.Limit {
			skipped++
			continue
		}
		if s.cfg.Emit(n.p.cfg.Name, n.id, &points[i]) {
			s.passed++
		} else {
			skipped++
		}
	}
	s.perNode[n] = seen
	if skipped > 0 {
		s.skipped.Add(int64(skipped))
	}
}

// tapList is the node's taps; nil when nobody taps it.
func (n *node) tapList() []*tapSub {
	if t := n.taps.Load(); t != nil {
		return *t
	}
	return nil
}

func (n *node) setTaps(subs []*tapSub) {
	if len(subs) == 0 {
		n.taps.Store(nil)
		return
	}
	n.taps.Store(&subs)
}

// tapOut hands points leaving n to its taps. The caller checks n.taps first,
// so an untapped component pays one atomic load per batch.
func (n *node) tapOut(subs *[]*tapSub, points []Point) {
	for _, s := range *subs {
		s.offer(n, points)
	}
}

func without(subs []*tapSub, s *tapSub) []*tapSub {
	out := make([]*tapSub, 0, len(subs))
	for _, x := range subs {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
