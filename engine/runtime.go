package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Runtime.
type Options struct {
	Logger *slog.Logger
	// DataDir holds disk buffers and component state.
	DataDir string
	// NewDiskBuffer builds a disk buffer; nil means disk buffers are unavailable.
	NewDiskBuffer func(cfg BufferConfig, env *Env) (Buffer, error)
	// Metrics is the registry components registered their own metrics in; it
	// is served at /metrics beside the engine's.
	Metrics *prometheus.Registry
}

// Runtime runs pipelines.
type Runtime struct {
	opts      Options
	log       *slog.Logger
	pipelines []*pipeline
	started   atomic.Int64 // unix nanoseconds; set by Run, read by Status
	regOnce   sync.Once
	reg       prometheus.Gatherers
	tapMu     sync.Mutex // serialises attaching and detaching taps
	quit      chan struct{}
	quitOnce  sync.Once
}

// Quit ends a drain under way at once, as if its deadline had passed: what
// the sinks have not taken is acknowledged as not delivered and counted as
// dropped (a durable buffer keeps it). A second Ctrl-C calls it.
func (rt *Runtime) Quit() { rt.quitOnce.Do(func() { close(rt.quit) }) }

// New wires validated pipelines into a runtime. Nothing runs until Run.
func New(cfgs []*PipelineConfig, opts Options) (*Runtime, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	rt := &Runtime{opts: opts, log: opts.Logger, quit: make(chan struct{})}
	for _, pc := range cfgs {
		p, err := rt.build(pc)
		if err != nil {
			// Release the disk buffers already opened, so a corrected
			// configuration (or a rollback) can open them again.
			for _, p := range rt.pipelines {
				p.closeBuffers()
			}
			return nil, err
		}
		rt.pipelines = append(rt.pipelines, p)
	}
	return rt, nil
}

func (p *pipeline) closeBuffers() {
	for _, n := range p.nodes {
		if d, ok := n.buf.(durableBuffer); ok {
			d.Close()
		}
	}
}

func (rt *Runtime) build(pc *PipelineConfig) (_ *pipeline, err error) {
	if pc.QueueSize <= 0 {
		pc.QueueSize = 8
	}
	p := &pipeline{cfg: pc, rt: rt, byID: map[string]*node{}, log: rt.log.With("pipeline", pc.Name)}
	defer func() {
		if err != nil {
			p.closeBuffers()
		}
	}()
	for _, nc := range pc.Nodes {
		if pr, ok := nc.Component.(Preparer); ok {
			if err := pr.Prepare(); err != nil {
				return nil, fmt.Errorf("%s: %w", nc.ID(), err)
			}
		}
	}
	for _, nc := range pc.Nodes {
		n := &node{p: p, cfg: nc, id: nc.ID(), drops: map[string]*atomic.Int64{}, state: StateStarting}
		if nc.Env != nil {
			nc.Env.node = n
		}
		if nc.Kind == KindTransform {
			n.in = make(chan Batch, pc.QueueSize)
		}
		switch nc.Kind {
		case KindTransform:
			t, ok := nc.Component.(Transform)
			if !ok {
				return nil, fmt.Errorf("%s: not a transform", n.id)
			}
			n.transf = t
		case KindSink:
			s, ok := nc.Component.(Sink)
			if !ok {
				return nil, fmt.Errorf("%s: not a sink", n.id)
			}
			n.sink = s
			n.lat, n.eng = &latency{}, &latency{}
			n.fed = make(chan struct{})
			drop := func(c int) { n.dropped(c, "buffer_full") }
			switch nc.Buffer.Type {
			case "", "memory":
				n.buf = newMemBuffer(nc.Buffer, drop)
			case "disk":
				if rt.opts.NewDiskBuffer == nil {
					return nil, fmt.Errorf("%s: disk buffers are not available in this build", n.id)
				}
				b, err := rt.opts.NewDiskBuffer(nc.Buffer, nc.Env)
				if err != nil {
					return nil, fmt.Errorf("%s: buffer: %w", n.id, err)
				}
				n.buf = b
			default:
				return nil, fmt.Errorf("%s: unknown buffer type %q", n.id, nc.Buffer.Type)
			}
		case KindSource:
			if _, ok := nc.Component.(Source); !ok {
				return nil, fmt.Errorf("%s: not a source", n.id)
			}
		}
		p.nodes = append(p.nodes, n)
		p.byID[n.id] = n
	}
	for _, n := range p.nodes {
		for _, in := range n.cfg.Inputs {
			up, ok := p.byID[in]
			if !ok {
				return nil, fmt.Errorf("%s: unknown input %s", n.id, in)
			}
			up.outs = append(up.outs, n)
			n.ups.Add(1)
		}
	}
	if pc.DeadLetter != "" {
		dl, ok := p.byID[ID(KindSink, pc.DeadLetter)]
		if !ok {
			return nil, fmt.Errorf("dead_letter: unknown sink %q", pc.DeadLetter)
		}
		p.dead = dl
		dl.ups.Add(1) // held until every other node has finished
	}
	for _, n := range p.nodes {
		if n.cfg.Kind != KindSource && n.ups.Load() == 0 {
			n.closeInput() // nothing feeds it
		}
	}
	return p, nil
}

// Run starts every pipeline and blocks until they have all finished: sources
// ended and sinks drained. Cancelling ctx starts a graceful drain: sources
// stop, queued points flow to the sinks; after drainTimeout whatever remains
// is acknowledged with ErrShutdown and counted as dropped.
func (rt *Runtime) Run(ctx context.Context, drainTimeout time.Duration) error {
	rt.started.Store(time.Now().UnixNano())
	hard, cancelHard := context.WithCancel(context.Background())
	defer cancelHard()
	var wg sync.WaitGroup
	for _, p := range rt.pipelines {
		p.soft, p.hard = ctx, hard
		wg.Add(1)
		go func() { defer wg.Done(); p.run() }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	stopSampler := rt.startSampler()
	defer stopSampler()

	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	rt.log.Info("draining", "timeout", drainTimeout.String())
	timer := time.NewTimer(drainTimeout)
	defer timer.Stop()
	select {
	case <-done:
		return nil
	case <-timer.C:
		rt.log.Warn("drain deadline reached; acknowledging the rest as not delivered")
		cancelHard()
		<-done
		return fmt.Errorf("drain deadline of %s exceeded", drainTimeout)
	case <-rt.quit:
		rt.log.Warn("quitting before the drain finished; acknowledging the rest as not delivered")
		cancelHard()
		<-done
		return errors.New("quit before the drain finished")
	}
}

func (p *pipeline) run() {
	var all, others sync.WaitGroup
	for _, n := range p.nodes {
		wg := &others
		if n == p.dead {
			wg = &all
		}
		switch n.cfg.Kind {
		case KindSource:
			wg.Add(1)
			go func() { defer wg.Done(); n.runSource() }()
		case KindTransform:
			wg.Add(1)
			go func() { defer wg.Done(); n.runTransform() }()
		case KindSink:
			wg.Add(1)
			go func() { defer wg.Done(); n.runSinkWriter() }()
		}
	}
	others.Wait()
	if p.dead != nil && p.dead.ups.Add(-1) == 0 {
		p.dead.closeInput()
	}
	all.Wait()
}

func (rt *Runtime) startSampler() func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(historyEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				for _, p := range rt.pipelines {
					for _, n := range p.nodes {
						n.rateIn.sample(n.received.Load(), now)
						n.rateOut.sample(n.emitted.Load()+n.delivered.Load(), now)
					}
				}
				rt.recordHistory(now)
			}
		}
	}()
	return func() { close(stop); wg.Wait() }
}
