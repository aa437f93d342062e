package main

import (
	"context"
	"flag"
	"io"
	"sync"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/config"
)

// dryRun replaces every sink with one that prints the points it is given to
// standard output, in the /api/tap --meta line format, and ends the run after
// a number of points or a duration (as Telegraf's --test: look at the data,
// send nothing).
type dryRun struct {
	w        io.Writer
	points   int           // stop after printing this many (0: no limit)
	duration time.Duration // stop after this long (0: no limit)

	mu      sync.Mutex
	printed int
	enough  chan struct{} // closed once points were printed
	once    sync.Once
}

func newDryRun(w io.Writer, points int, duration time.Duration) *dryRun {
	return &dryRun{w: w, points: points, duration: duration, enough: make(chan struct{})}
}

// stateKeeper is a transform that saves what the sinks acknowledged (cov's
// state_file).
type stateKeeper interface{ KeepStateReadOnly() }

// replaceSinks swaps every sink of cfg (dead-letter sinks too) for a printing
// one with a memory buffer: nothing is sent and no disk buffer is touched.
// The original sinks were only constructed; connecting happens at run time,
// so they never open a connection or a file. Transforms keep their saved
// state as it is: the printing sinks deliver nothing.
func (d *dryRun) replaceSinks(cfg *config.Config) {
	for _, p := range cfg.Pipelines {
		for _, n := range p.Nodes {
			if k, ok := n.Component.(stateKeeper); ok {
				k.KeepStateReadOnly()
			}
			if n.Kind != engine.KindSink {
				continue
			}
			n.Component = &dryRunSink{d: d, pipeline: p.Name, id: n.ID()}
			n.Buffer = engine.BufferConfig{Type: "memory", MaxSize: 256 << 20, MaxPoints: 100000, WhenFull: "block"}
		}
	}
}

// bind returns a context that ends with ctx, after the duration, or once
// enough points were printed.
func (d *dryRun) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	if d == nil {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var timer <-chan time.Time
	if d.duration > 0 {
		t := time.NewTimer(d.duration)
		timer = t.C
		go func() { <-ctx.Done(); t.Stop() }()
	}
	go func() {
		select {
		case <-d.enough:
		case <-timer:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx, cancel
}

func (d *dryRun) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.printed
}

type dryRunSink struct {
	d            *dryRun
	pipeline, id string
	buf          []byte
}

// Write prints points until the dry run has printed enough; later points
// (those still in flight while the run drains) are taken without printing.
func (s *dryRunSink) Write(_ context.Context, points []engine.Point) error {
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	b := s.buf[:0]
	for i := range points {
		if d.points > 0 && d.printed >= d.points {
			break
		}
		b = appendTapLine(b, s.pipeline, s.id, &points[i])
		d.printed++
	}
	if d.points > 0 && d.printed >= d.points {
		d.once.Do(func() { close(d.enough) })
	}
	s.buf = b
	if len(b) == 0 {
		return nil
	}
	_, err := d.w.Write(b)
	return err
}

type dryRunOpts struct {
	on       *bool
	points   *int
	duration *time.Duration
}

func dryRunFlags(fs *flag.FlagSet) dryRunOpts {
	return dryRunOpts{
		on:       fs.Bool("dry-run", false, "replace every sink with standard output (one JSON line per point: pipeline, component, point) and stop after --dry-run-points or --dry-run-duration; nothing is sent"),
		points:   fs.Int("dry-run-points", 100, "with --dry-run: stop after printing this many points (0: no limit)"),
		duration: fs.Duration("dry-run-duration", 10*time.Second, "with --dry-run: stop after this long (0: no limit)"),
	}
}

// start returns the dry run the flags ask for, or nil, and sets what a dry
// run implies: no HTTP listener unless --http is given (a running instance
// may hold the port), no reload, no live status lines.
func (o dryRunOpts) start(stdout io.Writer, httpAddr *string, watch *time.Duration, quiet *bool) *dryRun {
	if !*o.on {
		return nil
	}
	if *httpAddr == "" {
		*httpAddr = "off"
	}
	*watch = 0
	*quiet = true
	return newDryRun(stdout, *o.points, *o.duration)
}
