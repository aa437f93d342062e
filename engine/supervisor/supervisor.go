// Package supervisor is flowd's runtime policy: it runs the pipelines of a
// set of configuration files and reloads them when the files change or on
// SIGHUP, touching only the pipelines that changed.
package supervisor

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/config"
	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Supervisor.
type Options struct {
	Paths    []string          // configuration files and directories
	Vars     map[string]string // --var
	DataDir  string            // --data-dir; "" means service.data_dir
	Registry *engine.Registry  // the components of this build
	Logger   *slog.Logger
	// Level is the logger's level (nil: left alone); LevelFlag
	// (--log-level), when set, wins over service.log_level at each reload.
	Level     *slog.LevelVar
	LevelFlag string
	// Drain bounds how long a stopping pipeline's queued points may take to
	// reach its sinks (at shutdown and at a reload).
	Drain time.Duration
	// Watch is how often to look at the files; 0: only on SIGHUP.
	Watch time.Duration
	// NewDiskBuffer builds disk buffers (engine.Options.NewDiskBuffer).
	NewDiskBuffer func(engine.BufferConfig, *engine.Env) (engine.Buffer, error)
}

// Supervisor runs one runtime and changes its pipelines when the
// configuration changes (SIGHUP, or the files' contents change): the new
// configuration is loaded and validated while the old one keeps running; an
// invalid one is logged with its diagnostics and dropped. For a valid one,
// pipelines whose configuration is unchanged keep running untouched; changed
// and removed ones drain (sources stop, queued points reach the sinks, disk
// buffers stay on disk and state files are saved), then the changed and
// added ones are built and start; if one cannot be built, the pipelines
// stopped for it start again from the previous configuration.
type Supervisor struct {
	opts    Options
	service config.Service
	rt      *engine.Runtime
	running *config.Config // the configuration the runtime runs
	hash    string         // of the configuration last loaded, valid or not
	reloads int
	metrics reloadMetrics
}

// New builds the runtime of cfg, a configuration loaded from opts.Paths
// whose components registered their metrics in metrics; hash is
// Hash(opts.Paths) taken before it was loaded. Nothing runs until Run.
func New(opts Options, cfg *config.Config, metrics *prometheus.Registry, hash string) (*Supervisor, error) {
	s := &Supervisor{opts: opts, service: cfg.Service, running: cfg, hash: hash, metrics: newReloadMetrics()}
	rt, err := engine.New(cfg.Pipelines, s.engineOptions(metrics))
	if err != nil {
		return nil, err
	}
	s.rt = rt
	return s, nil
}

func (s *Supervisor) engineOptions(metrics *prometheus.Registry) engine.Options {
	return engine.Options{Logger: s.opts.Logger, DataDir: s.service.DataDir, Metrics: metrics, NewDiskBuffer: s.opts.NewDiskBuffer}
}

// Runtime is the runtime; it stays the same across reloads.
func (s *Supervisor) Runtime() *engine.Runtime { return s.rt }

// Metrics are the reload metrics, which are served beside the runtime's.
func (s *Supervisor) Metrics() prometheus.Gatherer { return s.metrics.reg }

// Run runs the runtime, applying each valid new configuration, until every
// pipeline has ended on its own (every source ended) or ctx is cancelled
// (SIGINT/SIGTERM: drain and stop).
func (s *Supervisor) Run(ctx context.Context, hup <-chan os.Signal) error {
	var tick <-chan time.Time
	if s.opts.Watch > 0 {
		t := time.NewTicker(s.opts.Watch)
		defer t.Stop()
		tick = t.C
	}
	done := make(chan error, 1)
	go func() { done <- s.rt.Run(ctx, s.opts.Drain) }()
	for {
		var next *loaded
		select {
		case err := <-done:
			return err
		case <-hup:
			h, _ := Hash(s.opts.Paths)
			// The same files again: rebuild every pipeline, so what flowd
			// cannot see change (a certificate named by path) is read again.
			next = s.prepare("SIGHUP", h, h == s.hash)
		case <-tick:
			h, err := Hash(s.opts.Paths)
			if err != nil || h == s.hash {
				continue // unreadable for a moment (being replaced), or unchanged
			}
			next = s.prepare("configuration files changed", h, false)
		}
		if next == nil {
			s.metrics.result(false)
			continue
		}
		if err := s.apply(next); err != nil {
			return err
		}
	}
}

// apply changes the running pipelines to next's; only a failed rollback is
// an error.
func (s *Supervisor) apply(next *loaded) error {
	log := s.opts.Logger
	if p := s.rt.Plan(next.cfg.Pipelines); len(p.Stopped) > 0 {
		log.Info("draining the running configuration", "pipelines", strings.Join(p.Stopped, ","), "timeout", s.opts.Drain.String())
	}
	ch, err := s.rt.Apply(next.cfg.Pipelines, next.metrics, s.opts.Drain)
	if len(ch.Stopped) > 0 {
		log.Info("previous configuration drained", append([]any{"pipelines", strings.Join(ch.Stopped, ",")}, ch.Drained.SummaryAttrs()...)...)
	}
	if err != nil {
		// Rare: what validation cannot see, like a disk buffer that does
		// not open. The stopped pipelines run their previous configuration.
		s.metrics.result(false)
		if ch.RolledBack {
			log.Error("cannot start the new configuration; going back to the previous one", "err", err)
			return nil
		}
		return fmt.Errorf("cannot restart the previous configuration either: %w", err)
	}
	s.metrics.result(true)
	s.running = next.cfg
	s.reloads++
	log.Info("configuration reloaded", "reloads", s.reloads, "pipelines", strings.Join(names(next.cfg), ","),
		"kept", strings.Join(ch.Kept, ","), "restarted", strings.Join(ch.Started, ","), "stopped", strings.Join(ch.Stopped, ","))
	return nil
}

func names(cfg *config.Config) []string {
	out := make([]string, 0, len(cfg.Pipelines))
	for _, p := range cfg.Pipelines {
		out = append(out, p.Name)
	}
	return out
}

// loaded is a validated configuration and the registry its components
// registered their metrics in.
type loaded struct {
	cfg     *config.Config
	metrics *prometheus.Registry
}

// prepare loads and validates a new configuration, building its components
// but starting nothing; nil means it was rejected (and logged). With all,
// no running pipeline is kept.
func (s *Supervisor) prepare(why, hash string, all bool) *loaded {
	log := s.opts.Logger
	s.hash = hash
	log.Info("reloading configuration", "trigger", why, "paths", strings.Join(s.opts.Paths, ","))
	metrics := prometheus.NewRegistry()
	l := config.NewLoader(config.Options{Registry: s.opts.Registry, Vars: s.opts.Vars, DataDir: s.opts.DataDir, Logger: log, Metrics: metrics})
	cfg, diags := l.LoadFiles(s.opts.Paths)
	LogDiags(log, diags)
	if diags.HasErrors() {
		log.Error("configuration rejected; the running configuration keeps going", "errors", len(diags.Errs()))
		return nil
	}
	if cfg.Service.HTTPAddr != s.service.HTTPAddr || cfg.Service.DataDir != s.service.DataDir || !slices.Equal(cfg.Service.AllowedHosts, s.service.AllowedHosts) {
		log.Warn("service.http_addr, service.allowed_hosts and service.data_dir take effect at the next restart")
	}
	if s.opts.Level != nil {
		s.opts.Level.UnmarshalText([]byte(cmp.Or(s.opts.LevelFlag, cfg.Service.LogLevel)))
	}
	if all {
		for _, p := range cfg.Pipelines {
			p.Fingerprint = ""
		}
	}
	return &loaded{cfg: cfg, metrics: metrics}
}

// Hash identifies the contents of the configuration files. A directory is
// hashed as its current list of *.hcl files, so a Kubernetes ConfigMap
// update (an atomic symlink swap) is seen.
func Hash(paths []string) (string, error) {
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

// LogDiags logs each diagnostic with its file:line:col.
func LogDiags(logger *slog.Logger, diags hcl.Diagnostics) {
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
