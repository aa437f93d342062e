// Package window is a transform that aggregates each tag over tumbling
// windows aligned on the points' own ts, so a replay gives the live result.
package window

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is the window transform's configuration.
type Config struct {
	Size        time.Duration `hcl:"size,required" doc:"window length; windows are aligned on multiples of it since the Unix epoch, by the points' ts"`
	Aggregates  []string      `hcl:"aggregates" doc:"any of avg, min, max, sum, count, first, last, stddev (default: [\"avg\"]); each becomes a point tagged <tag>_<aggregate>"`
	KeepTag     bool          `hcl:"keep_tag" doc:"with a single aggregate, keep the tag name instead of appending _<aggregate>"`
	Late        string        `hcl:"late" default:"drop" enum:"drop|fold" doc:"a point older than its tag's open window: drop it (counted, reason late) or fold it into the open window"`
	IdleTimeout time.Duration `hcl:"idle_timeout" doc:"close a tag's open window when no point of that tag arrived for this long (wall time; default: twice size)"`
	MaxTags     int           `hcl:"max_tags" default:"1000000" doc:"most (asset, tag) pairs tracked; beyond that, points of new tags pass unaggregated and are counted in flowd_window_untracked_total (at most 10,000,000)"`
}

// Spec declares the window transform.
var Spec = engine.TransformSpec(engine.Info{
	Type:    "window",
	Summary: "Tumbling windows per tag, aligned on the points' own ts: avg, min, max, sum, count, first, last, stddev.",
	Description: "A window closes when a point of the same tag falls in a later window, when its tag has been idle for " +
		"idle_timeout, or when the pipeline drains; it then emits one point per aggregate, with the window's start as ts, " +
		"the worst quality seen and the attrs of its first point. avg, sum, min, max and stddev (population) use the " +
		"numeric values only (ints and floats); count counts every point; first and last are by ts and keep any kind. " +
		"The input points are acknowledged upstream only once the aggregates of every window they were folded into have " +
		"been acknowledged by the sinks (a late point dropped is acknowledged at once), so a crash never loses an open " +
		"window's inputs: the source sends them again. A source with a flow-control window (MQTT receive_maximum) must " +
		"allow for a window's worth of unacknowledged messages. At most max_tags (asset, tag) pairs are tracked; a point " +
		"of a new tag beyond them passes unaggregated, as it came, and is acknowledged once the sinks took it.",
	Example: `transform "window" "minute" {
  inputs     = [transform.scale]
  size       = "1m"
  aggregates = ["avg", "min", "max"]
}`,
}, New)

type agg uint8

const (
	aggAvg agg = iota
	aggMin
	aggMax
	aggSum
	aggCount
	aggFirst
	aggLast
	aggStddev
)

var aggNames = []string{"avg", "min", "max", "sum", "count", "first", "last", "stddev"}

// acc accumulates one window of one tag.
type acc struct {
	start           int64
	n               int64 // every point
	nNum            int64 // numeric points
	mean, m2        float64
	sum             float64
	isum            int64
	allInt          bool
	min, max        engine.Value
	minF, maxF      float64
	first, last     engine.Value
	firstTS, lastTS int64
	quality         engine.Quality
	attrs           map[string]string
	open            bool
	seen            int64 // engine clock of the last point
	asset, tag      string
	next            *acc
	hash            uint64
	names           []string      // output tags, per aggregate
	holds           []engine.Hold // acknowledgements of the batches folded in
	held            uint64        // the batch (Transform.batch) whose hold is last in holds
}

// Transform aggregates windows.
type Transform struct {
	cfg   Config
	env   *engine.Env
	size  int64
	aggs  []agg
	idle  int64
	fold  bool
	seed  maphash.Seed
	state map[uint64]*acc
	out   []engine.Point
	late  int
	now   func() int64
	batch uint64 // Process calls so far: one hold per batch per window
	track bool   // the engine settles holds (known at the first Process)

	count     int // entries in state: at most cfg.MaxTags
	tags      prometheus.Gauge
	untracked prometheus.Counter
}

// maxTags bounds max_tags, as cov's: about 5.5 GB of state at its limit
// with three aggregates (BenchmarkStateBytesPerTag: 550 bytes per tag).
const maxTags = 10_000_000

// New validates the config.
func New(c *Config, env *engine.Env) (engine.Transform, error) {
	var bad engine.Problems
	if c.Size <= 0 {
		bad.Add("size", errors.New("must be positive"))
	}
	t := &Transform{cfg: *c, env: env, size: int64(c.Size), fold: c.Late == "fold", seed: maphash.MakeSeed(),
		state: map[uint64]*acc{}, now: engine.Now}
	names := c.Aggregates
	if len(names) == 0 {
		names = []string{"avg"}
	}
	for _, n := range names {
		i := slices.Index(aggNames, n)
		if i < 0 {
			bad.Add("aggregates", fmt.Errorf("%q is not one of %s", n, strings.Join(aggNames, ", ")))
			continue
		}
		if slices.Contains(t.aggs, agg(i)) {
			bad.Add("aggregates", fmt.Errorf("%q is listed twice", n))
			continue
		}
		t.aggs = append(t.aggs, agg(i))
	}
	if c.KeepTag && len(names) > 1 {
		bad.Add("keep_tag", errors.New("needs a single aggregate"))
	}
	// The state grows to max_tags entries, each its names and a window.
	bad.Between("max_tags", int64(c.MaxTags), 1, maxTags)
	if err := bad.Err(); err != nil {
		return nil, err
	}
	t.idle = int64(c.IdleTimeout)
	if t.idle <= 0 {
		t.idle = 2 * t.size
	}
	t.tags = prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowd_window_tags", Help: "(asset, tag) pairs the window transform tracks."})
	t.untracked = prometheus.NewCounter(prometheus.CounterOpts{Name: "flowd_window_untracked_total",
		Help: "Points passed unaggregated because max_tags pairs were already tracked."})
	env.MustRegister(t.tags, t.untracked)
	return t, nil
}

// FlushInterval is how often idle windows are looked for.
func (t *Transform) FlushInterval() time.Duration {
	return min(max(time.Duration(t.idle)/4, 100*time.Millisecond), 5*time.Second)
}

// windowStart aligns ts down to a multiple of size.
func (t *Transform) windowStart(ts int64) int64 {
	s := ts - ts%t.size
	if ts < 0 && ts%t.size != 0 {
		s -= t.size
	}
	return s
}

func (t *Transform) hash(asset, tag string) uint64 {
	return bits.RotateLeft64(maphash.String(t.seed, asset), 17) ^ maphash.String(t.seed, tag)
}

// lookup finds or adds the entry of p's (asset, tag); nil when it is new
// and max_tags are already tracked.
func (t *Transform) lookup(p *engine.Point) *acc {
	h := t.hash(p.Asset, p.Tag)
	for a := t.state[h]; a != nil; a = a.next {
		if a.tag == p.Tag && a.asset == p.Asset {
			return a
		}
	}
	if t.count >= t.cfg.MaxTags {
		return nil
	}
	t.count++
	a := &acc{asset: p.Asset, tag: p.Tag, hash: h}
	a.names = make([]string, len(t.aggs))
	for i, g := range t.aggs {
		if t.cfg.KeepTag {
			a.names[i] = p.Tag
		} else {
			a.names[i] = p.Tag + "_" + aggNames[g]
		}
	}
	a.next = t.state[h]
	t.state[h] = a
	return a
}

// Process folds points into their windows and returns the windows that
// closed. A point of a new tag beyond max_tags passes as it is: its batch's
// acknowledgement waits for its delivery as for any point returned.
func (t *Transform) Process(ctx context.Context, in []engine.Point) []engine.Point {
	t.out = t.out[:0]
	if t.batch == 0 {
		t.track = t.env.AcksTracked()
	}
	t.batch++
	now := t.now()
	untracked := 0
	for i := range in {
		p := &in[i]
		a := t.lookup(p)
		if a == nil {
			untracked++
			t.out = append(t.out, *p)
			continue
		}
		a.seen = now
		if !a.open {
			a.reset(t.windowStart(p.TS))
		} else if p.TS < a.start {
			if !t.fold {
				t.late++
				continue
			}
		} else if p.TS >= a.start+t.size {
			t.emit(a, now)
			a.reset(t.windowStart(p.TS))
		}
		a.add(p)
		if t.track && a.held != t.batch {
			a.held = t.batch
			a.holds = append(a.holds, t.env.Hold())
		}
	}
	if t.late > 0 {
		t.env.Drop(t.late, "late")
		t.late = 0
	}
	if untracked > 0 {
		t.untracked.Add(float64(untracked))
	}
	t.tags.Set(float64(t.count))
	return t.out
}

// Flush closes idle windows, or every window when final.
func (t *Transform) Flush(ctx context.Context, final bool) []engine.Point {
	t.out = t.out[:0]
	now := t.now()
	var closing []*acc
	for h, head := range t.state {
		var keep *acc
		for a := head; a != nil; {
			next := a.next
			if a.open && (final || now-a.seen >= t.idle) {
				closing = append(closing, a)
			}
			if a.open || (!final && now-a.seen < t.idle) {
				a.next = keep
				keep = a
			} else {
				t.count--
			}
			a = next
		}
		if keep == nil {
			delete(t.state, h)
		} else {
			t.state[h] = keep
		}
	}
	// Deterministic order: by window start, then asset and tag.
	slices.SortFunc(closing, func(x, y *acc) int {
		if x.start != y.start {
			if x.start < y.start {
				return -1
			}
			return 1
		}
		if c := strings.Compare(x.asset, y.asset); c != 0 {
			return c
		}
		return strings.Compare(x.tag, y.tag)
	})
	for _, a := range closing {
		t.emit(a, now)
	}
	t.tags.Set(float64(t.count))
	return t.out
}

func (a *acc) reset(start int64) {
	*a = acc{asset: a.asset, tag: a.tag, next: a.next, hash: a.hash, names: a.names, seen: a.seen,
		start: start, open: true, allInt: true, holds: a.holds[:0]}
}

func (a *acc) add(p *engine.Point) {
	if a.n == 0 || p.TS < a.firstTS {
		a.first, a.firstTS = p.Value, p.TS
		if a.n == 0 {
			a.attrs = p.Attrs
		}
	}
	if a.n == 0 || p.TS >= a.lastTS {
		a.last, a.lastTS = p.Value, p.TS
	}
	a.n++
	if p.Quality > a.quality {
		a.quality = p.Quality
	}
	if !p.Value.IsNumeric() {
		return
	}
	x, _ := p.Value.Float64()
	a.nNum++
	if p.Value.Kind() == engine.KindInt {
		i, _ := p.Value.Int64()
		a.isum += i
	} else {
		a.allInt = false
	}
	a.sum += x
	d := x - a.mean
	a.mean += d / float64(a.nNum)
	a.m2 += d * (x - a.mean)
	if a.nNum == 1 || x < a.minF {
		a.min, a.minF = p.Value, x
	}
	if a.nNum == 1 || x > a.maxF {
		a.max, a.maxF = p.Value, x
	}
}

// emit appends the window's aggregates and marks it closed. The new points'
// ingest time is now (engine clock): the window's wait is not engine latency.
//
// The window's holds go with the points returned by this call: its inputs
// are acknowledged once its aggregates are.
func (t *Transform) emit(a *acc, now int64) {
	a.open = false
	for i, h := range a.holds {
		t.env.Attach(h)
		a.holds[i] = engine.Hold{}
	}
	a.holds = a.holds[:0]
	a.held = 0
	if a.n == 0 {
		return
	}
	for i, g := range t.aggs {
		var v engine.Value
		switch g {
		case aggCount:
			v = engine.Int(a.n)
		case aggFirst:
			v = a.first
		case aggLast:
			v = a.last
		default:
			if a.nNum == 0 {
				continue // no numeric value in this window
			}
			switch g {
			case aggAvg:
				v = engine.Float(a.sum / float64(a.nNum))
			case aggMin:
				v = a.min
			case aggMax:
				v = a.max
			case aggSum:
				if a.allInt {
					v = engine.Int(a.isum)
				} else {
					v = engine.Float(a.sum)
				}
			case aggStddev:
				v = engine.Float(math.Sqrt(a.m2 / float64(a.nNum)))
			}
		}
		t.out = append(t.out, engine.Point{Asset: a.asset, Tag: a.names[i], Value: v, Quality: a.quality, TS: a.start, Ingest: now, Attrs: a.attrs})
	}
	a.attrs = nil
}
