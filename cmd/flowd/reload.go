package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/config"
	"github.com/flowd/flowd/engine/diskq"
	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// supervisor runs one runtime at a time and replaces it when the
// configuration changes (SIGHUP, or the files' contents change): the new
// configuration is loaded and validated while the old one keeps running; an
// invalid one is logged with its diagnostics and dropped; for a valid one the
// old runtime drains (sources stop, queued points reach the sinks, disk
// buffers stay on disk), then the new one is built and starts, or, if it
// cannot be built, the previous configuration starts again.
type supervisor struct {
	paths     []string
	vars      map[string]string
	dataDir   string
	logger    *slog.Logger
	level     *slog.LevelVar
	levelFlag string // --log-level, which wins over service.log_level
	drain     time.Duration
	watch     time.Duration // how often to look at the files; 0: only SIGHUP
	service   config.Service
	cur       atomic.Pointer[engine.Runtime]
	running   *loaded
	// newRuntime builds a runtime; nil means engine.New (tests replace it).
	newRuntime func(*loaded, engine.Options) (*engine.Runtime, error)
	hash       string // of the configuration last loaded, valid or not
	reloads    int
	metrics    reloadMetrics
}

// reloadMetrics outlive runtimes: they are served beside the current one's.
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

// configHash identifies the contents of the configuration files. A directory
// is hashed as its current list of *.hcl files, so a Kubernetes ConfigMap
// update (an atomic symlink swap) is seen.
func configHash(paths []string) (string, error) {
	files, err := config.ExpandPaths(paths)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// loaded is a validated configuration and the registry its components
// registered their metrics in.
type loaded struct {
	cfg     *config.Config
	metrics *prometheus.Registry
}

func (s *supervisor) build(l *loaded) (*engine.Runtime, error) {
	opts := engine.Options{Logger: s.logger, DataDir: s.service.DataDir, Metrics: l.metrics, NewDiskBuffer: diskq.NewBuffer}
	if s.newRuntime != nil {
		return s.newRuntime(l, opts)
	}
	return engine.New(l.cfg.Pipelines, opts)
}

// run runs rt (built from s.running), then each valid new configuration,
// until a runtime ends on its own (every source ended) or ctx is cancelled
// (SIGINT/SIGTERM: drain and stop).
func (s *supervisor) run(ctx context.Context, rt *engine.Runtime, hup <-chan os.Signal) error {
	s.cur.Store(rt)
	var tick <-chan time.Time
	if s.watch > 0 {
		t := time.NewTicker(s.watch)
		defer t.Stop()
		tick = t.C
	}
	for {
		gen, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- rt.Run(gen, s.drain) }()
		var next *loaded
		for next == nil {
			select {
			case err := <-done:
				cancel()
				return err
			case <-hup:
				h, _ := configHash(s.paths)
				next = s.prepare("SIGHUP", h)
			case <-tick:
				h, err := configHash(s.paths)
				if err != nil || h == s.hash {
					continue // unreadable for a moment (being replaced), or unchanged
				}
				next = s.prepare("configuration files changed", h)
			}
			if next == nil {
				s.metrics.result(false)
			}
		}
		// The old runtime drains before the new one is built, so the two
		// never hold the same disk buffer, file or client identity at once.
		s.logger.Info("draining the running configuration", "timeout", s.drain.String())
		cancel()
		err := <-done
		s.logger.Info("previous configuration drained", summaryAttrs(rt)...)
		if err != nil {
			s.logger.Error("drain of the previous configuration incomplete", "err", err)
		}
		nrt, err := s.build(next)
		if err != nil {
			// Rare: what validation cannot see, like a disk buffer that does
			// not open. Go back to the configuration that was running.
			s.metrics.result(false)
			s.logger.Error("cannot start the new configuration; going back to the previous one", "err", err)
			if nrt, err = s.build(s.running); err != nil {
				return fmt.Errorf("cannot restart the previous configuration either: %w", err)
			}
			rt = nrt
			s.cur.Store(rt)
			continue
		}
		s.metrics.result(true)
		rt, s.running = nrt, next
		s.cur.Store(rt)
		s.reloads++
		names := make([]string, 0, len(next.cfg.Pipelines))
		for _, p := range next.cfg.Pipelines {
			names = append(names, p.Name)
		}
		// Stopped (SIGTERM) while draining: the new runtime starts with
		// its context already cancelled, drains at once and the loop ends.
		s.logger.Info("configuration reloaded", "reloads", s.reloads, "pipelines", strings.Join(names, ","))
	}
}

// prepare loads and validates a new configuration, building its components
// but starting nothing; nil means it was rejected (and logged).
func (s *supervisor) prepare(why, hash string) *loaded {
	s.hash = hash
	s.logger.Info("reloading configuration", "trigger", why, "paths", strings.Join(s.paths, ","))
	metrics := prometheus.NewRegistry()
	l := config.NewLoader(config.Options{Registry: registry(), Vars: s.vars, DataDir: s.dataDir, Logger: s.logger, Metrics: metrics})
	cfg, diags := l.LoadFiles(s.paths)
	logDiags(s.logger, diags)
	if diags.HasErrors() {
		s.logger.Error("configuration rejected; the running configuration keeps going", "errors", len(diags.Errs()))
		return nil
	}
	if cfg.Service.HTTPAddr != s.service.HTTPAddr || cfg.Service.DataDir != s.service.DataDir || !slices.Equal(cfg.Service.AllowedHosts, s.service.AllowedHosts) {
		s.logger.Warn("service.http_addr, service.allowed_hosts and service.data_dir take effect at the next restart")
	}
	lvl := cfg.Service.LogLevel
	if s.levelFlag != "" {
		lvl = s.levelFlag
	}
	s.level.UnmarshalText([]byte(lvl))
	return &loaded{cfg: cfg, metrics: metrics}
}

// logDiags logs each diagnostic with its file:line:col.
func logDiags(logger *slog.Logger, diags hcl.Diagnostics) {
	for _, d := range diags {
		pos := ""
		if d.Subject != nil {
			pos = fmt.Sprintf("%s:%d:%d", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		level := slog.LevelWarn
		if d.Severity == hcl.DiagError {
			level = slog.LevelError
		}
		logger.Log(context.Background(), level, "configuration: "+d.Summary, "pos", pos, "detail", d.Detail)
	}
}
