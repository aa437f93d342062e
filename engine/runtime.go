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

// Runtime runs pipelines. Apply changes the set while it runs: pipelines
// whose configuration is unchanged keep running untouched.
type Runtime struct {
	opts     Options
	log      *slog.Logger
	started  atomic.Int64 // unix nanoseconds; set by Run, read by Status
	regOnce  sync.Once
	reg      prometheus.Gatherer // the engine's own counters
	tapMu    sync.Mutex          // serialises attaching and detaching taps
	quit     chan struct{}
	quitOnce sync.Once

	// mu guards the fields below. pipelines is replaced, never changed in
	// place, so a copy taken under mu can be read without it.
	mu        sync.Mutex
	pipelines []*pipeline
	soft      context.Context // Run's context; nil before Run
	hard      context.Context // cancelled when the drain deadline passes
	active    int             // pipelines running, plus one per Apply under way
	idle      chan struct{}   // closed when active drops to 0: Run ends
	finished  bool            // idle is closed; Apply is refused
}

// list is the current pipelines.
func (rt *Runtime) list() []*pipeline {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.pipelines
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
	rt := &Runtime{opts: opts, log: opts.Logger, quit: make(chan struct{}), idle: make(chan struct{})}
	ps, err := rt.buildAll(cfgs, opts.Metrics)
	if err != nil {
		return nil, err
	}
	rt.pipelines = ps
	return rt, nil
}

// buildAll builds pipelines; on an error it releases the disk buffers already
// opened, so a corrected configuration (or a rollback) can open them again.
func (rt *Runtime) buildAll(cfgs []*PipelineConfig, metrics *prometheus.Registry) ([]*pipeline, error) {
	var ps []*pipeline
	for _, pc := range cfgs {
		p, err := rt.build(pc)
		if err != nil {
			for _, p := range ps {
				p.closeBuffers()
			}
			return nil, err
		}
		p.metrics = metrics
		ps = append(ps, p)
	}
	return ps, nil
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
	p := &pipeline{cfg: pc, rt: rt, byID: map[string]*node{}, log: rt.log.With("pipeline", pc.Name), history: &historyRing{}}
	defer func() {
		if err != nil {
			p.closeBuffers()
		}
	}()
	if err := prepareComponents(pc); err != nil {
		return nil, err
	}
	for _, nc := range pc.Nodes {
		n, err := rt.newNode(p, nc)
		if err != nil {
			return nil, err
		}
		p.nodes = append(p.nodes, n)
		p.byID[n.id] = n
	}
	if err := p.wire(); err != nil {
		return nil, err
	}
	return p, nil
}

// prepareComponents lets every component check its settings before any node
// is built, so a bad component fails the pipeline before buffers are opened.
func prepareComponents(pc *PipelineConfig) error {
	for _, nc := range pc.Nodes {
		if pr, ok := nc.Component.(Preparer); ok {
			if err := pr.Prepare(); err != nil {
				return fmt.Errorf("%s: %w", nc.ID(), err)
			}
		}
	}
	return nil
}

// newNode builds the node for nc and checks that its component implements
// the interface its kind needs. The node is not yet part of p: on error the
// caller's cleanup only closes buffers of nodes that were fully built.
func (rt *Runtime) newNode(p *pipeline, nc *NodeConfig) (*node, error) {
	n := &node{p: p, cfg: nc, id: nc.ID(), drops: map[string]*atomic.Int64{}, state: StateStarting}
	if nc.Env != nil {
		nc.Env.node = n
	}
	if nc.Kind == KindTransform {
		n.in = make(chan Batch, p.cfg.QueueSize)
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
		if err := rt.attachBuffer(n); err != nil {
			return nil, err
		}
	case KindSource:
		if _, ok := nc.Component.(Source); !ok {
			return nil, fmt.Errorf("%s: not a source", n.id)
		}
	}
	return n, nil
}

// attachBuffer gives sink node n the buffer its config asks for; points the
// buffer sheds are counted against n as buffer_full.
func (rt *Runtime) attachBuffer(n *node) error {
	nc := n.cfg
	drop := func(c int) { n.dropped(c, "buffer_full") }
	switch nc.Buffer.Type {
	case "", "memory":
		n.buf = newMemBuffer(nc.Buffer, drop)
	case "disk":
		if rt.opts.NewDiskBuffer == nil {
			return fmt.Errorf("%s: disk buffers are not available in this build", n.id)
		}
		b, err := rt.opts.NewDiskBuffer(nc.Buffer, nc.Env)
		if err != nil {
			return fmt.Errorf("%s: buffer: %w", n.id, err)
		}
		n.buf = b
	default:
		return fmt.Errorf("%s: unknown buffer type %q", n.id, nc.Buffer.Type)
	}
	return nil
}

// wire connects every node to its inputs and the dead-letter sink, and
// closes the input of nodes nothing feeds so they finish on their own.
func (p *pipeline) wire() error {
	for _, n := range p.nodes {
		for _, in := range n.cfg.Inputs {
			up, ok := p.byID[in]
			if !ok {
				return fmt.Errorf("%s: unknown input %s", n.id, in)
			}
			up.outs = append(up.outs, n)
			n.ups.Add(1)
		}
	}
	if p.cfg.DeadLetter != "" {
		dl, ok := p.byID[ID(KindSink, p.cfg.DeadLetter)]
		if !ok {
			return fmt.Errorf("dead_letter: unknown sink %q", p.cfg.DeadLetter)
		}
		p.dead = dl
		dl.ups.Add(1) // held until every other node has finished
	}
	for _, n := range p.nodes {
		if n.cfg.Kind != KindSource && n.ups.Load() == 0 {
			n.closeInput() // nothing feeds it
		}
	}
	return nil
}

// Run starts every pipeline and blocks until they have all finished: sources
// ended and sinks drained. Cancelling ctx starts a graceful drain: sources
// stop, queued points flow to the sinks; after drainTimeout whatever remains
// is acknowledged with ErrShutdown and counted as dropped.
func (rt *Runtime) Run(ctx context.Context, drainTimeout time.Duration) error {
	rt.started.Store(time.Now().UnixNano())
	hard, cancelHard := context.WithCancel(context.Background())
	defer cancelHard()
	rt.mu.Lock()
	if rt.soft != nil {
		rt.mu.Unlock()
		return errors.New("runtime already ran")
	}
	rt.soft, rt.hard = ctx, hard
	for _, p := range rt.pipelines {
		rt.startLocked(p)
	}
	if rt.active == 0 {
		rt.finished = true
		close(rt.idle)
	}
	rt.mu.Unlock()
	stopSampler := rt.startSampler()
	defer stopSampler()

	select {
	case <-rt.idle:
		return nil
	case <-ctx.Done():
	}
	rt.log.Info("draining", "timeout", drainTimeout.String())
	timer := time.NewTimer(drainTimeout)
	defer timer.Stop()
	select {
	case <-rt.idle:
		return nil
	case <-timer.C:
		rt.log.Warn("drain deadline reached; acknowledging the rest as not delivered")
		cancelHard()
		<-rt.idle
		return fmt.Errorf("drain deadline of %s exceeded", drainTimeout)
	case <-rt.quit:
		rt.log.Warn("quitting before the drain finished; acknowledging the rest as not delivered")
		cancelHard()
		<-rt.idle
		return errors.New("quit before the drain finished")
	}
}

// startLocked runs p under contexts of its own, derived from Run's, so Apply
// can drain it alone.
func (rt *Runtime) startLocked(p *pipeline) {
	p.soft, p.stopSoft = context.WithCancel(rt.soft)
	p.hard, p.stopHard = context.WithCancel(rt.hard)
	p.done = make(chan struct{})
	rt.active++
	go func() {
		p.run()
		p.stopSoft()
		p.stopHard()
		close(p.done)
		rt.release()
	}()
}

// release ends one unit of activity (a pipeline, or an Apply).
func (rt *Runtime) release() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.active--; rt.active == 0 {
		rt.finished = true
		close(rt.idle)
	}
}

// drain stops ps as Run's shutdown does: sources stop, queued points reach
// the sinks, and after timeout (or Quit) the rest is acknowledged as not
// delivered. Durable buffers are closed and component Close is called
// before it returns, so a replacement may open the same files.
func (rt *Runtime) drain(ps []*pipeline, timeout time.Duration) error {
	if len(ps) == 0 {
		return nil
	}
	for _, p := range ps {
		p.stopSoft()
	}
	all := make(chan struct{})
	go func() {
		for _, p := range ps {
			<-p.done
		}
		close(all)
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var err error
	select {
	case <-all:
		return nil
	case <-timer.C:
		err = fmt.Errorf("drain deadline of %s exceeded", timeout)
	case <-rt.quit:
		err = errors.New("quit before the drain finished")
	}
	for _, p := range ps {
		p.stopHard()
	}
	<-all
	return err
}

// Change says what Apply does, by pipeline name.
type Change struct {
	Kept, Stopped, Started []string
	// Drained is the final status of the stopped pipelines.
	Drained Status
	// RolledBack: a new pipeline could not be built, and the stopped ones
	// run their previous configuration again.
	RolledBack bool
}

// plan splits cfgs into the running pipelines to keep (by name) and the
// configurations to build, and lists the running ones to stop.
func plan(old []*pipeline, cfgs []*PipelineConfig) (ch Change, kept map[string]*pipeline, build []*PipelineConfig, stop []*pipeline) {
	running := map[string]*pipeline{}
	for _, p := range old {
		running[p.cfg.Name] = p
	}
	kept = map[string]*pipeline{}
	for _, pc := range cfgs {
		if p := running[pc.Name]; p != nil && p.cfg.Fingerprint != "" && p.cfg.Fingerprint == pc.Fingerprint {
			kept[pc.Name] = p
			ch.Kept = append(ch.Kept, pc.Name)
			continue
		}
		build = append(build, pc)
		ch.Started = append(ch.Started, pc.Name)
	}
	for _, p := range old {
		if kept[p.cfg.Name] == nil {
			stop = append(stop, p)
			ch.Stopped = append(ch.Stopped, p.cfg.Name)
		}
	}
	return ch, kept, build, stop
}

// Plan says what Apply(cfgs) would do now, doing nothing.
func (rt *Runtime) Plan(cfgs []*PipelineConfig) Change {
	ch, _, _, _ := plan(rt.list(), cfgs)
	return ch
}

// Apply changes the running pipelines to cfgs, as Vector's topology reload
// does: a pipeline whose Fingerprint equals the running one's keeps running
// untouched (components, buffers, counters); the others of the running set
// (changed or removed) drain as at shutdown, all within drainTimeout, and
// then the changed and added ones are built and started. Stopping before
// building means a replacement never holds a disk buffer, state file or
// client identity at the same time as its predecessor: they are closed
// (and a state file saved) before the replacement opens them.
//
// When one of the new pipelines cannot be built (what validation cannot see,
// like a disk buffer that does not open), the pipelines stopped for it start
// again from their previous configuration (RolledBack) and the error is
// returned. Metrics is the registry cfgs' components registered in. Apply
// must not be called concurrently with itself.
func (rt *Runtime) Apply(cfgs []*PipelineConfig, metrics *prometheus.Registry, drainTimeout time.Duration) (Change, error) {
	rt.mu.Lock()
	if rt.soft == nil || rt.finished {
		rt.mu.Unlock()
		return Change{}, errors.New("runtime is not running")
	}
	rt.active++ // Run must not end while pipelines are being swapped
	old := rt.pipelines
	rt.mu.Unlock()
	defer rt.release()

	ch, kept, build, stop := plan(old, cfgs)
	if len(stop) == 0 && len(build) == 0 {
		return ch, nil
	}
	if err := rt.drain(stop, drainTimeout); err != nil {
		rt.log.Error("drain of the previous pipelines incomplete", "err", err)
	}
	ch.Drained = statusOf(stop)
	started, err := rt.buildAll(build, metrics)
	if err != nil {
		// Back to what ran: the kept pipelines never stopped; the stopped
		// ones start again from their previous configuration.
		for _, p := range stop {
			np, rerr := rt.build(p.cfg)
			if rerr != nil {
				rt.swap(keepOrder(old, kept))
				return ch, fmt.Errorf("%w; cannot restart pipeline %s either: %v", err, p.cfg.Name, rerr)
			}
			np.metrics, np.history = p.metrics, p.history
			kept[p.cfg.Name] = np
			rt.startNew(np)
		}
		rt.swap(keepOrder(old, kept))
		ch.RolledBack = true
		return ch, err
	}
	prev := map[string]*pipeline{}
	for _, p := range stop {
		prev[p.cfg.Name] = p
	}
	for _, p := range started {
		if q := prev[p.cfg.Name]; q != nil {
			p.history = q.history // a pipeline's graph goes on across its reload
		}
		kept[p.cfg.Name] = p
		rt.startNew(p)
	}
	next := make([]*pipeline, 0, len(cfgs))
	for _, pc := range cfgs {
		next = append(next, kept[pc.Name])
	}
	rt.swap(next)
	return ch, nil
}

// keepOrder lists old's pipelines in their order, each replaced by its entry
// in by (pipelines missing there are left out).
func keepOrder(old []*pipeline, by map[string]*pipeline) []*pipeline {
	out := make([]*pipeline, 0, len(old))
	for _, p := range old {
		if q := by[p.cfg.Name]; q != nil {
			out = append(out, q)
		}
	}
	return out
}

func (rt *Runtime) startNew(p *pipeline) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.startLocked(p)
}

func (rt *Runtime) swap(ps []*pipeline) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.pipelines = ps
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
				for _, p := range rt.list() {
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
