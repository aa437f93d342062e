package main

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/flowd/flowd/engine"
	"golang.org/x/term"
)

// The terminal renderer of `flowd run`: live status lines below the log on a
// terminal, periodic status records otherwise.

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
