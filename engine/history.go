package engine

import (
	"sync"
	"time"
)

// The runtime keeps a short history per pipeline, one sample a second for
// ten minutes, so the status page can draw rates and latency over time
// without an external time-series store.
const (
	historyEvery = time.Second
	historyLen   = 600
	// historySlots is how many latency slots (slotWidth each) one sample's
	// quantiles cover: the current, partly filled slot and the one before.
	historySlots = 2
)

// HistorySample is one point of a pipeline's history.
type HistorySample struct {
	T       int64   `json:"t"`   // Unix milliseconds
	RateIn  float64 `json:"in"`  // points/s produced by the sources
	RateOut float64 `json:"out"` // points/s delivered by the sinks
	Backlog int64   `json:"backlog"`
	P50ms   float64 `json:"p50_ms"` // end-to-end, over the last 10–20 s
	P99ms   float64 `json:"p99_ms"`
	Count   uint64  `json:"n"` // latency observations behind P50ms and P99ms
	// OldestMs is the age of the oldest unacknowledged point across sinks.
	OldestMs float64 `json:"oldest_ms"`
}

// PipelineHistory is the history of one pipeline, oldest sample first.
type PipelineHistory struct {
	Name            string          `json:"name"`
	LatencySLOms    float64         `json:"latency_slo_ms"`
	IntervalSeconds float64         `json:"interval_s"`
	Samples         []HistorySample `json:"samples"`
}

// History is the JSON served at /api/history.
type History struct {
	Pipelines []PipelineHistory `json:"pipelines"`
}

// historyRing is a fixed ring of samples.
type historyRing struct {
	mu   sync.Mutex
	ring [historyLen]HistorySample
	next int
	n    int
}

func (h *historyRing) add(s HistorySample) {
	h.mu.Lock()
	h.ring[h.next] = s
	h.next = (h.next + 1) % historyLen
	h.n = min(h.n+1, historyLen)
	h.mu.Unlock()
}

// since returns the samples newer than t (Unix ms), oldest first.
func (h *historyRing) since(t int64) []HistorySample {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]HistorySample, 0, h.n)
	for i := range h.n {
		s := h.ring[(h.next-h.n+i+historyLen)%historyLen]
		if s.T > t {
			out = append(out, s)
		}
	}
	return out
}

// window merges the latency slots of the last n slot periods.
func (l *latency) window(now time.Time, n int64) hist {
	var out hist
	p := now.UnixNano() / int64(slotWidth)
	l.mu.Lock()
	for i := range l.slots {
		if d := p - l.epoch[i]; d >= 0 && d < n {
			out.merge(&l.slots[i])
		}
	}
	l.mu.Unlock()
	return out
}

// recordHistory appends one sample per pipeline; the sampler calls it after
// updating the rates.
func (rt *Runtime) recordHistory(now time.Time) {
	for _, p := range rt.list() {
		s := HistorySample{T: now.UnixMilli()}
		var lat hist
		mono := Now()
		for _, n := range p.nodes {
			switch n.cfg.Kind {
			case KindSource:
				s.RateIn += n.rateIn.get()
			case KindSink:
				s.RateOut += n.rateOut.get()
				s.Backlog += n.buf.Stats().Points
				w := n.lat.window(now, historySlots)
				lat.merge(&w)
				s.OldestMs = max(s.OldestMs, ms(n.oldestUnacked(mono)))
			}
		}
		if lat.n > 0 {
			s.P50ms, s.P99ms, s.Count = ms(lat.quantile(0.5)), ms(lat.quantile(0.99)), lat.n
		}
		p.history.add(s)
	}
}

// History returns every pipeline's samples newer than since (Unix ms; 0 for
// all of them).
func (rt *Runtime) History(since int64) History {
	h := History{Pipelines: []PipelineHistory{}}
	for _, p := range rt.list() {
		h.Pipelines = append(h.Pipelines, PipelineHistory{
			Name: p.cfg.Name, LatencySLOms: ms(p.cfg.LatencySLO), IntervalSeconds: historyEvery.Seconds(),
			Samples: p.history.since(since),
		})
	}
	return h
}
