package engine

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are read from the nodes' own atomic counters at scrape time, so the
// hot path never touches a Prometheus object.
var (
	descReceived  = prometheus.NewDesc("flowd_points_received_total", "Points a component received (sources: taken in, including what they dropped or rejected themselves).", []string{"pipeline", "component"}, nil)
	descEmitted   = prometheus.NewDesc("flowd_points_emitted_total", "Points a component passed downstream.", []string{"pipeline", "component"}, nil)
	descFiltered  = prometheus.NewDesc("flowd_points_filtered_total", "Points a transform did not pass on by design (where false, unchanged values, folded into aggregates).", []string{"pipeline", "component"}, nil)
	descDelivered = prometheus.NewDesc("flowd_points_delivered_total", "Points a sink delivered.", []string{"pipeline", "sink"}, nil)
	descDropped   = prometheus.NewDesc("flowd_points_dropped_total", "Points dropped, by reason.", []string{"pipeline", "component", "reason"}, nil)
	descE2E       = prometheus.NewDesc("flowd_e2e_latency_seconds", "Source timestamp to sink acknowledgement.", []string{"pipeline", "sink"}, nil)
	descEngine    = prometheus.NewDesc("flowd_engine_latency_seconds", "Ingest to sink acknowledgement.", []string{"pipeline", "sink"}, nil)
	descBufBytes  = prometheus.NewDesc("flowd_buffer_bytes", "Bytes in a sink's buffer.", []string{"pipeline", "sink"}, nil)
	descBufPoints = prometheus.NewDesc("flowd_buffer_points", "Points in a sink's buffer.", []string{"pipeline", "sink"}, nil)
	descState     = prometheus.NewDesc("flowd_component_up", "1 when the component is connected.", []string{"pipeline", "component", "state"}, nil)
	descReconn    = prometheus.NewDesc("flowd_component_reconnects_total", "Connection attempts that failed, and restarts.", []string{"pipeline", "component"}, nil)
	descOldest    = prometheus.NewDesc("flowd_oldest_unacked_seconds", "Age of the oldest point a sink holds and has not had acknowledged (buffered or being written); 0 when it holds none. Rises while a sink is stuck.", []string{"pipeline", "sink"}, nil)
	descSLO       = prometheus.NewDesc("flowd_latency_slo_breached", "1 when the pipeline's p99 end-to-end latency over the last minute exceeds its SLO.", []string{"pipeline"}, nil)

	latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
)

// Collector returns a Prometheus collector for the runtime.
func (rt *Runtime) Collector() prometheus.Collector { return (*collector)(rt) }

type collector Runtime

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReceived, descEmitted, descFiltered, descDelivered, descDropped, descE2E, descEngine, descBufBytes, descBufPoints, descState, descReconn, descSLO, descOldest} {
		ch <- d
	}
}

func constHist(desc *prometheus.Desc, h hist, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(latencyBuckets))
	i := 0
	var cum uint64
	for _, le := range latencyBuckets {
		bound := int64(le * 1e9)
		for i < histBuckets && bucketUpper(i) <= bound {
			cum += h.counts[i]
			i++
		}
		buckets[le] = cum
	}
	return prometheus.MustNewConstHistogram(desc, h.n, h.sum/1e9, buckets, labels...)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	rt := (*Runtime)(c)
	ps := rt.list()
	st := statusOf(ps)
	now := Now()
	for pi, p := range ps {
		name := p.cfg.Name
		breached := 0.0
		if st.Pipelines[pi].SLOBreached {
			breached = 1
		}
		ch <- prometheus.MustNewConstMetric(descSLO, prometheus.GaugeValue, breached, name)
		for _, n := range p.nodes {
			ch <- prometheus.MustNewConstMetric(descReceived, prometheus.CounterValue, float64(n.received.Load()), name, n.id)
			ch <- prometheus.MustNewConstMetric(descEmitted, prometheus.CounterValue, float64(n.emitted.Load()), name, n.id)
			if n.cfg.Kind == KindTransform {
				ch <- prometheus.MustNewConstMetric(descFiltered, prometheus.CounterValue, float64(n.filtered()), name, n.id)
			}
			ch <- prometheus.MustNewConstMetric(descReconn, prometheus.CounterValue, float64(n.reconnect.Load()), name, n.id)
			for reason, v := range n.dropCounts() {
				ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(v), name, n.id, reason)
			}
			state, _ := n.getState()
			up := 0.0
			if state == StateConnected {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, up, name, n.id, string(state))
			if n.cfg.Kind == KindSink {
				ch <- prometheus.MustNewConstMetric(descDelivered, prometheus.CounterValue, float64(n.delivered.Load()), name, n.cfg.Name)
				bs := n.buf.Stats()
				ch <- prometheus.MustNewConstMetric(descBufBytes, prometheus.GaugeValue, float64(bs.Bytes), name, n.cfg.Name)
				ch <- prometheus.MustNewConstMetric(descBufPoints, prometheus.GaugeValue, float64(bs.Points), name, n.cfg.Name)
				ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, n.oldestUnacked(now).Seconds(), name, n.cfg.Name)
				ch <- constHist(descE2E, n.lat.snapshot(), name, n.cfg.Name)
				ch <- constHist(descEngine, n.eng.snapshot(), name, n.cfg.Name)
			}
		}
	}
}
