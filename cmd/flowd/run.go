package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/config"
	"github.com/flowd/flowd/engine/diskq"
	"github.com/flowd/flowd/engine/supervisor"
	"github.com/prometheus/client_golang/prometheus"
)

// runFlags are the flags of flowd run.
type runFlags struct {
	fs                                *flag.FlagSet
	httpAddr, dataDir, logLevel       *string
	logFormat, pprofAddr, finalStatus *string
	drain, watch, statusEvery         *time.Duration
	quiet, tapRemote                  *bool
	vars                              varFlags
	dry                               dryRunOpts
}

func newRunFlags(stderr io.Writer) *runFlags {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	f := &runFlags{fs: fs, vars: varFlags{}}
	f.httpAddr = fs.String("http", "", "address for /metrics, /healthz, /readyz, /api/status and the status page (default: service.http_addr, 127.0.0.1:9180; \"off\" disables)")
	f.dataDir = fs.String("data-dir", "", "directory for buffers and state (default: service.data_dir)")
	f.drain = fs.Duration("drain-timeout", 30*time.Second, "on SIGINT/SIGTERM or a reload, how long queued points may take to reach the sinks")
	f.watch = fs.Duration("watch", 2*time.Second, "how often to look for changed configuration files and reload them (0: reload on SIGHUP only)")
	f.logLevel = fs.String("log-level", "", "debug, info, warn or error (default: service.log_level)")
	f.logFormat = fs.String("log-format", "auto", "text, json, or auto (text on a terminal, JSON otherwise)")
	f.quiet = fs.Bool("quiet", false, "no live status lines on a terminal, no periodic status records otherwise")
	f.statusEvery = fs.Duration("status-interval", time.Minute, "when not on a terminal, log a status record per pipeline this often (0: never)")
	f.pprofAddr = fs.String("pprof", "", "serve Go's runtime profiles (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060")
	f.finalStatus = fs.String("final-status", "", "on exit, write the final /api/status JSON to this file (tests and benchmarks)")
	fs.Var(f.vars, "var", "set a variable: --var name=value (repeatable)")
	f.dry = dryRunFlags(fs)
	f.tapRemote = fs.Bool("tap-remote", false, "allow /api/tap (flowd tap) from other hosts, not only loopback: the points are data, so only on a trusted network")
	fs.Usage = func() { fmt.Fprintln(stderr, "Usage: flowd run [flags] FILE|DIR..."); fs.PrintDefaults() }
	return f
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	f := newRunFlags(stderr)
	fs := f.fs
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}

	dryRun := f.dry.start(stdout, f.httpAddr, f.watch, f.quiet)
	tty := isTerminal(stderr)
	out := &statusWriter{w: stderr}
	level := new(slog.LevelVar)
	logger := newLogger(out, level, *f.logFormat, tty)

	// Sinks printing to stdout take os.Stdout when they are built: capture it
	// first when it shares the terminal with the status lines.
	if tty && !*f.quiet && isTerminal(stdout) {
		if restore, err := out.captureStdout(); err == nil {
			defer restore()
		}
	}
	metrics := prometheus.NewRegistry()
	hash, _ := supervisor.Hash(fs.Args())
	cfg, code := f.loadConfig(dryRun, logger, level, metrics, stderr)
	if code >= 0 {
		return code
	}

	sup, err := supervisor.New(supervisor.Options{
		Paths: fs.Args(), Vars: f.vars, DataDir: *f.dataDir, Registry: registry(), Logger: logger, Level: level, LevelFlag: *f.logLevel,
		Drain: *f.drain, Watch: *f.watch, NewDiskBuffer: diskq.NewBuffer,
	}, cfg, metrics, hash)
	if err != nil {
		logger.Error("cannot build pipelines", "err", err)
		return exitInvalid
	}
	rt := sup.Runtime()
	current := func() *engine.Runtime { return rt }

	sig, ctx, hup, stopSignals := runSignals(dryRun)
	defer stopSignals()

	httpCtx, stopHTTP := context.WithCancel(context.Background())
	defer stopHTTP()
	addr := cfg.Service.HTTPAddr
	if *f.httpAddr != "" {
		addr = *f.httpAddr
	}
	if code := serveHTTP(httpCtx, logger, addr, *f.pprofAddr, engine.AllowHosts(withTap(current, *f.tapRemote, engine.NewHandler(current, sup.Metrics())), cfg.Service.AllowedHosts)); code >= 0 {
		return code
	}

	logger.Info("flowd running", "version", version, "pipelines", strings.Join(rt.Status().Names(), ","))
	stopReporting := report(sig, logger, out, current, *f.drain, *f.quiet, tty, *f.statusEvery)
	err = sup.Run(ctx, hup)
	stopReporting()
	return f.finish(logger, rt, dryRun, err)
}

// loadConfig reads the configuration, swaps in the printing sinks of a dry
// run, and sets the log level (the flag wins over the config). The code is
// negative when the run can go on.
func (f *runFlags) loadConfig(dryRun *dryRun, logger *slog.Logger, level *slog.LevelVar, metrics *prometheus.Registry, stderr io.Writer) (*config.Config, int) {
	cfg, ok := load(f.fs.Args(), f.vars, *f.dataDir, logger, metrics, stderr)
	if !ok {
		return nil, exitInvalid
	}
	if dryRun != nil {
		dryRun.replaceSinks(cfg)
	}
	if err := level.UnmarshalText([]byte(cmp.Or(*f.logLevel, cfg.Service.LogLevel))); err != nil {
		fmt.Fprintf(stderr, "flowd run: --log-level: %v\n", err)
		return nil, exitUsage
	}
	return cfg, -1
}

// runSignals returns sig, cancelled by SIGINT/SIGTERM; ctx, which a dry run
// may also end; and hup, fed by SIGHUP unless this is a dry run. stop
// releases them all.
func runSignals(dryRun *dryRun) (sig, ctx context.Context, hup chan os.Signal, stop func()) {
	sig, stopNotify := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancelDry := dryRun.bind(sig)
	hup = make(chan os.Signal, 1)
	if dryRun == nil { // a reload would bring the real sinks back
		signal.Notify(hup, syscall.SIGHUP)
	}
	return sig, ctx, hup, func() {
		// Reverse order of the setup, as the deferred calls used to run.
		if dryRun == nil {
			signal.Stop(hup)
		}
		cancelDry()
		stopNotify()
	}
}

// finish writes the final status and the closing log lines of a run that
// ended with err, and returns the exit code.
func (f *runFlags) finish(logger *slog.Logger, rt *engine.Runtime, dryRun *dryRun, err error) int {
	if *f.finalStatus != "" {
		writeFinalStatus(logger, *f.finalStatus, rt.Status())
	}
	logger.Info("flowd stopped", rt.Status().SummaryAttrs()...)
	if dryRun != nil {
		logger.Info("dry run: nothing was sent", "points_printed", dryRun.count())
	}
	if err != nil {
		logger.Error("stopped with an error", "err", err)
		return exitInvalid
	}
	return exitOK
}

// report runs, until the returned stop is called, the shutdown watcher and
// the status output: live lines on a terminal, records every statusEvery
// otherwise, nothing when quiet. stop also clears the live lines.
func report(sig context.Context, logger *slog.Logger, out *statusWriter, current func() *engine.Runtime, drain time.Duration, quiet, tty bool, statusEvery time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); watchShutdown(sig, logger, current, drain, done) }()
	switch {
	case quiet:
	case tty:
		wg.Add(1)
		go func() { defer wg.Done(); out.progress(current, func() int { return termWidth(out.w) }, done) }()
	case statusEvery > 0:
		wg.Add(1)
		go func() { defer wg.Done(); logStatusEvery(logger, current, statusEvery, done) }()
	}
	return func() {
		close(done)
		wg.Wait()
		out.clear()
	}
}

// writeFinalStatus writes st as /api/status would (--final-status).
func writeFinalStatus(logger *slog.Logger, path string, st engine.Status) {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		logger.Error("cannot write final status", "err", err)
	}
}

// newLogger logs through out in text or JSON (auto: text on a terminal),
// with secrets redacted.
func newLogger(out io.Writer, level *slog.LevelVar, format string, tty bool) *slog.Logger {
	var handler slog.Handler
	if format == "json" || (format == "auto" && !tty) {
		handler = slog.NewJSONHandler(out, &slog.HandlerOptions{Level: level})
	} else {
		handler = slog.NewTextHandler(out, &slog.HandlerOptions{Level: level})
	}
	return slog.New(engine.RedactHandler(handler))
}

// serveHTTP serves h on addr (unless "off") and the profiles on pprofAddr
// (if set) until ctx ends; it returns an exit code on failure, else -1.
func serveHTTP(ctx context.Context, logger *slog.Logger, addr, pprofAddr string, h http.Handler) int {
	if addr != "off" {
		bound, _, err := engine.Serve(ctx, addr, h)
		if err != nil {
			logger.Error("cannot listen", "addr", addr, "err", err)
			return exitInvalid
		}
		logger.Info("serving status", "url", "http://"+bound.String()+"/")
	}
	if pprofAddr != "" {
		bound, err := servePprof(ctx, pprofAddr)
		if err != nil {
			logger.Error("cannot serve profiles", "err", err)
			return exitUsage
		}
		logger.Info("serving profiles", "url", "http://"+bound.String()+"/debug/pprof/")
	}
	return -1
}
