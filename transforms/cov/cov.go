// Package cov is the change-of-value transform: per (asset, tag) it passes a
// point only when its value moved beyond a deadband, its quality changed, or
// a heartbeat is due. Time is the points' own ts, so a replay gives the same
// result as the live run.
package cov

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"math/bits"
	"os"
	"path"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is the cov transform's configuration.
type Config struct {
	Deadband  float64       `hcl:"deadband" default:"0" doc:"a numeric value passes when |value - last reported| is strictly greater than this (0: any change)"`
	Mode      string        `hcl:"mode" default:"absolute" enum:"absolute|percent" doc:"absolute, or percent of |last reported| (any change passes when the last reported value is 0)"`
	Heartbeat time.Duration `hcl:"heartbeat" doc:"pass an unchanged value when its ts is at least this long after the last reported one (0: never)"`
	StateTTL  time.Duration `hcl:"state_ttl" default:"24h" doc:"forget a tag unseen for this long (by the points' ts); its next value passes as a first value"`
	MaxTags   int           `hcl:"max_tags" default:"1000000" doc:"most (asset, tag) pairs tracked; beyond that, points of new tags pass unfiltered and are counted in flowd_cov_untracked_total (at most 10,000,000)"`
	StateFile string        `hcl:"state_file" doc:"keep the last reported values that every sink acknowledged in this file (relative to the data directory) across restarts, so a restart does not re-send every tag and a crash loses no change"`
	StateSave time.Duration `hcl:"state_save_interval" default:"5s" doc:"how often the state file is rewritten while running (with acknowledged values only); it is also written when the pipeline stops"`
	Override  []Override    `hcl:"override,block" doc:"per-tag settings; the first block whose match fits a point wins"`
}

// Override changes the settings for the tags matching a glob.
type Override struct {
	Match     string          `hcl:"match,required" doc:"glob (path.Match syntax) on \"asset/tag\": \"line1/*\", \"*/temperature\", \"*/valve_?\""`
	Deadband  float64         `hcl:"deadband" default:"-1" doc:"deadband for these tags (unset, shown as -1: the transform's)"`
	Mode      string          `hcl:"mode" enum:"absolute|percent" doc:"mode for these tags (unset: the transform's)"`
	Heartbeat time.Duration   `hcl:"heartbeat" doc:"heartbeat for these tags (unset or 0: the transform's)"`
	Pos       engine.BlockPos // where the block was written, for errors
}

// Spec declares the cov transform.
var Spec = engine.TransformSpec(engine.Info{
	Type:    "cov",
	Summary: "Change of value: passes a tag's point only when it moved beyond a deadband, its quality changed, or a heartbeat is due.",
	Description: "Per (asset, tag): the first value passes; a numeric value (ints and floats compare as numbers) passes when " +
		"its distance from the last reported value is strictly greater than the deadband (in percent mode, that percentage " +
		"of |last reported|, and any change when the last reported value is 0); a non-numeric value passes when it differs; " +
		"a quality change always passes; with a heartbeat, a value whose ts is at least heartbeat after the last reported " +
		"one passes. Time is the points' own ts, so a replay gives the same result. Points held back count as acknowledged.",
	Example: `transform "cov" "changes" {
  inputs    = [source.line1]
  deadband  = 0.5
  mode      = "absolute"
  heartbeat = "60s"

  override {
    match    = "*/valve_*"
    deadband = 0
  }
}`,
}, New)

type params struct {
	deadband  engine.Deadband
	heartbeat int64
}

// The state is keyed by a hash of (asset, tag): a uint64 map lookup is much
// cheaper than hashing a two-string struct key. Entries keep their names, and
// the rare collision chains through next.
type entry struct {
	asset   string
	tag     string
	next    *entry
	hash    uint64
	last    engine.Value
	quality engine.Quality
	lastTS  int64 // ts of the last reported point
	seenTS  int64 // ts of the last point seen
	par     *params

	// The last reported point (above) may still be in flight; the committed
	// one is the newest report every sink acknowledged. Only committed state
	// is saved, so a crash never leaves the saved state ahead of the sinks.
	seq        uint64 // reports made
	ackSeq     uint64 // the committed report
	ackLast    engine.Value
	ackQuality engine.Quality
	ackTS      int64
	committed  bool // ack* hold a committed report
	// fellBack: the newest report was not delivered, so the last reported
	// point is the committed one and follows it as older reports in flight
	// commit; with nothing committed, the next point passes.
	fellBack bool
}

// report is one point cov passed, awaiting its acknowledgement.
type report struct {
	e   *entry
	seq uint64
	v   engine.Value
	q   engine.Quality
	ts  int64
}

// pending is the reports of one batch; the engine settles it (OnAck) from a
// sink's goroutine, and Process applies it on the transform's own.
type pending struct {
	t    *Transform
	reps []report
	err  error
	fn   func(error)
}

func (b *pending) settle(err error) {
	t := b.t
	b.err = err
	t.mu.Lock()
	t.settled = append(t.settled, b)
	t.mu.Unlock()
	t.outstanding.Add(-1)
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Transform filters unchanged values.
type Transform struct {
	cfg       Config
	env       *engine.Env
	def       params
	overrides []params
	state     map[uint64]*entry
	count     int
	seed      maphash.Seed
	ttl       int64
	maxTS     int64
	sweptTS   int64
	sweeps    int // sweeps done (tests)
	statePath string
	readOnly  bool // the state file is read, never written (a dry run)
	loaded    bool
	tracked   bool // the engine settles OnAck callbacks (known at the first Process)
	dirty     bool // committed state changed since the last save
	savedAt   time.Time

	mu          sync.Mutex
	settled     []*pending // settled, not yet applied
	spare       []*pending
	free        []*pending
	outstanding atomic.Int64
	wake        chan struct{}

	tags      prometheus.Gauge
	untracked prometheus.Counter
}

// maxTags bounds max_tags: about 2.6 GB of state at its limit
// (BenchmarkStateBytesPerTag).
const maxTags = 10_000_000

// New validates the config.
func New(c *Config, env *engine.Env) (engine.Transform, error) {
	var bad engine.Problems
	if c.Deadband < 0 || math.IsNaN(c.Deadband) {
		bad.Add("deadband", errors.New("must not be negative"))
	}
	// The state grows to max_tags entries, each its key, last value and time.
	bad.Between("max_tags", int64(c.MaxTags), 1, maxTags)
	if c.StateTTL <= 0 {
		bad.Add("state_ttl", errors.New("must be positive"))
	}
	for i, o := range c.Override {
		// Each error points at the attribute inside its override block.
		if _, err := path.Match(o.Match, ""); err != nil {
			bad = append(bad, &engine.FieldError{Field: "override", Offset: -1, Range: o.Pos.At("match"),
				Err: fmt.Errorf("block %d: match %q: %w", i+1, o.Match, err)})
		}
		if (o.Deadband < 0 && o.Deadband != -1) || math.IsNaN(o.Deadband) {
			bad = append(bad, &engine.FieldError{Field: "override", Offset: -1, Range: o.Pos.At("deadband"),
				Err: fmt.Errorf("block %d: deadband must not be negative", i+1)})
		}
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	t := &Transform{cfg: *c, env: env, state: map[uint64]*entry{}, seed: maphash.MakeSeed(), ttl: int64(c.StateTTL),
		wake: make(chan struct{}, 1)}
	t.def = params{deadband: engine.Deadband{Value: c.Deadband, Percent: c.Mode == "percent"}, heartbeat: int64(c.Heartbeat)}
	for _, o := range c.Override {
		p := t.def
		if o.Deadband >= 0 {
			p.deadband.Value = o.Deadband
		}
		if o.Mode != "" {
			p.deadband.Percent = o.Mode == "percent"
		}
		if o.Heartbeat > 0 {
			p.heartbeat = int64(o.Heartbeat)
		}
		t.overrides = append(t.overrides, p)
	}
	if c.StateFile != "" {
		t.statePath = c.StateFile
		if !filepath.IsAbs(t.statePath) {
			t.statePath = filepath.Join(env.DataDir, t.statePath)
		}
	}
	t.tags = prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowd_cov_tags", Help: "(asset, tag) pairs the change-of-value transform tracks."})
	t.untracked = prometheus.NewCounter(prometheus.CounterOpts{Name: "flowd_cov_untracked_total",
		Help: "Points passed unfiltered because max_tags pairs were already tracked."})
	env.MustRegister(t.tags, t.untracked)
	return t, nil
}

// paramsFor resolves the settings of a new (asset, tag).
func (t *Transform) paramsFor(asset, tag string) *params {
	if len(t.overrides) > 0 {
		name := asset + "/" + tag
		for i, o := range t.cfg.Override {
			if ok, _ := path.Match(o.Match, name); ok {
				return &t.overrides[i]
			}
		}
	}
	return &t.def
}

// Process keeps the points that pass, in place. What it passes is committed
// once the sinks acknowledge it (engine.Env.OnAck).
func (t *Transform) Process(ctx context.Context, in []engine.Point) []engine.Point {
	if !t.loaded {
		t.loaded = true
		t.tracked = t.env.AcksTracked()
		t.load()
		t.savedAt = time.Now()
	}
	t.apply()
	var pb *pending
	if t.tracked {
		pb = t.newPending()
	}
	out := in[:0]
	maxTS := t.maxTS
	for i := range in {
		p := &in[i]
		if p.TS > maxTS {
			maxTS = p.TS
		}
		if e, ok := t.pass(p); ok {
			out = append(out, *p)
			if e == nil {
				continue
			}
			if pb != nil {
				pb.reps = append(pb.reps, report{e: e, seq: e.seq, v: p.Value, q: p.Quality, ts: p.TS})
			} else {
				e.commit(e.seq, p.Value, p.Quality, p.TS)
			}
		}
	}
	if pb != nil {
		if len(pb.reps) == 0 {
			t.free = append(t.free, pb)
		} else {
			t.outstanding.Add(1)
			t.env.OnAck(pb.fn)
		}
	}
	t.maxTS = maxTS
	if maxTS-t.sweptTS > t.ttl/4 {
		t.sweep()
	}
	t.tags.Set(float64(t.count))
	if t.statePath != "" && !t.readOnly && t.dirty && t.cfg.StateSave > 0 && time.Since(t.savedAt) >= t.cfg.StateSave {
		if err := t.save(); err != nil {
			t.log().Warn("cannot save cov state", "err", err)
		}
	}
	return out
}

func (t *Transform) newPending() *pending {
	if n := len(t.free); n > 0 {
		pb := t.free[n-1]
		t.free = t.free[:n-1]
		return pb
	}
	pb := &pending{t: t}
	pb.fn = pb.settle
	return pb
}

// apply folds the settled batches into the state: a report every sink took
// (or rejected for good) is committed; one that was not delivered is
// forgotten, so the same point, sent again by its source, passes again.
func (t *Transform) apply() {
	t.mu.Lock()
	done := t.settled
	t.settled, t.spare = t.spare[:0], done
	t.mu.Unlock()
	for _, pb := range done {
		ok := pb.err == nil || errors.Is(pb.err, engine.ErrRejected)
		for _, r := range pb.reps {
			e := r.e
			switch {
			case ok:
				if e.commit(r.seq, r.v, r.q, r.ts) {
					t.dirty = true
					if e.fellBack {
						e.last, e.quality, e.lastTS = r.v, r.q, r.ts
					}
				}
			case e.seq == r.seq:
				// The newest report failed: fall back to the committed one.
				e.fellBack = true
				if e.committed {
					e.last, e.quality, e.lastTS = e.ackLast, e.ackQuality, e.ackTS
				}
			}
		}
		clear(pb.reps)
		pb.reps, pb.err = pb.reps[:0], nil
		t.free = append(t.free, pb)
	}
	clear(done)
}

// commit records report seq as acknowledged unless a newer one already is.
func (e *entry) commit(seq uint64, v engine.Value, q engine.Quality, ts int64) bool {
	if e.committed && seq <= e.ackSeq {
		return false
	}
	e.ackSeq, e.ackLast, e.ackQuality, e.ackTS, e.committed = seq, v, q, ts, true
	return true
}

func (t *Transform) hash(asset, tag string) uint64 {
	return bits.RotateLeft64(maphash.String(t.seed, asset), 17) ^ maphash.String(t.seed, tag)
}

// lookup finds the entry of (asset, tag), or nil.
func (t *Transform) lookup(h uint64, asset, tag string) *entry {
	for e := t.state[h]; e != nil; e = e.next {
		if e.tag == tag && e.asset == asset {
			return e
		}
	}
	return nil
}

// insert adds a new entry for p; nil when max_tags are already tracked.
// At the bound it sweeps only once the points' clock has moved on by
// sweepStep since the last sweep: a sweep visits every tag, and with the
// clock where it was it cannot free any, so a flood of new tag names would
// otherwise cost a whole sweep per point.
func (t *Transform) insert(h uint64, p *engine.Point) *entry {
	if t.count >= t.cfg.MaxTags {
		if t.maxTS-t.sweptTS >= t.sweepStep() {
			t.sweep()
		}
		if t.count >= t.cfg.MaxTags {
			return nil
		}
	}
	e := &entry{asset: p.Asset, tag: p.Tag, hash: h, par: t.paramsFor(p.Asset, p.Tag)}
	e.next = t.state[h]
	t.state[h] = e
	t.count++
	e.report(p)
	return e
}

// pass decides for one point and updates its tag's state; the entry is nil
// for a point of an untracked tag.
func (t *Transform) pass(p *engine.Point) (*entry, bool) {
	h := t.hash(p.Asset, p.Tag)
	e := t.lookup(h, p.Asset, p.Tag)
	if e == nil {
		e = t.insert(h, p)
		if e == nil {
			t.untracked.Inc()
		}
		return e, true
	}
	e.seenTS = p.TS
	if (e.fellBack && !e.committed) || changed(e, p) {
		e.report(p)
		return e, true
	}
	return nil, false
}

func (e *entry) report(p *engine.Point) {
	e.last, e.quality, e.lastTS, e.seenTS = p.Value, p.Quality, p.TS, p.TS
	e.seq++
	e.fellBack = false
}

// changed applies the change-of-value rules: a quality change, a due
// heartbeat, or a value beyond the deadband (engine.Deadband).
func changed(e *entry, p *engine.Point) bool {
	if p.Quality != e.quality {
		return true
	}
	if hb := e.par.heartbeat; hb > 0 && p.TS-e.lastTS >= hb {
		return true
	}
	return e.par.deadband.Changed(e.last, p.Value)
}

// sweepStep is how far the points' clock moves before the bound sweeps
// again: a tag is forgotten at most this much after state_ttl (the periodic
// sweep every ttl/4 allows more).
func (t *Transform) sweepStep() int64 { return max(t.ttl/64, 1) }

// sweep forgets tags unseen for state_ttl (by the points' ts).
func (t *Transform) sweep() {
	t.sweeps++
	t.sweptTS = t.maxTS
	limit := t.maxTS - t.ttl
	for h, head := range t.state {
		var keep *entry
		for e := head; e != nil; {
			next := e.next
			if e.seenTS >= limit {
				e.next = keep
				keep = e
			} else {
				t.count--
			}
			e = next
		}
		if keep == nil {
			delete(t.state, h)
		} else if keep != head {
			t.state[h] = keep
		}
	}
}

func (t *Transform) log() *slog.Logger {
	if t.env != nil && t.env.Logger != nil {
		return t.env.Logger
	}
	return slog.Default()
}

// load reads the state file, if any; a missing file is a first start.
func (t *Transform) load() {
	if t.statePath == "" {
		return
	}
	f, err := os.Open(t.statePath)
	if err != nil {
		if !os.IsNotExist(err) {
			t.log().Warn("cannot read cov state; every tag passes once", "file", t.statePath, "err", err)
		}
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var pts []engine.Point
	bad := 0
	for sc.Scan() {
		var err error
		n := len(pts)
		if pts, err = codec.DecodePoints(pts, sc.Bytes()); err != nil {
			pts = pts[:n]
			bad++
		}
	}
	for i := range pts {
		p := &pts[i]
		h := t.hash(p.Asset, p.Tag)
		if t.lookup(h, p.Asset, p.Tag) != nil {
			continue
		}
		e := t.insert(h, p)
		if e == nil {
			break
		}
		e.commit(e.seq, p.Value, p.Quality, p.TS)
		t.maxTS = max(t.maxTS, p.TS)
	}
	t.sweptTS = t.maxTS
	if bad > 0 || sc.Err() != nil {
		t.log().Warn("cov state file partly unreadable", "file", t.statePath, "bad_lines", bad, "err", sc.Err())
	}
}

// KeepStateReadOnly makes cov read its state file but never write it: in a
// dry run the sinks hold nothing, so what they acknowledge is not delivered.
func (t *Transform) KeepStateReadOnly() { t.readOnly = true }

// Prepare checks, before the pipeline runs, that the state file can be
// written where Close will write it (a temporary file beside it, renamed).
func (t *Transform) Prepare() error {
	if t.statePath == "" || t.readOnly {
		return nil
	}
	dir := filepath.Dir(t.statePath)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return &engine.FieldError{Field: "state_file", Offset: -1, Err: fmt.Errorf("cannot create the directory of %s: %w", t.statePath, err)}
	}
	f, err := os.CreateTemp(dir, filepath.Base(t.statePath)+".probe-*")
	if err != nil {
		return &engine.FieldError{Field: "state_file", Offset: -1, Err: fmt.Errorf("%s cannot be written (the state would be lost at every stop): %w", t.statePath, err)}
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// Close waits (until ctx ends) for the sinks to settle what cov passed, then
// writes the state file.
func (t *Transform) Close(ctx context.Context) error {
	for t.outstanding.Load() > 0 {
		select {
		case <-t.wake:
		case <-ctx.Done():
			t.log().Warn("cov closing before the sinks settled every change; their state is not saved", "batches", t.outstanding.Load())
		}
		if ctx.Err() != nil {
			break
		}
	}
	t.apply()
	if t.statePath == "" || !t.loaded || t.readOnly {
		return nil
	}
	return t.save()
}

// save writes the committed state (atomically: a temporary file renamed
// over the state file).
func (t *Transform) save() error {
	t.savedAt = time.Now()
	t.dirty = false
	if err := os.MkdirAll(filepath.Dir(t.statePath), 0o755); err != nil {
		return err
	}
	tmp := t.statePath + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	var b []byte
	for _, head := range t.state {
		for e := head; e != nil; e = e.next {
			if !e.committed {
				continue
			}
			p := engine.Point{Asset: e.asset, Tag: e.tag, Value: e.ackLast, Quality: e.ackQuality, TS: e.ackTS}
			b = codec.AppendPoint(b[:0], &p)
			b = append(b, '\n')
			w.Write(b)
		}
	}
	err = errors.Join(w.Flush(), f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, t.statePath)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cov state %s: %w", t.statePath, err)
	}
	return nil
}
