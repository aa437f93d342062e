// Package conformance holds the test suites every source (RunSource) and
// every sink (RunSink) must pass, run from each component's own tests
// against a real peer. A component describes itself with a small harness:
// its spec, the attributes of its block, how to put input into its peer or
// read back what its peer received, and where the peer listens so the suite
// can put a fault proxy in front of it. The suites build the component from
// HCL through the config loader and run it in a real engine Runtime beside
// probe components the test controls, so what they check is what flowd does.
//
// A check that a component cannot support is skipped with the reason its
// harness gives; a test server whose variable is not set skips the test,
// and fails it under make test and in CI (Require).
package conformance

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/codecs"
	"github.com/flowd/flowd/e2e/harness"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/config"
)

// Require is harness.Require: the variable, or a skip (a failure under
// make test and in CI).
func Require(t testing.TB, name string) string {
	t.Helper()
	return harness.Require(t, name)
}

// Peer is where a component's server listens, for the fault proxy.
type Peer struct {
	// Upstream is the server's host:port.
	Upstream string
	// Listen is where the proxy must listen ("": a free loopback port), for
	// servers that tell clients where to connect next (a Kafka broker's
	// advertised listener).
	Listen string
}

// proxy puts a fault proxy in front of p. A fixed listen address may be
// held by another package's test for a while (packages run in parallel):
// wait for it.
func (p Peer) proxy(t *testing.T) *harness.FaultProxy {
	t.Helper()
	if p.Listen == "" {
		return harness.NewFaultProxy(t, "conformance", p.Upstream)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		ln, err := net.Listen("tcp", p.Listen)
		if err == nil {
			ln.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fault proxy address %s stays taken: %v", p.Listen, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return harness.NewFaultProxyAt(t, "conformance", p.Listen, p.Upstream)
}

// Timeouts of the suites: generous, since the shared servers and a busy
// machine can be slow; a component that works meets them by far.
const (
	waitFor = 60 * time.Second
	// grace is how long past its drain deadline a pipeline may take to end
	// after its context was cancelled: sources must end by then...
	grace = 5 * time.Second
	// ...while a sink may also take the engine's 10 s to close its
	// connection to a peer that does not answer.
	sinkGrace = 15 * time.Second
)

var logger = slog.New(slog.NewTextHandler(io.Discard, nil))

// pipe is one running pipeline.
type pipe struct {
	t      *testing.T
	rt     *engine.Runtime
	cancel context.CancelFunc
	done   chan error
	drain  time.Duration
	grace  time.Duration
	once   sync.Once
	err    error
}

// start loads src (one pipeline) with the registry and runs it until stop.
func start(t *testing.T, reg *engine.Registry, src string, drain, grace time.Duration) *pipe {
	t.Helper()
	dir := t.TempDir()
	l := config.NewLoader(config.Options{Registry: reg.WithCodecs(codecs.All()), Logger: logger, DataDir: dir})
	cfg, diags := l.LoadSource("conformance.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatalf("configuration:\n%s\n%s", src, diags.Error())
	}
	rt, err := engine.New(cfg.Pipelines, engine.Options{Logger: logger, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &pipe{t: t, rt: rt, cancel: cancel, done: make(chan error, 1), drain: drain, grace: grace}
	go func() { p.done <- rt.Run(ctx, drain) }()
	t.Cleanup(func() { p.stop() })
	return p
}

// stop cancels the pipeline's context and waits for it to end: past its
// drain deadline and a grace period the test fails (a component that does
// not honour its context holds a shutdown forever).
func (p *pipe) stop() error {
	p.once.Do(func() {
		began := time.Now()
		p.cancel()
		select {
		case p.err = <-p.done:
			p.t.Logf("the pipeline ended %s after its context was cancelled (drain timeout %s)", time.Since(began).Round(time.Millisecond), p.drain)
		case <-time.After(p.drain + p.grace):
			p.err = fmt.Errorf("still running %s after its context ended", p.drain+p.grace)
			p.t.Errorf("pipeline still running %s after its context was cancelled (drain timeout %s): a component does not end with its context",
				p.drain+p.grace, p.drain)
		}
	})
	return p.err
}

// component is the status of one component of the pipeline.
func (p *pipe) component(id string) engine.ComponentStatus {
	for _, ps := range p.rt.Status().Pipelines {
		for _, c := range ps.Components {
			if c.ID == id {
				return c
			}
		}
	}
	p.t.Fatalf("no component %s", id)
	return engine.ComponentStatus{}
}

// checkCounts asserts that the pipeline's counters add up once it has
// ended: every point a source took in was delivered, filtered or dropped
// (counted once, by reason), none is still pending. What a source dropped
// itself (Env.Drop, Env.Reject) is in its received count as in its dropped
// counts, so it needs no correction here.
func (p *pipe) checkCounts() {
	p.t.Helper()
	for _, ps := range p.rt.Status().Pipelines {
		c := ps.Points
		if c.In != c.Delivered+c.Dropped+c.Filtered || c.Pending != 0 {
			p.t.Errorf("counters do not add up after the pipeline ended: in %d != delivered %d + dropped %d + filtered %d (pending %d); components %+v",
				c.In, c.Delivered, c.Dropped, c.Filtered, c.Pending, ps.Components)
		}
	}
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// eventually polls cond every 50 ms until it holds or waitFor passes.
func eventually(t *testing.T, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: "+format, append([]any{waitFor}, args...)...)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// seq returns the values from..to-1.
func seq(from, to int64) []int64 {
	out := make([]int64, 0, to-from)
	for v := from; v < to; v++ {
		out = append(out, v)
	}
	return out
}

// valueOf is the integer a point carries (a codec may read a number as a
// float).
func valueOf(p engine.Point) (int64, bool) {
	switch p.Value.Kind() {
	case engine.KindInt:
		return p.Value.Int64()
	case engine.KindFloat:
		f, _ := p.Value.Float64()
		if f == float64(int64(f)) {
			return int64(f), true
		}
	}
	return 0, false
}

// values is a set of point values with how often each was seen.
type values struct {
	mu sync.Mutex
	n  map[int64]int
	// good counts points of quality good, any value (polling sources).
	good int
}

func (v *values) add(pts []engine.Point) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.n == nil {
		v.n = map[int64]int{}
	}
	for _, p := range pts {
		if p.Quality == engine.Good {
			v.good++
		}
		if x, ok := valueOf(p); ok {
			v.n[x]++
		}
	}
}

func (v *values) goodCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.good
}

func (v *values) has(x int64) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.n[x] > 0
}

// missing lists the values of want not seen.
func (v *values) missing(want []int64) []int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []int64
	for _, x := range want {
		if v.n[x] == 0 {
			out = append(out, x)
		}
	}
	return out
}

// seen lists the values of want that were seen.
func (v *values) seen(want []int64) []int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []int64
	for _, x := range want {
		if v.n[x] > 0 {
			out = append(out, x)
		}
	}
	return out
}

// short prints at most a few values of a list.
func short(xs []int64) string {
	xs = append([]int64(nil), xs...)
	sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
	var b strings.Builder
	fmt.Fprintf(&b, "%d values", len(xs))
	if len(xs) > 0 {
		b.WriteString(" (")
		for i, x := range xs {
			if i == 8 {
				b.WriteString(" …")
				break
			}
			if i > 0 {
				b.WriteString(" ")
			}
			fmt.Fprint(&b, x)
		}
		b.WriteString(")")
	}
	return b.String()
}
