package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
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
	// QueueSize is the capacity, in batches, of each transform's input channel.
	QueueSize  int
	DeadLetter string // sink name, or ""
	Nodes      []*NodeConfig
	// Fingerprint identifies everything the pipeline was built from (its
	// block's text and the variable values, environment variables and files
	// it read). A reload keeps a running pipeline whose fingerprint is equal;
	// "" never equals anything.
	Fingerprint string
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
	MaxPoints int    `hcl:"max_points" default:"100000" doc:"largest backlog in points (memory buffer; at most 100,000,000)"`
	WhenFull  string `hcl:"when_full" default:"block" enum:"block|drop_oldest|drop_newest" doc:"block pushes backpressure to the sources; the drop policies are counted in flowd_points_dropped_total"`
	Fsync     string `hcl:"fsync" default:"batch" enum:"batch|interval|never" doc:"disk buffer: when to fsync appended batches"`
	Dir       string `hcl:"dir" doc:"disk buffer directory (default: <data_dir>/buffers/<pipeline>/<sink>)"`
	// MaxInFlight bounds the writes a pipelining sink has in flight.
	MaxInFlight int `hcl:"max_in_flight" default:"0" doc:"writes the sink keeps in flight at once, acknowledged upstream in order (0: the sink's default — kafka 16, eventhubs over kafka 8, cassandra 2, others 1; at most 1000)"`
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
	// stopSoft and stopHard drain this pipeline alone (Apply); done is
	// closed when it has finished. Set when it starts.
	stopSoft, stopHard context.CancelFunc
	done               chan struct{}
	// metrics is the registry its components registered in; /metrics
	// serves each pipeline's series from its own (see Runtime.gatherer).
	metrics *prometheus.Registry

	history *historyRing // shared with its replacement after a reload
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
	fed    chan struct{} // sinks: closed when the input has closed (no more pushes)

	received, emitted, delivered atomic.Int64
	cur                          atomic.Pointer[ack] // transforms: the batch in Process
	pendMu                       sync.Mutex
	pendDL                       []Point       // sources: dead letters awaiting the next Emit
	onAck                        []func(error) // transforms: registered in the current call
	attached                     []*ack        // transforms: holds attached in the current call
	hasPend                      atomic.Bool
	lastDelivery                 atomic.Int64 // engine clock
	writing                      atomic.Int64 // sinks: ingest of the oldest batch taken from the buffer and not yet acknowledged, 0 if none
	dropMu                       sync.Mutex
	drops                        map[string]*atomic.Int64

	stateMu   sync.Mutex
	state     State
	lastErr   string
	logLimit  LogLimiter // one line per 5 s
	rateIn    rateMeter
	rateOut   rateMeter
	reconnect atomic.Int64

	taps atomic.Pointer[[]*tapSub] // nil unless someone taps this node (tap.go)
	// filteredN and dropsN (n's own drops, see droppedIn) account for what
	// transforms filter (filtered.go).
	filteredN, dropsN atomic.Int64
}

func (n *node) setState(s State, err error) {
	n.stateMu.Lock()
	n.state = s
	switch {
	case err != nil:
		n.lastErr = RedactError(err) // shown by /api/status and the status page
	case s == StateConnected:
		// Connected again: the trouble is over, the logs keep its history.
		// Starting and reconnecting without an error keep the last one shown.
		n.lastErr = ""
	}
	n.stateMu.Unlock()
}

// resume marks a source as running (again) but keeps its last error: a
// restarted source has not shown yet that the cause is gone; it clears the
// error when it reports itself connected.
func (n *node) resume() {
	n.stateMu.Lock()
	n.state = StateConnected
	n.stateMu.Unlock()
}

func (n *node) getState() (State, string) {
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	return n.state, n.lastErr
}

// receivedOwn counts points a source took in and then dropped or rejected
// itself (Env.Drop, Env.Reject) before any Emit: they were received all the
// same, so its received = emitted + its own drops, and a pipeline's in =
// delivered + dropped + pending holds. Other kinds counted them on input.
func (n *node) receivedOwn(count int) {
	if n.cfg.Kind == KindSource {
		n.received.Add(int64(count))
	}
}

// dropped counts points n dropped itself.
func (n *node) dropped(count int, reason string) {
	n.droppedIn(count, reason)
	n.dropsN.Add(int64(count))
}

// droppedIn counts points meant for n that an upstream could not hand it.
// They are n's drops, but not ones its Process made: countFiltered, which
// runs while upstreams keep sending, must not take them off what it filtered.
func (n *node) droppedIn(count int, reason string) {
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

// reject counts points as dropped for reason and sends annotated copies to
// the dead-letter sink. a, when not nil, is the acknowledgement of the source
// data they came from: the dead letters hold it like any other delivery, so
// the source's ack waits until the dead-letter sink has taken them.
func (n *node) reject(points []Point, reason string, err error, a *ack) {
	if cp := n.deadLetters(points, reason, err); cp != nil {
		n.sendDead(cp, a)
	}
}

// deadLetters counts and logs rejected points and returns annotated copies
// for the dead-letter sink, or nil when there is none.
func (n *node) deadLetters(points []Point, reason string, err error) []Point {
	if len(points) == 0 {
		return nil
	}
	n.dropped(len(points), reason)
	if n.logAllowed() {
		n.p.log.Warn("points rejected", "component", n.id, "reason", reason, "points", len(points), "err", err)
	}
	dl := n.p.dead
	if dl == nil || dl == n {
		return nil
	}
	cp := GetPoints(len(points))
	for _, p := range points {
		cp = append(cp, n.deadLetter(p, reason, err))
	}
	return cp
}

// deadLetter annotates a copy of p with why it was rejected.
func (n *node) deadLetter(p Point, reason string, err error) Point {
	attrs := make(map[string]string, len(p.Attrs)+3)
	for k, v := range p.Attrs {
		attrs[k] = v
	}
	attrs["dead_letter_reason"] = reason
	attrs["dead_letter_component"] = n.id
	if err != nil {
		attrs["dead_letter_error"] = err.Error()
	}
	p.Attrs = attrs
	return p
}

// sendDead hands dead letters to the dead-letter sink, holding a.
func (n *node) sendDead(cp []Point, a *ack) {
	dl := n.p.dead
	// Dead letters take backpressure like any other input: the dead-letter
	// sink's channel stays open until every other node has finished, so this
	// send cannot hit a closed channel; only the drain deadline drops them.
	b := Batch{Points: cp, ack: a}
	b.retain(1)
	if err := dl.push(n.p.hard, b); err != nil {
		dl.dropped(len(cp), "shutdown")
		b.Ack(ErrShutdown)
	}
}

// push hands a batch straight to a sink's buffer: the one queue between a
// sink's inputs and its writer. It blocks (or drops, per when_full) while
// the buffer is full, until ctx ends.
func (n *node) push(ctx context.Context, b Batch) error {
	n.received.Add(int64(len(b.Points)))
	return n.buf.Push(ctx, b)
}

// closeInput ends a node's input once its last upstream has finished.
func (n *node) closeInput() {
	if n.buf != nil {
		n.buf.CloseInput()
		close(n.fed)
		return
	}
	close(n.in)
}

// pendingDead holds a source's dead letters until its next Emit, whose
// acknowledgement they then share.
func (n *node) pendingDead(points []Point, reason string, err error) {
	cp := n.deadLetters(points, reason, err)
	if cp == nil {
		return
	}
	n.pendMu.Lock()
	if n.pendDL == nil {
		n.pendDL = cp
	} else {
		n.pendDL = append(n.pendDL, cp...)
		PutPoints(cp)
	}
	n.hasPend.Store(true)
	n.pendMu.Unlock()
}

// Emit implements Output for source nodes. Dead letters the source reported
// since its last Emit travel with this batch: its done waits for them too.
func (n *node) Emit(ctx context.Context, points []Point, done func(error)) error {
	var dead []Point
	if n.hasPend.Load() {
		n.pendMu.Lock()
		dead, n.pendDL = n.pendDL, nil
		n.hasPend.Store(false)
		n.pendMu.Unlock()
	}
	if len(points) == 0 && dead == nil {
		PutPoints(points)
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
	if dead != nil {
		n.sendDead(dead, b.ack)
	}
	if len(points) == 0 {
		b.Ack(nil)
		return nil
	}
	if err := n.p.hard.Err(); err != nil {
		n.dropped(len(points), "shutdown")
		b.Ack(ErrShutdown)
		return err
	}
	return n.fanout(ctx, b)
}

// fanout sends b to every downstream node, blocking while one is full. When
// ctx ends while it would block, the copies not yet sent are counted as
// dropped and acknowledged with the context's error, which is returned.
func (n *node) fanout(ctx context.Context, b Batch) error {
	count := len(b.Points)
	n.emitted.Add(int64(count))
	if t := n.taps.Load(); t != nil {
		n.tapOut(t, b.Points)
	}
	if len(n.outs) == 0 {
		b.Ack(nil)
		return nil
	}
	b.retain(len(n.outs) - 1)
	last := len(n.outs) - 1
	var err error
	reason := "shutdown" // of the copies not sent once err is set
	for i, o := range n.outs {
		bb := b
		if i < last {
			bb.Points = append(GetPoints(count), b.Points...)
		}
		if err != nil {
			o.droppedIn(count, reason)
			bb.Ack(err)
			continue
		}
		if o.buf != nil {
			if perr := o.push(ctx, bb); perr != nil {
				err = perr
				reason = emitDropReason(ctx)
				if n.p.hard.Err() != nil {
					err, reason = ErrShutdown, "shutdown"
				}
				o.droppedIn(count, reason)
				bb.Ack(err)
			}
			continue
		}
		// Give up only when the send would block: a source flushing its
		// last batch with an ended context still hands it on if there is room.
		select {
		case o.in <- bb:
			continue
		default:
		}
		select {
		case o.in <- bb:
		case <-ctx.Done():
			err, reason = ctx.Err(), emitDropReason(ctx)
			o.droppedIn(count, reason)
			bb.Ack(err)
		case <-n.p.hard.Done():
			err, reason = ErrShutdown, "shutdown"
			o.droppedIn(count, reason)
			bb.Ack(err)
		}
	}
	return err
}

// finish tells downstream nodes this upstream is done.
func (n *node) finish() {
	for _, o := range n.outs {
		if o.ups.Add(-1) == 0 {
			o.closeInput()
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
		if n.logAllowed() {
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
		n.resume() // a source connects inside Run
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
	// Dead letters reported after the last Emit still go out.
	n.Emit(n.p.hard, nil, nil)
	n.close()
	n.setState(StateStopped, nil)
}

func sameArray(a, b []Point) bool {
	return cap(a) > 0 && cap(b) > 0 && unsafe.SliceData(a) == unsafe.SliceData(b)
}

func (n *node) runTransform() {
	finished := false
	defer func() {
		if !finished {
			n.finish()
		}
	}()
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
				// Downstream inputs close first, so the sinks drain (or the
				// deadline settles) what this transform passed while its
				// Close waits for those acknowledgements (cov's state).
				finished = true
				n.finish()
				n.close()
				n.setState(StateStopped, nil)
				return
			}
			n.received.Add(int64(len(b.Points)))
			drops := n.dropsN.Load()
			n.cur.Store(b.ack)
			out := n.transf.Process(ctx, b.Points)
			n.cur.Store(nil)
			n.countFiltered(len(b.Points), len(out), drops)
			b = n.bind(b)
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
			n.fanout(ctx, b)
		case <-tick:
			n.emitOwn(fl.Flush(ctx, false))
		}
	}
}

// bind gives b the callbacks (OnAck) and holds (Attach) the transform
// registered during the call that produced it: they run, and are settled,
// with b's merged outcome once every sink has settled b's points.
func (n *node) bind(b Batch) Batch {
	if len(n.onAck) == 0 && len(n.attached) == 0 {
		return b
	}
	fns, holds, up := n.onAck, n.attached, b.ack
	n.onAck, n.attached = nil, nil
	nb := NewBatch(b.Points, func(err error) {
		for _, fn := range fns {
			fn(err)
		}
		for _, h := range holds {
			h.settle(err)
		}
		if up != nil {
			up.settle(err)
		}
	})
	return nb
}

// emitOwn sends points a transform produced on its own (a window closing).
func (n *node) emitOwn(out []Point) {
	b := n.bind(Batch{})
	if len(out) == 0 {
		b.Ack(nil)
		return
	}
	now := Now()
	pts := append(GetPoints(len(out)), out...)
	for i := range pts {
		if pts[i].Ingest == 0 {
			pts[i].Ingest = now
		}
	}
	b.Points = pts
	n.fanout(n.p.hard, b)
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
		if d, ok := n.buf.(durableBuffer); ok && d.Durable() {
			<-n.fed
			if err := d.Close(); err != nil {
				n.p.log.Warn("closing buffer", "component", n.id, "err", err)
			}
			n.close()
			n.setState(StateStopped, nil)
			return
		}
		// Settle the rest now and what upstreams still push until they
		// end (Pop wakes on each push and ends once the input is closed
		// and empty): a source that waits for its acks before it ends
		// (mqtt, kafka) must not be held until a timeout of its own.
		for {
			b, ok := n.buf.Pop(context.Background())
			if !ok {
				break
			}
			n.dropped(len(b.Points), "shutdown")
			b.Ack(ErrShutdown)
		}
		n.close()
		n.setState(StateStopped, nil)
	}()
	if !n.connectUnlessIdle(ctx) {
		return
	}
	if as, ok := n.sink.(AsyncSink); ok {
		max := n.cfg.Buffer.MaxInFlight
		if max <= 0 {
			max = as.MaxInFlight()
		}
		if max > 1 {
			n.runAsync(ctx, as, max)
			return
		}
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

// connectUnlessIdle connects the sink, but gives up as soon as its input has
// closed (shutdown) with nothing buffered: a sink that never connected then
// holds nothing, and the exit does not wait for the drain deadline.
func (n *node) connectUnlessIdle(ctx context.Context) bool {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-n.fed:
			if n.buf.Stats().Points == 0 {
				cancel()
			}
		case <-cctx.Done():
		}
	}()
	return n.connect(cctx)
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

// deliver writes b until every point is settled: delivered, rejected (routed
// to the dead-letter sink holding b's acknowledgement, counted once) or, on
// shutdown, dropped. Only the points a Write asks to retry are written again.
func (n *node) deliver(ctx context.Context, b Batch) bool {
	if len(b.Points) > 0 {
		n.writing.Store(b.Points[0].Ingest)
		defer n.writing.Store(0)
	}
	var bo backoff
	pts := b.Points
	var outcome error
	for {
		err := n.sink.Write(ctx, pts)
		if err == nil {
			n.settleDelivered(pts)
			break
		}
		var we *WriteError
		if errors.As(err, &we) && (len(we.rejected) > 0 || len(we.retry) > 0) {
			var rejected bool
			pts, rejected = n.settle(pts, we, b.ack)
			if rejected {
				outcome = errRejectedBy(n.id)
			}
			if len(pts) == 0 {
				break
			}
			if err = we.Err; err == nil {
				err = errors.New("points to retry")
			}
		}
		if ctx.Err() != nil {
			n.shutdownAck(b, len(pts))
			return false
		}
		n.setState(StateFailing, err)
		if n.logAllowed() {
			n.p.log.Error("write failed; retrying", "component", n.id, "points", len(pts), "err", err)
		}
		if !bo.wait(ctx) {
			n.shutdownAck(b, len(pts))
			return false
		}
	}
	if bo.n > 0 {
		n.setState(StateConnected, nil)
	}
	b.Ack(outcome)
	return true
}

func errRejectedBy(id string) error { return fmt.Errorf("%s: %w", id, ErrRejected) }

// oldestUnacked is the age of the oldest point the sink holds and has not
// had acknowledged (buffered or being written), 0 when it holds none. Unlike
// the latency of acknowledged points, it keeps rising while a sink is stuck.
func (n *node) oldestUnacked(now int64) time.Duration {
	oldest := n.buf.Stats().OldestIngest
	if w := n.writing.Load(); w != 0 && (oldest == 0 || w < oldest) {
		oldest = w
	}
	if oldest == 0 {
		return 0
	}
	return time.Duration(now - oldest)
}

// settleDelivered counts and measures delivered points.
func (n *node) settleDelivered(pts []Point) {
	if len(pts) == 0 {
		return
	}
	mono := Now()
	n.lat.observeTS(pts, WallFromMono(mono))
	n.eng.observeIngest(pts, mono)
	n.delivered.Add(int64(len(pts)))
	n.lastDelivery.Store(mono)
	if t := n.taps.Load(); t != nil {
		n.tapOut(t, pts)
	}
}

// Point outcomes within one settle.
const (
	outDelivered uint8 = iota
	outRetry
	outRejected
)

// settle applies a WriteError to pts: rejected points go to the dead-letter
// sink (holding a), delivered ones are counted, and the points to retry are
// moved to the front of pts, in order, and returned.
func (n *node) settle(pts []Point, we *WriteError, a *ack) (retry []Point, rejected bool) {
	out := make([]uint8, len(pts))
	if len(we.retry) > 0 {
		for _, i := range we.retry {
			if i >= 0 && i < len(pts) {
				out[i] = outRetry
			}
		}
	} else if we.Err != nil {
		for i := range out {
			out[i] = outRetry
		}
	}
	var dead []Point
	for _, r := range we.rejected {
		if r.Index < 0 || r.Index >= len(pts) || out[r.Index] == outRejected {
			continue // a sink's mistake must not reject a point twice
		}
		out[r.Index] = outRejected
		rejected = true
		n.dropped(1, r.Reason)
		if n.logAllowed() {
			n.p.log.Warn("points rejected", "component", n.id, "reason", r.Reason, "err", r.Err)
		}
		if dl := n.p.dead; dl != nil && dl != n {
			if dead == nil {
				dead = GetPoints(len(we.rejected))
			}
			dead = append(dead, n.deadLetter(pts[r.Index], r.Reason, r.Err))
		}
	}
	if dead != nil {
		n.sendDead(dead, a)
	}
	// Delivered points are measured in runs, before the ones to retry are
	// moved to the front.
	k, run := 0, -1
	for i := range pts {
		if out[i] == outDelivered {
			if run < 0 {
				run = i
			}
			continue
		}
		if run >= 0 {
			n.settleDelivered(pts[run:i])
			run = -1
		}
	}
	if run >= 0 {
		n.settleDelivered(pts[run:])
	}
	for i := range pts {
		if out[i] == outRetry {
			pts[k] = pts[i]
			k++
		}
	}
	return pts[:k], rejected
}

// shutdownAck settles a batch the deadline cut off: counted as dropped,
// unless a durable buffer keeps it for the next run.
func (n *node) shutdownAck(b Batch, left int) {
	if !isDurable(n.buf) {
		n.dropped(left, "shutdown")
	}
	b.Ack(ErrShutdown)
}

// backoff is Backoff from backoffBase (100 ms) to 30 s.
type backoff struct{ n int }

// backoffBase is a variable so that tests of retry logic run quickly.
var backoffBase = 100 * time.Millisecond

func (b *backoff) wait(ctx context.Context) bool {
	d := Backoff(backoffBase, min(backoffBase<<9, 30*time.Second), b.n)
	b.n++
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// logAllowed reports whether the node may write a warning or error line now
// (one per 5 s).
func (n *node) logAllowed() bool {
	ok, _ := n.logLimit.Allow(Now())
	return ok
}

func (p *pipeline) String() string { return fmt.Sprintf("pipeline %q", p.cfg.Name) }
