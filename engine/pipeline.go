package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// ErrShutdown is the ack error of points the drain deadline cut off.
var ErrShutdown = errors.New("flowd: shut down before delivery")

// PipelineConfig is a validated pipeline: what the config loader produces and
// the runtime executes.
type PipelineConfig struct {
	Name         string
	LatencySLO   time.Duration
	StallTimeout time.Duration
	// QueueSize is the capacity, in batches, of each component's input channel.
	QueueSize  int
	DeadLetter string // sink name, or ""
	Nodes      []*NodeConfig
}

// NodeConfig is one instantiated component and its wiring.
type NodeConfig struct {
	Kind      ComponentKind
	Type      string
	Name      string
	Inputs    []string // IDs ("source.x", "transform.y")
	Component any
	Env       *Env
	Buffer    BufferConfig // sinks only
}

// ID is the node's reference form.
func (n *NodeConfig) ID() string { return ID(n.Kind, n.Name) }

// BufferConfig configures a sink's buffer.
type BufferConfig struct {
	Type      string `hcl:"type" default:"memory" enum:"memory|disk" doc:"memory, or disk for store-and-forward across outages and restarts"`
	MaxSize   Size   `hcl:"max_size" default:"256MiB" doc:"largest backlog in bytes (disk: on disk; memory: estimated)"`
	MaxPoints int    `hcl:"max_points" default:"100000" doc:"largest backlog in points (memory buffer)"`
	WhenFull  string `hcl:"when_full" default:"block" enum:"block|drop_oldest|drop_newest" doc:"block pushes backpressure to the sources; the drop policies are counted in flowd_points_dropped_total"`
	Fsync     string `hcl:"fsync" default:"batch" enum:"batch|interval|never" doc:"disk buffer: when to fsync appended batches"`
	Dir       string `hcl:"dir" doc:"disk buffer directory (default: <data_dir>/buffers/<pipeline>/<sink>)"`
}

type pipeline struct {
	cfg   *PipelineConfig
	rt    *Runtime
	nodes []*node
	byID  map[string]*node
	dead  *node // dead-letter sink
	soft  context.Context
	hard  context.Context
	log   *slog.Logger

	history historyRing
}

// node is a running component.
type node struct {
	p      *pipeline
	cfg    *NodeConfig
	id     string
	in     chan Batch
	outs   []*node
	ups    atomic.Int32 // upstreams still running; the last one closes in
	buf    Buffer
	lat    *latency // sinks
	eng    *latency // sinks: ingest → ack
	transf Transform
	sink   Sink
	fed    chan struct{} // closed when the sink feeder has stopped

	received, emitted, delivered atomic.Int64
	rejected                     atomic.Int64 // points passed to reject, for the delivered count
	lastDelivery                 atomic.Int64 // engine clock
	dropMu                       sync.Mutex
	drops                        map[string]*atomic.Int64

	stateMu   sync.Mutex
	state     State
	lastErr   string
	errAt     time.Time
	logLimit  rateLimiter
	rateIn    rateMeter
	rateOut   rateMeter
	reconnect atomic.Int64
}

func (n *node) setState(s State, err error) {
	n.stateMu.Lock()
	n.state = s
	if err != nil {
		n.lastErr = err.Error()
		n.errAt = time.Now()
	}
	n.stateMu.Unlock()
}

func (n *node) getState() (State, string) {
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	return n.state, n.lastErr
}

func (n *node) dropped(count int, reason string) {
	n.dropMu.Lock()
	c := n.drops[reason]
	if c == nil {
		c = new(atomic.Int64)
		n.drops[reason] = c
	}
	n.dropMu.Unlock()
	c.Add(int64(count))
}

func (n *node) dropCounts() map[string]int64 {
	n.dropMu.Lock()
	defer n.dropMu.Unlock()
	out := make(map[string]int64, len(n.drops))
	for r, c := range n.drops {
		out[r] = c.Load()
	}
	return out
}

func (n *node) reject(points []Point, reason string, err error, done func(error)) {
	if len(points) == 0 {
		if done != nil {
			done(nil)
		}
		return
	}
	n.dropped(len(points), reason)
	n.rejected.Add(int64(len(points)))
	if n.logLimit.allow() {
		n.p.log.Warn("points rejected", "component", n.id, "reason", reason, "points", len(points), "err", err)
	}
	dl := n.p.dead
	if dl == nil || dl == n {
		if done != nil {
			done(nil)
		}
		return
	}
	cp := GetPoints(len(points))
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	for _, p := range points {
		attrs := make(map[string]string, len(p.Attrs)+3)
		for k, v := range p.Attrs {
			attrs[k] = v
		}
		attrs["dead_letter_reason"] = reason
		attrs["dead_letter_component"] = n.id
		if msg != "" {
			attrs["dead_letter_error"] = msg
		}
		p.Attrs = attrs
		cp = append(cp, p)
	}
	// Dead letters take backpressure like any other input: the dead-letter
	// sink's channel stays open until every other node has finished, so this
	// send cannot hit a closed channel; only the drain deadline drops them.
	b := NewBatch(cp, done)
	select {
	case dl.in <- b:
	case <-n.p.hard.Done():
		dl.dropped(len(cp), "shutdown")
		b.Ack(ErrShutdown)
	}
}

// Emit implements Output for source nodes.
func (n *node) Emit(_ context.Context, points []Point, done func(error)) error {
	if len(points) == 0 {
		if done != nil {
			done(nil)
		}
		return nil
	}
	now := Now()
	for i := range points {
		if points[i].Ingest == 0 {
			points[i].Ingest = now
		}
	}
	n.received.Add(int64(len(points)))
	b := NewBatch(points, done)
	if err := n.p.hard.Err(); err != nil {
		n.dropped(len(points), "shutdown")
		b.Ack(ErrShutdown)
		return err
	}
	n.fanout(b)
	return nil
}

// fanout sends b to every downstream node, blocking while one is full.
func (n *node) fanout(b Batch) {
	count := len(b.Points)
	n.emitted.Add(int64(count))
	if len(n.outs) == 0 {
		b.Ack(nil)
		return
	}
	b.retain(len(n.outs) - 1)
	last := len(n.outs) - 1
	for i, o := range n.outs {
		bb := b
		if i < last {
			bb.Points = append(GetPoints(count), b.Points...)
		}
		select {
		case o.in <- bb:
		case <-n.p.hard.Done():
			o.dropped(count, "shutdown")
			bb.Ack(ErrShutdown)
		}
	}
}

// finish tells downstream nodes this upstream is done.
func (n *node) finish() {
	for _, o := range n.outs {
		if o.ups.Add(-1) == 0 {
			close(o.in)
		}
	}
}

func (n *node) connect(ctx context.Context) bool {
	c, ok := n.cfg.Component.(Connector)
	if !ok {
		n.setState(StateConnected, nil)
		return true
	}
	var bo backoff
	for {
		n.setState(StateConnecting, nil)
		err := c.Connect(ctx)
		if err == nil {
			n.setState(StateConnected, nil)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		n.setState(StateFailing, err)
		n.reconnect.Add(1)
		if n.logLimit.allow() {
			n.p.log.Error("connect failed", "component", n.id, "err", err)
		}
		if !bo.wait(ctx) {
			return false
		}
	}
}

func (n *node) close() {
	if c, ok := n.cfg.Component.(Closer); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := c.Close(ctx); err != nil {
			n.p.log.Warn("close failed", "component", n.id, "err", err)
		}
		cancel()
	}
}

func (n *node) runSource() {
	defer n.finish()
	src := n.cfg.Component.(Source)
	ctx := n.p.soft
	var bo backoff
	for ctx.Err() == nil {
		if !n.connect(ctx) {
			break
		}
		err := src.Run(ctx, n)
		if err == nil {
			n.p.log.Info("source ended", "component", n.id)
			break
		}
		if ctx.Err() != nil {
			break
		}
		n.setState(StateFailing, err)
		n.reconnect.Add(1)
		n.p.log.Error("source failed; restarting", "component", n.id, "err", err)
		n.close()
		if !bo.wait(ctx) {
			break
		}
	}
	n.close()
	n.setState(StateStopped, nil)
}

func sameArray(a, b []Point) bool {
	return cap(a) > 0 && cap(b) > 0 && unsafe.SliceData(a) == unsafe.SliceData(b)
}

func (n *node) runTransform() {
	defer n.finish()
	ctx := n.p.hard
	n.setState(StateConnected, nil)
	fl, _ := n.transf.(Flusher)
	var tick <-chan time.Time
	if fl != nil && fl.FlushInterval() > 0 {
		t := time.NewTicker(fl.FlushInterval())
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case b, ok := <-n.in:
			if !ok {
				if fl != nil {
					n.emitOwn(fl.Flush(ctx, true))
				}
				n.close()
				n.setState(StateStopped, nil)
				return
			}
			n.received.Add(int64(len(b.Points)))
			out := n.transf.Process(ctx, b.Points)
			if len(out) == 0 {
				b.Ack(nil)
				continue
			}
			if sameArray(out, b.Points) {
				b.Points = out
			} else {
				pts := append(GetPoints(len(out)), out...)
				PutPoints(b.Points)
				b.Points = pts
			}
			n.fanout(b)
		case <-tick:
			n.emitOwn(fl.Flush(ctx, false))
		}
	}
}

// emitOwn sends points a transform produced on its own (a window closing).
func (n *node) emitOwn(out []Point) {
	if len(out) == 0 {
		return
	}
	now := Now()
	pts := append(GetPoints(len(out)), out...)
	for i := range pts {
		if pts[i].Ingest == 0 {
			pts[i].Ingest = now
		}
	}
	n.fanout(Batch{Points: pts})
}

// runSinkFeeder moves batches from the input channel into the buffer.
func (n *node) runSinkFeeder() {
	for b := range n.in {
		n.received.Add(int64(len(b.Points)))
		if err := n.buf.Push(n.p.hard, b); err != nil {
			n.dropped(len(b.Points), "shutdown")
			b.Ack(ErrShutdown)
		}
	}
	n.buf.CloseInput()
	close(n.fed)
}

// runSinkWriter delivers batches from the buffer.
func (n *node) runSinkWriter() {
	ctx := n.p.hard
	if isDurable(n.buf) {
		// A durable buffer keeps its backlog for the next run: on shutdown
		// the writer stops at once instead of draining it (a sink that is
		// down would otherwise hold the exit until the drain deadline).
		ctx = n.p.soft
	}
	defer func() {
		// Whatever the deadline left behind is counted, never silently lost;
		// a durable buffer keeps it for the next run.
		<-n.fed
		if d, ok := n.buf.(durableBuffer); ok && d.Durable() {
			if err := d.Close(); err != nil {
				n.p.log.Warn("closing buffer", "component", n.id, "err", err)
			}
			n.close()
			n.setState(StateStopped, nil)
			return
		}
		for {
			b, ok := n.buf.TryPop()
			if !ok {
				break
			}
			n.dropped(len(b.Points), "shutdown")
			b.Ack(ErrShutdown)
		}
		n.close()
		n.setState(StateStopped, nil)
	}()
	if !n.connect(ctx) {
		return
	}
	for {
		b, ok := n.buf.Pop(ctx)
		if !ok {
			return
		}
		if !n.deliver(ctx, n.coalesce(b)) {
			return
		}
	}
}

// coalesce merges the batches already queued behind b into one, for a sink
// that writes large batches better (WriteSizer). It never waits for more.
func (n *node) coalesce(b Batch) Batch {
	ws, ok := n.sink.(WriteSizer)
	if !ok || len(b.Points) >= ws.WriteSize() {
		return b
	}
	parts := []Batch{b}
	total := len(b.Points)
	for total < ws.WriteSize() {
		next, ok := n.buf.TryPop()
		if !ok {
			break
		}
		parts = append(parts, next)
		total += len(next.Points)
	}
	if len(parts) == 1 {
		return b
	}
	pts := GetPoints(total)
	for _, p := range parts {
		pts = append(pts, p.Points...)
	}
	return NewBatch(pts, func(err error) {
		for _, p := range parts {
			p.Ack(err)
		}
	})
}

func (n *node) deliver(ctx context.Context, b Batch) bool {
	var bo backoff
	rejected := n.rejected.Load()
	for {
		err := n.sink.Write(ctx, b.Points)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			n.shutdownAck(b)
			return false
		}
		n.setState(StateFailing, err)
		if n.logLimit.allow() {
			n.p.log.Error("write failed; retrying", "component", n.id, "points", len(b.Points), "err", err)
		}
		if !bo.wait(ctx) {
			n.shutdownAck(b)
			return false
		}
	}
	if bo.n > 0 {
		n.setState(StateConnected, nil)
	}
	mono := Now()
	wall := WallFromMono(mono)
	n.lat.observeTS(b.Points, wall)
	n.eng.observeIngest(b.Points, mono)
	// Points the sink rejected during the write (to the dead-letter sink) are
	// counted as dropped, not delivered.
	n.delivered.Add(int64(len(b.Points)) - (n.rejected.Load() - rejected))
	n.lastDelivery.Store(mono)
	b.Ack(nil)
	return true
}

// shutdownAck settles a batch the deadline cut off: counted as dropped,
// unless a durable buffer keeps it for the next run.
func (n *node) shutdownAck(b Batch) {
	if !isDurable(n.buf) {
		n.dropped(len(b.Points), "shutdown")
	}
	b.Ack(ErrShutdown)
}

// backoff is exponential with full jitter, 100 ms to 30 s.
type backoff struct{ n int }

func (b *backoff) wait(ctx context.Context) bool {
	d := 100 * time.Millisecond << min(b.n, 9)
	if d > 30*time.Second {
		d = 30 * time.Second
	}
	b.n++
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// rateLimiter lets one log line through per interval (5 s).
type rateLimiter struct{ last atomic.Int64 }

func (r *rateLimiter) allow() bool {
	now := Now()
	last := r.last.Load()
	if now-last < int64(5*time.Second) && last != 0 {
		return false
	}
	return r.last.CompareAndSwap(last, now)
}

func (p *pipeline) String() string { return fmt.Sprintf("pipeline %q", p.cfg.Name) }
