package engine

import (
	"sort"
	"time"
)

// Status is the JSON served at /api/status.
type Status struct {
	UptimeSeconds float64          `json:"uptime_s"`
	Ready         bool             `json:"ready"`
	Pipelines     []PipelineStatus `json:"pipelines"`
}

// PipelineStatus describes one pipeline.
type PipelineStatus struct {
	Name         string            `json:"name"`
	LatencySLOms float64           `json:"latency_slo_ms"`
	SLOBreached  bool              `json:"slo_breached"`
	Ready        bool              `json:"ready"`
	Problems     []string          `json:"problems,omitempty"`
	Points       PointCounts       `json:"points"`
	Components   []ComponentStatus `json:"components"`
}

// PointCounts accounts for a pipeline's points. Each sink gets its own copy
// of what reaches it, so with one sink In = Filtered + Dropped + Delivered +
// Pending, and with fan-out each sink's copy adds up on its own.
type PointCounts struct {
	In        int64 `json:"in"`        // taken in by the sources, with what they dropped or rejected themselves
	Filtered  int64 `json:"filtered"`  // not passed on by a transform on purpose
	Dropped   int64 `json:"dropped"`   // by any component, every reason
	Delivered int64 `json:"delivered"` // taken by the sinks, summed over sinks
	Pending   int64 `json:"pending"`   // held by sinks, not yet delivered
}

// ComponentStatus describes one component.
type ComponentStatus struct {
	ID        string        `json:"id"`
	Kind      ComponentKind `json:"kind"`
	Type      string        `json:"type"`
	Inputs    []string      `json:"inputs,omitempty"`
	State     State         `json:"state"`
	LastError string        `json:"last_error,omitempty"`
	Received  int64         `json:"received"`
	Emitted   int64         `json:"emitted"`
	Delivered int64         `json:"delivered,omitempty"`
	// Filtered is what a transform did not pass on by design: points its
	// where was false for (expr), unchanged values it suppressed (cov),
	// points folded into aggregates (window). Never counted as dropped.
	Filtered int64            `json:"filtered,omitempty"`
	Dropped  map[string]int64 `json:"dropped,omitempty"`
	RateIn   float64          `json:"rate_in"`
	RateOut  float64          `json:"rate_out"`
	Restarts int64            `json:"reconnects"`
	Buffer   *BufferStatus    `json:"buffer,omitempty"`
	Latency  *LatencyStatus   `json:"latency,omitempty"`
	// Lag is a consuming source's backlog per partition ("topic/partition":
	// records behind the end), for sources that implement Lagger.
	Lag map[string]int64 `json:"lag,omitempty"`
}

// Lagger is implemented by sources that read from a log with a known end
// (the kafka source): their backlog per partition shows in the status.
type Lagger interface {
	Lag() map[string]int64
}

// BufferStatus is a sink's backlog.
type BufferStatus struct {
	Type          string  `json:"type"`
	Points        int64   `json:"points"`
	Bytes         int64   `json:"bytes"`
	OldestSeconds float64 `json:"oldest_s"`
}

// LatencyStatus is end-to-end (source ts → sink ack) and in-engine latency
// over the last minute, in milliseconds.
type LatencyStatus struct {
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	Maxms       float64 `json:"max_ms"`
	EngineP99ms float64 `json:"engine_p99_ms"`
	Count       uint64  `json:"count"`
	// OldestUnackedms is the age of the oldest point the sink holds and has
	// not had acknowledged (buffered or being written); 0 when it holds none.
	OldestUnackedms float64 `json:"oldest_unacked_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// Status snapshots every pipeline.
func (rt *Runtime) Status() Status {
	st := statusOf(rt.list())
	if t := rt.started.Load(); t != 0 {
		st.UptimeSeconds = time.Since(time.Unix(0, t)).Seconds()
	}
	return st
}

// Names are the pipelines' names, in order.
func (st Status) Names() []string {
	out := make([]string, len(st.Pipelines))
	for i, p := range st.Pipelines {
		out[i] = p.Name
	}
	return out
}

// statusOf snapshots ps; its Pipelines are in the order of ps.
func statusOf(ps []*pipeline) Status {
	st := Status{Ready: true}
	now := Now()
	for _, p := range ps {
		ps := p.status(now)
		st.Ready = st.Ready && ps.Ready
		st.Pipelines = append(st.Pipelines, ps)
	}
	return st
}

// status snapshots p at now (Now's clock).
func (p *pipeline) status(now int64) PipelineStatus {
	ps := PipelineStatus{Name: p.cfg.Name, LatencySLOms: ms(p.cfg.LatencySLO), Ready: true}
	for _, n := range p.nodes {
		state, lastErr := n.getState()
		cs := ComponentStatus{
			ID: n.id, Kind: n.cfg.Kind, Type: n.cfg.Type, Inputs: n.cfg.Inputs, State: state, LastError: lastErr,
			Received: n.received.Load(), Emitted: n.emitted.Load(), Delivered: n.delivered.Load(),
			Dropped: n.dropCounts(), RateIn: n.rateIn.get(), RateOut: n.rateOut.get(), Restarts: n.reconnect.Load(),
		}
		if len(cs.Dropped) == 0 {
			cs.Dropped = nil
		}
		var dropped int64
		for _, d := range cs.Dropped {
			dropped += d
		}
		ps.Points.Dropped += dropped
		switch n.cfg.Kind {
		case KindSource:
			ps.Points.In += cs.Received
		case KindTransform:
			cs.Filtered = n.filtered()
			ps.Points.Filtered += cs.Filtered
		case KindSink:
			ps.Points.Delivered += cs.Delivered
			ps.Points.Pending += max(cs.Received-cs.Delivered-dropped, 0)
		}
		if l, ok := n.cfg.Component.(Lagger); ok {
			cs.Lag = l.Lag()
		}
		if state == StateFailing || state == StateConnecting || state == StateStarting {
			ps.Problems = append(ps.Problems, n.id+" is "+string(state))
		}
		if n.cfg.Kind == KindSink {
			p.sinkStatus(&ps, &cs, n, now)
		}
		ps.Components = append(ps.Components, cs)
	}
	sort.SliceStable(ps.Problems, func(i, j int) bool { return ps.Problems[i] < ps.Problems[j] })
	ps.Ready = len(ps.Problems) == 0
	return ps
}

// sinkStatus adds sink n's buffer and latency to cs, and its latency SLO and
// stall problems to ps.
func (p *pipeline) sinkStatus(ps *PipelineStatus, cs *ComponentStatus, n *node, now int64) {
	bs := n.buf.Stats()
	b := &BufferStatus{Type: n.cfg.Buffer.Type, Points: bs.Points, Bytes: bs.Bytes}
	if b.Type == "" {
		b.Type = "memory"
	}
	if bs.OldestIngest != 0 {
		b.OldestSeconds = time.Duration(now - bs.OldestIngest).Seconds()
	}
	cs.Buffer = b
	rec, eng := n.lat.recent(), n.eng.recent()
	cs.Latency = &LatencyStatus{
		P50ms: ms(rec.quantile(0.5)), P99ms: ms(rec.quantile(0.99)), Maxms: ms(time.Duration(rec.max)),
		EngineP99ms: ms(eng.quantile(0.99)), Count: rec.n,
	}
	oldest := n.oldestUnacked(now)
	cs.Latency.OldestUnackedms = ms(oldest)
	if slo := p.cfg.LatencySLO; slo > 0 && rec.n > 0 && rec.quantile(0.99) > slo {
		ps.SLOBreached = true
		ps.Problems = append(ps.Problems, n.id+": p99 latency above the SLO")
	}
	if slo := p.cfg.LatencySLO; slo > 0 && oldest > slo {
		ps.SLOBreached = true
		ps.Problems = append(ps.Problems, n.id+": oldest unacknowledged point older than the SLO")
	}
	if st := p.cfg.StallTimeout; st > 0 && bs.Points > 0 {
		last := n.lastDelivery.Load()
		if last == 0 {
			last = bs.OldestIngest
		}
		if time.Duration(now-last) > st {
			ps.Problems = append(ps.Problems, n.id+": nothing delivered for longer than stall_timeout while its buffer grows")
		}
	}
}

// Totals sums points in and out across pipelines (for progress lines and tests).
type Totals struct {
	In, Out, Delivered, Dropped, Backlog int64
	Filtered                             int64
	RateIn, RateOut                      float64
	P99                                  time.Duration
}

// Totals aggregates counters: In counts what sources took in (emitted, or
// dropped and rejected by the source itself), Delivered what sinks took.
func (rt *Runtime) Totals() Totals {
	var t Totals
	for _, p := range rt.list() {
		for _, n := range p.nodes {
			for _, c := range n.dropCounts() {
				t.Dropped += c
			}
			switch n.cfg.Kind {
			case KindTransform:
				t.Filtered += n.filtered()
			case KindSource:
				t.In += n.received.Load()
				t.RateIn += n.rateIn.get()
			case KindSink:
				t.Delivered += n.delivered.Load()
				t.RateOut += n.rateOut.get()
				t.Backlog += n.buf.Stats().Points
				if r := n.lat.recent(); r.n > 0 {
					t.P99 = max(t.P99, r.quantile(0.99))
				}
			}
		}
	}
	t.Out = t.Delivered
	return t
}
