package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/diskq"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/term"
)

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	httpAddr := fs.String("http", "", "address for /metrics, /healthz, /readyz, /api/status and the status page (default: service.http_addr, 127.0.0.1:9180; \"off\" disables)")
	dataDir := fs.String("data-dir", "", "directory for buffers and state (default: service.data_dir)")
	drain := fs.Duration("drain-timeout", 30*time.Second, "on SIGINT/SIGTERM, how long queued points may take to reach the sinks")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (default: service.log_level)")
	logFormat := fs.String("log-format", "auto", "text, json, or auto (text on a terminal, JSON otherwise)")
	quiet := fs.Bool("quiet", false, "no live status line on a terminal")
	finalStatus := fs.String("final-status", "", "on exit, write the final /api/status JSON to this file (tests and benchmarks)")
	vars := varFlags{}
	fs.Var(vars, "var", "set a variable: --var name=value (repeatable)")
	fs.Usage = func() { fmt.Fprintln(stderr, "Usage: flowd run [flags] FILE|DIR..."); fs.PrintDefaults() }
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}

	tty := isTerminal(stderr)
	out := &statusWriter{w: stderr}
	level := new(slog.LevelVar)
	var handler slog.Handler
	if *logFormat == "json" || (*logFormat == "auto" && !tty) {
		handler = slog.NewJSONHandler(out, &slog.HandlerOptions{Level: level})
	} else {
		handler = slog.NewTextHandler(out, &slog.HandlerOptions{Level: level})
	}
	logger := slog.New(handler)

	metrics := prometheus.NewRegistry()
	cfg, ok := load(fs.Args(), vars, *dataDir, logger, metrics, stderr)
	if !ok {
		return exitInvalid
	}
	lvl := cfg.Service.LogLevel
	if *logLevel != "" {
		lvl = *logLevel
	}
	if err := level.UnmarshalText([]byte(lvl)); err != nil {
		fmt.Fprintf(stderr, "flowd run: --log-level: %v\n", err)
		return exitUsage
	}

	rt, err := engine.New(cfg.Pipelines, engine.Options{Logger: logger, DataDir: cfg.Service.DataDir, Metrics: metrics, NewDiskBuffer: diskq.NewBuffer})
	if err != nil {
		logger.Error("cannot build pipelines", "err", err)
		return exitInvalid
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal ends flowd at once
	}()

	addr := cfg.Service.HTTPAddr
	if *httpAddr != "" {
		addr = *httpAddr
	}
	httpCtx, stopHTTP := context.WithCancel(context.Background())
	defer stopHTTP()
	if addr != "off" {
		bound, _, err := rt.Serve(httpCtx, addr)
		if err != nil {
			logger.Error("cannot listen", "addr", addr, "err", err)
			return exitInvalid
		}
		logger.Info("serving status", "url", "http://"+bound.String()+"/")
	}

	names := make([]string, len(cfg.Pipelines))
	for i, p := range cfg.Pipelines {
		names[i] = p.Name
	}
	logger.Info("flowd running", "version", version, "pipelines", strings.Join(names, ","))
	if tty && !*quiet {
		done := make(chan struct{})
		defer close(done)
		go out.progress(rt, done)
	}
	err = rt.Run(ctx, *drain)
	out.clear()
	if *finalStatus != "" {
		if b, err := json.MarshalIndent(rt.Status(), "", "  "); err == nil {
			if err := os.WriteFile(*finalStatus, b, 0o644); err != nil {
				logger.Error("cannot write final status", "err", err)
			}
		}
	}
	t := rt.Totals()
	logger.Info("flowd stopped", "points_in", t.In, "points_delivered", t.Delivered, "points_dropped", t.Dropped)
	if err != nil {
		logger.Error("drain incomplete", "err", err)
		return exitInvalid
	}
	return exitOK
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// statusWriter keeps a live status line at the bottom of a terminal: log
// lines are written above it.
type statusWriter struct {
	mu   sync.Mutex
	w    io.Writer
	line string
}

func (s *statusWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.line != "" {
		io.WriteString(s.w, "\r\033[K")
	}
	n, err := s.w.Write(p)
	if s.line != "" {
		io.WriteString(s.w, s.line)
	}
	return n, err
}

func (s *statusWriter) set(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.line = line
	io.WriteString(s.w, "\r\033[K"+line)
}

func (s *statusWriter) clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.line != "" {
		io.WriteString(s.w, "\r\033[K")
		s.line = ""
	}
}

func (s *statusWriter) progress(rt *engine.Runtime, done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			s.set(progressLine(rt))
		}
	}
}

// progressLine summarises every pipeline on one line.
func progressLine(rt *engine.Runtime) string {
	st := rt.Status()
	var parts []string
	for _, p := range st.Pipelines {
		var in, out, backlog float64
		var p99 float64
		var failing []string
		for _, c := range p.Components {
			switch c.Kind {
			case engine.KindSource:
				in += c.RateIn
			case engine.KindSink:
				out += c.RateOut
				backlog += float64(c.Buffer.Points)
				p99 = max(p99, c.Latency.P99ms)
			}
			if c.State == engine.StateFailing || c.State == engine.StateConnecting {
				failing = append(failing, c.ID)
			}
		}
		s := fmt.Sprintf("%s: in %s/s out %s/s p99 %s backlog %s", p.Name, human(in), human(out), msText(p99), human(backlog))
		if len(failing) > 0 {
			s += " ✗ " + strings.Join(failing, ",")
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " │ ")
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
