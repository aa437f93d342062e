package supervisor

import "github.com/prometheus/client_golang/prometheus"

// reloadMetrics outlive configurations: they are served beside the runtime's.
type reloadMetrics struct {
	reg        *prometheus.Registry
	total      *prometheus.CounterVec
	successful prometheus.Gauge
	lastOK     prometheus.Gauge
}

func newReloadMetrics() reloadMetrics {
	m := reloadMetrics{
		reg: prometheus.NewRegistry(),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowd_config_reloads_total",
			Help: "Configuration reloads attempted (SIGHUP or changed files), by result: success or rejected."}, []string{"result"}),
		successful: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowd_config_last_reload_successful",
			Help: "1 when the last configuration loaded (at start or by a reload) was valid and runs."}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowd_config_last_reload_success_timestamp_seconds",
			Help: "When the running configuration was loaded."}),
	}
	m.total.WithLabelValues("success")
	m.total.WithLabelValues("rejected")
	m.successful.Set(1)
	m.lastOK.SetToCurrentTime()
	m.reg.MustRegister(m.total, m.successful, m.lastOK)
	return m
}

func (m reloadMetrics) result(ok bool) {
	if ok {
		m.total.WithLabelValues("success").Inc()
		m.successful.Set(1)
		m.lastOK.SetToCurrentTime()
		return
	}
	m.total.WithLabelValues("rejected").Inc()
	m.successful.Set(0)
}
