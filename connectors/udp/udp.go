// Package udp is the udp source: one payload per datagram, decoded like the
// mqtt and http sources' payloads. UDP has no flow control, so when the
// pipeline is full datagrams are dropped, and counted, instead of waiting.
package udp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowd/flowd/common/payload"
	"github.com/flowd/flowd/engine"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is the udp source's configuration.
type Config struct {
	Listen     string                 `hcl:"listen" default:"127.0.0.1:9281" doc:"address to listen on (host:port); loopback unless you mean to expose it"`
	Format     string                 `hcl:"format" default:"json" doc:"a codec that decodes (docs/codecs) or map. json: a point object, an array of them, or a tag map; map: the map attribute picks fields out of any JSON object; raw: the datagram as a string value (needs tag)"`
	Asset      string                 `hcl:"asset" doc:"asset of points that carry none"`
	Tag        string                 `hcl:"tag" doc:"tag of points that carry none (raw: of every point)"`
	Map        map[string]engine.Expr `hcl:"map" doc:"format map: asset, tag, value (or values: an object whose entries become one point each), quality and ts, each an expression over payload (the decoded JSON datagram)"`
	MaxPayload engine.Size            `hcl:"max_payload" default:"64KiB" doc:"larger datagrams are rejected (a UDP datagram holds at most 65,507 bytes)"`
	Queue      int                    `hcl:"queue" default:"10000" doc:"points held between the socket and the pipeline; when full, datagrams are dropped and counted (reason full); at most 1,000,000"`
	engine.Batching
	ReadBuffer engine.Size `hcl:"read_buffer" default:"4MiB" doc:"socket receive buffer (SO_RCVBUF, capped by net.core.rmem_max): what the kernel holds during a burst (at most 1GiB)"`
}

// Spec declares the udp source.
var Spec = engine.SourceSpec(engine.Info{
	Type:    "udp",
	Summary: "Takes points from UDP datagrams (one payload per datagram); at most once: UDP has no backpressure.",
	Description: "Each datagram is decoded with format (the same decoder as the mqtt and http sources) and queued for the pipeline. " +
		"UDP cannot tell a sender to slow down: while the pipeline is full (a slow sink with a blocking buffer) the queue " +
		"fills and further datagrams are dropped and counted in flowd_points_dropped_total{reason=\"full\"}, as are datagrams " +
		"the kernel drops when its receive buffer overflows (not visible to flowd: see netstat -su). Use a sink buffer " +
		"(disk) to ride out outages, or the http source where every point must arrive. Datagrams that do not decode are " +
		"counted (reason decode) and sent to the dead-letter sink. flowd_udp_datagrams_total{result} counts datagrams: " +
		"ok, rejected, dropped.",
	Example: `source "udp" "meters" {
  listen = "127.0.0.1:9281"
  format = "json"
}`,
}, New)

// Source reads datagrams.
type Source struct {
	cfg  Config
	env  *engine.Env
	dec  *payload.Decoder
	addr atomic.Pointer[string]

	datagrams          *prometheus.CounterVec
	ok, rejected, drop prometheus.Counter
}

// Limits checked by validate: the queue holds decoded points, the read
// buffer is kernel memory.
const (
	maxQueue      = 1_000_000
	maxReadBuffer = 1 << 30
)

// New validates the config and builds the source.
func New(c *Config, env *engine.Env) (engine.Source, error) {
	var bad engine.Problems
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad.Addf("listen", "%v (want host:port)", err)
	}
	if c.MaxPayload < 1 || c.MaxPayload > 65536 {
		bad.Addf("max_payload", "must be between 1 byte and 64KiB")
	}
	bad.Between("queue", int64(c.Queue), 1, maxQueue)
	c.Batching.Check(&bad)
	if c.ReadBuffer < 0 || c.ReadBuffer > maxReadBuffer {
		bad.Addf("read_buffer", "must be between 0 and 1GiB")
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	dec, err := payload.New(payload.Options{Format: c.Format, Codecs: env.Codecs, MaxPayload: int(c.MaxPayload), Values: true,
		Asset: c.Asset, Tag: c.Tag, Map: c.Map})
	if err != nil {
		return nil, err
	}
	s := &Source{cfg: *c, env: env, dec: dec}
	s.datagrams = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flowd_udp_datagrams_total", Help: "Datagrams read by the udp source, by result (ok, rejected: did not decode, dropped: the pipeline was full).",
	}, []string{"result"})
	s.ok, s.rejected, s.drop = s.datagrams.WithLabelValues("ok"), s.datagrams.WithLabelValues("rejected"), s.datagrams.WithLabelValues("dropped")
	env.MustRegister(s.datagrams)
	return s, nil
}

// Addr is the bound address while running.
func (s *Source) Addr() string {
	if p := s.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// Run reads datagrams until ctx ends. The reader never waits for the
// pipeline: it queues decoded points while the queue has room and drops
// (counting) otherwise; a batcher emits from the queue.
func (s *Source) Run(ctx context.Context, out engine.Output) error {
	pc, err := net.ListenPacket("udp", s.cfg.Listen)
	if err != nil {
		s.env.SetState(engine.StateFailing, err)
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	if uc, ok := pc.(*net.UDPConn); ok && s.cfg.ReadBuffer > 0 {
		_ = uc.SetReadBuffer(int(s.cfg.ReadBuffer)) // best effort: the kernel caps it
	}
	addr := pc.LocalAddr().String()
	s.addr.Store(&addr)
	s.env.SetState(engine.StateConnected, nil)
	q := newQueue(s.cfg.Queue)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.batch(ctx, out, q)
	}()
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	err = s.read(pc, q)
	pc.Close()
	q.close()
	wg.Wait()
	if ctx.Err() != nil {
		s.env.SetState(engine.StateStopped, nil)
		return nil
	}
	s.env.SetState(engine.StateFailing, err)
	return err
}

func (s *Source) read(pc net.PacketConn, q *queue) error {
	buf := make([]byte, 65536)
	var pts []engine.Point
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		pts, err = s.dec.Decode(pts[:0], "", buf[:n], time.Now().UnixNano())
		if err != nil {
			s.reject(from, buf[:n], err)
			q.rejected()
			continue
		}
		if !q.push(pts) {
			s.drop.Inc()
			s.env.Drop(len(pts), "full")
			continue
		}
		s.ok.Inc()
	}
}

func (s *Source) reject(from net.Addr, data []byte, err error) {
	s.rejected.Inc()
	p := engine.RawPoint("udp", data, map[string]string{"udp_from": from.String()})
	s.env.Reject([]engine.Point{p}, "decode", fmt.Errorf("datagram from %s: %w", from, err))
}

// batch emits queued points in batches of up to batch_size, or linger old,
// and an empty batch for dead letters that no points would carry. The
// pipeline's acks have nobody to go back to: UDP is at most once. At
// shutdown it empties the queue through Emit, which counts the points it
// can no longer take as dropped (shutdown); the queue closes when ctx ends,
// so this ends.
func (s *Source) batch(ctx context.Context, out engine.Output, q *queue) {
	for {
		pts, ok := q.take(ctx, s.cfg.BatchSize, s.cfg.Linger)
		if ok || len(pts) > 0 {
			n := len(pts)
			_ = out.Emit(ctx, pts, func(error) { q.release(n) })
		}
		if !ok {
			return
		}
	}
}

// queue holds points between the reader and the batcher. Its capacity
// counts points from the moment they are queued until the pipeline has
// acknowledged them, so a blocked sink fills it and the reader drops.
type queue struct {
	mu     sync.Mutex
	cond   chan struct{} // signalled when points arrive or the queue closes
	pts    []engine.Point
	held   int // queued + emitted and not yet acknowledged
	max    int
	closed bool
	// dead: datagrams were rejected since the last take; their dead letters
	// (Env.Reject) travel with the next Emit.
	dead bool
}

func newQueue(max int) *queue { return &queue{max: max, cond: make(chan struct{}, 1)} }

// push queues a datagram's points whole, or reports false when they do not fit.
func (q *queue) push(pts []engine.Point) bool {
	q.mu.Lock()
	if q.held+len(pts) > q.max {
		q.mu.Unlock()
		return false
	}
	q.pts = append(q.pts, pts...)
	q.held += len(pts)
	q.mu.Unlock()
	q.signal()
	return true
}

// rejected notes a rejected datagram, so that take returns (empty) when no
// points follow.
func (q *queue) rejected() {
	q.mu.Lock()
	q.dead = true
	q.mu.Unlock()
	q.signal()
}

func (q *queue) signal() {
	select {
	case q.cond <- struct{}{}:
	default:
	}
}

func (q *queue) release(n int) {
	q.mu.Lock()
	q.held -= n
	q.mu.Unlock()
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// take waits for points, then up to linger for more, and returns at most
// max of them; with no points but rejected datagrams it returns none at
// once. ok is false once the queue is closed and empty.
func (q *queue) take(ctx context.Context, max int, linger time.Duration) ([]engine.Point, bool) {
	var deadline <-chan time.Time
	for {
		q.mu.Lock()
		n, closed := len(q.pts), q.closed
		if n >= max || (n > 0 && (closed || deadline == nil && linger == 0)) {
			return q.cut(max), true
		}
		if n == 0 && q.dead {
			q.dead = false
			q.mu.Unlock()
			return nil, true
		}
		q.mu.Unlock()
		if closed {
			return nil, false
		}
		if n > 0 && deadline == nil {
			t := time.NewTimer(linger)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-q.cond:
		case <-deadline:
			q.mu.Lock()
			return q.cut(max), true
		case <-ctx.Done():
			q.close()
		}
	}
}

// cut removes up to max points from the front; called with mu held.
func (q *queue) cut(max int) []engine.Point {
	defer q.mu.Unlock()
	q.dead = false // the Emit of these points carries the dead letters
	n := min(len(q.pts), max)
	out := engine.GetPoints(n)
	out = append(out, q.pts[:n]...)
	rest := copy(q.pts, q.pts[n:])
	clear(q.pts[rest:])
	q.pts = q.pts[:rest]
	return out
}
