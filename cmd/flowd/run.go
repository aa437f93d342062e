package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/term"
)

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	httpAddr := fs.String("http", "", "address for /metrics, /healthz, /readyz, /api/status and the status page (default: service.http_addr, 127.0.0.1:9180; \"off\" disables)")
	dataDir := fs.String("data-dir", "", "directory for buffers and state (default: service.data_dir)")
	drain := fs.Duration("drain-timeout", 30*time.Second, "on SIGINT/SIGTERM or a reload, how long queued points may take to reach the sinks")
	watch := fs.Duration("watch", 2*time.Second, "how often to look for changed configuration files and reload them (0: reload on SIGHUP only)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (default: service.log_level)")
	logFormat := fs.String("log-format", "auto", "text, json, or auto (text on a terminal, JSON otherwise)")
	quiet := fs.Bool("quiet", false, "no live status lines on a terminal, no periodic status records otherwise")
	statusEvery := fs.Duration("status-interval", time.Minute, "when not on a terminal, log a status record per pipeline this often (0: never)")
	pprofAddr := fs.String("pprof", "", "serve Go's runtime profiles (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060")
	finalStatus := fs.String("final-status", "", "on exit, write the final /api/status JSON to this file (tests and benchmarks)")
	vars := varFlags{}
	fs.Var(vars, "var", "set a variable: --var name=value (repeatable)")
	dry := dryRunFlags(fs)
	tapRemote := fs.Bool("tap-remote", false, "allow /api/tap (flowd tap) from other hosts, not only loopback: the points are data, so only on a trusted network")
	fs.Usage = func() { fmt.Fprintln(stderr, "Usage: flowd run [flags] FILE|DIR..."); fs.PrintDefaults() }
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}

	dryRun := dry.start(stdout, httpAddr, watch, quiet)
	tty := isTerminal(stderr)
	out := &statusWriter{w: stderr}
	level := new(slog.LevelVar)
	var handler slog.Handler
	if *logFormat == "json" || (*logFormat == "auto" && !tty) {
		handler = slog.NewJSONHandler(out, &slog.HandlerOptions{Level: level})
	} else {
		handler = slog.NewTextHandler(out, &slog.HandlerOptions{Level: level})
	}
	logger := slog.New(engine.RedactHandler(handler))

	// Sinks printing to stdout take os.Stdout when they are built: capture it
	// first when it shares the terminal with the status lines.
	if tty && !*quiet && isTerminal(stdout) {
		if restore, err := out.captureStdout(); err == nil {
			defer restore()
		}
	}
	metrics := prometheus.NewRegistry()
	hash, _ := configHash(fs.Args())
	cfg, ok := load(fs.Args(), vars, *dataDir, logger, metrics, stderr)
	if !ok {
		return exitInvalid
	}
	if dryRun != nil {
		dryRun.replaceSinks(cfg)
	}
	lvl := cfg.Service.LogLevel
	if *logLevel != "" {
		lvl = *logLevel
	}
	if err := level.UnmarshalText([]byte(lvl)); err != nil {
		fmt.Fprintf(stderr, "flowd run: --log-level: %v\n", err)
		return exitUsage
	}

	sup := &supervisor{
		paths: fs.Args(), vars: vars, dataDir: *dataDir, logger: logger, level: level, levelFlag: *logLevel,
		drain: *drain, watch: *watch, service: cfg.Service, hash: hash, metrics: newReloadMetrics(),
		running: &loaded{cfg: cfg, metrics: metrics},
	}
	rt, err := sup.build(sup.running)
	if err != nil {
		logger.Error("cannot build pipelines", "err", err)
		return exitInvalid
	}

	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancelDry := dryRun.bind(sig)
	defer cancelDry()
	hup := make(chan os.Signal, 1)
	if dryRun == nil { // a reload would bring the real sinks back
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	sup.cur.Store(rt)

	addr := cfg.Service.HTTPAddr
	if *httpAddr != "" {
		addr = *httpAddr
	}
	httpCtx, stopHTTP := context.WithCancel(context.Background())
	defer stopHTTP()
	if addr != "off" {
		bound, _, err := engine.Serve(httpCtx, addr, engine.AllowHosts(withTap(sup.cur.Load, *tapRemote, engine.NewHandler(sup.cur.Load, sup.metrics.reg)), cfg.Service.AllowedHosts))
		if err != nil {
			logger.Error("cannot listen", "addr", addr, "err", err)
			return exitInvalid
		}
		logger.Info("serving status", "url", "http://"+bound.String()+"/")
	}
	if *pprofAddr != "" {
		bound, err := servePprof(httpCtx, *pprofAddr)
		if err != nil {
			logger.Error("cannot serve profiles", "err", err)
			return exitUsage
		}
		logger.Info("serving profiles", "url", "http://"+bound.String()+"/debug/pprof/")
	}

	names := make([]string, len(cfg.Pipelines))
	for i, p := range cfg.Pipelines {
		names[i] = p.Name
	}
	logger.Info("flowd running", "version", version, "pipelines", strings.Join(names, ","))
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); watchShutdown(sig, logger, sup.cur.Load, *drain, done) }()
	switch {
	case *quiet:
	case tty:
		wg.Add(1)
		go func() { defer wg.Done(); out.progress(sup.cur.Load, func() int { return termWidth(stderr) }, done) }()
	case *statusEvery > 0:
		wg.Add(1)
		go func() { defer wg.Done(); logStatusEvery(logger, sup.cur.Load, *statusEvery, done) }()
	}
	err = sup.run(ctx, rt, hup)
	close(done)
	wg.Wait()
	out.clear()
	rt = sup.cur.Load()
	if *finalStatus != "" {
		if b, err := json.MarshalIndent(rt.Status(), "", "  "); err == nil {
			if err := os.WriteFile(*finalStatus, b, 0o644); err != nil {
				logger.Error("cannot write final status", "err", err)
			}
		}
	}
	logger.Info("flowd stopped", summaryAttrs(rt)...)
	if dryRun != nil {
		logger.Info("dry run: nothing was sent", "points_printed", dryRun.count())
	}
	if err != nil {
		logger.Error("stopped with an error", "err", err)
		return exitInvalid
	}
	return exitOK
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// termWidth is the terminal's width in columns, or 0 when unknown.
func termWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil {
			return cols
		}
	}
	return 0
}

// statusWriter keeps live status lines at the bottom of a terminal: log
// records are written above them, and each update redraws them in place.
type statusWriter struct {
	mu    sync.Mutex
	w     io.Writer
	lines []string // drawn now; the cursor sits at the end of the last one
}

func (s *statusWriter) eraseLocked() {
	if len(s.lines) == 0 {
		return
	}
	seq := "\r"
	if n := len(s.lines) - 1; n > 0 {
		seq += fmt.Sprintf("\033[%dA", n)
	}
	io.WriteString(s.w, seq+"\033[J")
}

func (s *statusWriter) drawLocked() {
	if len(s.lines) > 0 {
		io.WriteString(s.w, strings.Join(s.lines, "\n"))
	}
}

func (s *statusWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eraseLocked()
	n, err := s.w.Write(p)
	s.drawLocked()
	return n, err
}

// set replaces the status lines.
func (s *statusWriter) set(lines []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eraseLocked()
	s.lines = lines
	s.drawLocked()
}

// clear removes the status lines from the screen.
func (s *statusWriter) clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eraseLocked()
	s.lines = nil
}

// progress redraws the status lines every second until done is closed.
func (s *statusWriter) progress(current func() *engine.Runtime, width func() int, done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			s.set(statusLines(current().Status(), width()))
		}
	}
}

// pipelineSummary is what one status line or status log record says.
type pipelineSummary struct {
	name               string
	in, out, p99, slo  float64
	backlog            int64
	sloBreached, ready bool
	failing            []engine.ComponentStatus
}

func summarize(p engine.PipelineStatus) pipelineSummary {
	ps := pipelineSummary{name: p.Name, slo: p.LatencySLOms, sloBreached: p.SLOBreached, ready: p.Ready}
	for _, c := range p.Components {
		switch c.Kind {
		case engine.KindSource:
			ps.in += c.RateOut
		case engine.KindSink:
			ps.out += c.RateOut
			if c.Buffer != nil {
				ps.backlog += c.Buffer.Points
			}
			if c.Latency != nil && c.Latency.Count > 0 {
				ps.p99 = max(ps.p99, c.Latency.P99ms)
			}
		}
		if c.State == engine.StateFailing || c.State == engine.StateConnecting {
			ps.failing = append(ps.failing, c)
		}
	}
	return ps
}

// maxFailingShown caps the per-component lines under a pipeline's line.
const maxFailingShown = 3

// statusLines renders one line per pipeline (in and out rates, p99 latency,
// backlog, health) and, under it, one line per failing component with its
// last error. No line is wider than width, so the terminal never wraps one.
func statusLines(st engine.Status, width int) []string {
	if width < 20 {
		width = 80
	}
	pad := 0
	for _, p := range st.Pipelines {
		pad = max(pad, len([]rune(p.Name)))
	}
	var lines []string
	for _, p := range st.Pipelines {
		ps := summarize(p)
		health := "ok"
		switch {
		case ps.sloBreached:
			health = fmt.Sprintf("✗ p99 above SLO %s", msText(ps.slo))
		case len(ps.failing) > 0:
			health = fmt.Sprintf("✗ %d failing", len(ps.failing))
		case !ps.ready:
			health = "… starting"
		}
		line := fmt.Sprintf("%-*s  in %6s/s  out %6s/s  p99 %6s  backlog %6s  %s",
			pad, ps.name, human(ps.in), human(ps.out), msText(ps.p99), human(float64(ps.backlog)), health)
		lines = append(lines, fit(line, width))
		for i, c := range ps.failing {
			if i == maxFailingShown {
				lines = append(lines, fit(fmt.Sprintf("%*s  … and %d more", pad, "", len(ps.failing)-i), width))
				break
			}
			l := fmt.Sprintf("%*s  ✗ %s %s", pad, "", c.ID, c.State)
			if c.LastError != "" {
				l += ": " + strings.Join(strings.Fields(c.LastError), " ")
			}
			lines = append(lines, fit(l, width))
		}
	}
	return lines
}

// fit cuts s to at most width-1 runes (the last column stays free, as some
// terminals wrap when it is written).
func fit(s string, width int) string {
	r := []rune(s)
	if len(r) < width {
		return s
	}
	return string(r[:width-2]) + "…"
}

// logStatus writes one structured status record per pipeline; it replaces the
// live lines when the output is not a terminal (journald, kubectl logs).
func logStatus(logger *slog.Logger, st engine.Status) {
	for _, p := range st.Pipelines {
		ps := summarize(p)
		attrs := []any{"pipeline", ps.name, "in_per_s", round1(ps.in), "out_per_s", round1(ps.out),
			"p99_ms", round1(ps.p99), "backlog", ps.backlog, "ready", ps.ready}
		if ps.sloBreached {
			attrs = append(attrs, "slo_breached", true)
		}
		if len(ps.failing) > 0 {
			ids := make([]string, len(ps.failing))
			for i, c := range ps.failing {
				ids[i] = c.ID
			}
			attrs = append(attrs, "failing", strings.Join(ids, ","))
		}
		if ps.ready {
			logger.Info("status", attrs...)
		} else {
			logger.Warn("status", attrs...)
		}
	}
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// logStatusEvery logs the status every interval until done is closed.
func logStatusEvery(logger *slog.Logger, current func() *engine.Runtime, every time.Duration, done <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			logStatus(logger, current().Status())
		}
	}
}

func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func msText(ms float64) string {
	if ms >= 1000 {
		return fmt.Sprintf("%.1fs", ms/1000)
	}
	return fmt.Sprintf("%.0fms", ms)
}
