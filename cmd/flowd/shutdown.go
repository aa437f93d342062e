package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/flowd/flowd/engine"
)

// How often a drain that is still waiting says what it waits for.
var (
	drainFirstReport = time.Second
	drainReportEvery = 5 * time.Second
)

// watchShutdown runs for the whole of `flowd run`. After the first
// SIGINT/SIGTERM (sig is done) it says that the sinks are being drained and
// that a second Ctrl-C quits at once; while the drain lasts it names each
// sink still holding points and how many; a second signal ends the drain
// (Runtime.Quit); a third, should a component not let go, exits the process
// there and then. It returns when done is closed.
func watchShutdown(sig context.Context, logger *slog.Logger, current func() *engine.Runtime, drain time.Duration, done <-chan struct{}) {
	select {
	case <-sig.Done():
	case <-done:
		return
	}
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	logger.Info("stopping: sources stopped, queued points go to the sinks", "timeout", drain.String(), "hint", "press Ctrl-C again to quit now")
	start := time.Now()
	quitting := false
	t := time.NewTimer(drainFirstReport)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case s := <-again:
			if quitting {
				logger.Error("third " + signalName(s) + ": exiting without waiting for the components")
				os.Exit(exitInvalid)
			}
			quitting = true
			rt := current()
			logger.Warn("second "+signalName(s)+": quitting now; points not yet delivered are counted as dropped",
				"undelivered", pendingTotal(rt.Status()))
			rt.Quit()
			t.Stop()
		case <-t.C:
			left := max(drain-time.Since(start), 0).Round(time.Second)
			for _, w := range pendingSinks(current().Status()) {
				attrs := []any{"sink", w.pipeline + "/" + w.id, "points", w.points, "state", string(w.state), "deadline_in", left.String()}
				if w.lastErr != "" {
					attrs = append(attrs, "last_error", w.lastErr)
				}
				attrs = append(attrs, "hint", "press Ctrl-C again to quit now")
				logger.Warn("waiting for a sink to take its points", attrs...)
			}
			t.Reset(drainReportEvery)
		}
	}
}

func signalName(s os.Signal) string {
	if s == syscall.SIGTERM {
		return "SIGTERM"
	}
	return "interrupt"
}

type pendingSink struct {
	pipeline, id string
	points       int64
	state        engine.State
	lastErr      string
}

// pendingSinks lists the sinks the drain waits for, holding points they have
// not delivered: taken from their inputs, neither delivered nor dropped.
func pendingSinks(st engine.Status) []pendingSink {
	var out []pendingSink
	for _, p := range st.Pipelines {
		for _, c := range p.Components {
			// A disk buffer keeps its backlog for the next run: the drain
			// does not wait for it.
			if c.Kind != engine.KindSink || (c.Buffer != nil && c.Buffer.Type == "disk") {
				continue
			}
			n := c.Received - c.Delivered
			for _, d := range c.Dropped {
				n -= d
			}
			if n > 0 {
				out = append(out, pendingSink{pipeline: p.Name, id: c.ID, points: n, state: c.State, lastErr: c.LastError})
			}
		}
	}
	return out
}

func pendingTotal(st engine.Status) int64 {
	var n int64
	for _, w := range pendingSinks(st) {
		n += w.points
	}
	return n
}
