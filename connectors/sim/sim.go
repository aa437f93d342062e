// Package sim is a source that generates realistic plant signals in-process:
// N assets × M tags of sine, ramp, step, noise, boolean and counter signals,
// of float, int, bool and string types, deterministic for a seed.
package sim

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is the sim source's configuration.
type Config struct {
	Assets      int           `hcl:"assets" default:"2" doc:"number of assets (asset1 … assetN)"`
	Tags        int           `hcl:"tags" default:"6" doc:"tags per asset; the signal kinds cycle through sine, ramp, step, noise, boolean, counter, state (assets × tags at most 1,000,000)"`
	Interval    time.Duration `hcl:"interval" default:"1s" doc:"time between samples of every tag"`
	ChangeRatio float64       `hcl:"change_ratio" default:"1" doc:"fraction of tags whose value changes each interval (0–1); the others repeat their last value"`
	Seed        uint64        `hcl:"seed" default:"1" doc:"random seed; the same seed gives the same values"`
	AssetPrefix string        `hcl:"asset_prefix" default:"asset" doc:"asset names are this prefix and a number"`
	BatchSize   int           `hcl:"batch_size" default:"1000" doc:"largest batch handed to the pipeline (at most 1,000,000)"`
	Count       int64         `hcl:"count" doc:"stop after this many points (0: run until stopped)"`
	Fast        bool          `hcl:"fast" doc:"do not wait for the interval: generate as fast as the pipeline takes points (timestamps still advance by interval)"`
	BadRatio    float64       `hcl:"bad_ratio" doc:"fraction of samples (0–1) with quality bad, status BadSensorFailure, as a failing sensor reports them"`
	Uncertain   float64       `hcl:"uncertain_ratio" doc:"fraction of samples (0–1) with quality uncertain, status UncertainLastUsableValue"`
}

// Spec declares the sim source.
var Spec = engine.SourceSpec(engine.Info{
	Type:    "sim",
	Summary: "Generates realistic plant signals in-process (no external service).",
	Description: "Assets are named asset1 … assetN (`asset_prefix`). Each tag follows one signal kind, chosen by its " +
		"index, and is named after it, so expressions can rely on the names:\n\n" +
		"| tag | signal | value |\n|---|---|---|\n" +
		"| `temperature` | sine: 20 ± 5 for asset1, 10 more per further asset | float |\n" +
		"| `pressure` | ramp, wrapping at 100 | float |\n" +
		"| `setpoint` | step: 50, 60 … 90, moving now and then | int |\n" +
		"| `vibration` | noise | float |\n" +
		"| `running` | boolean, flipping now and then | bool |\n" +
		"| `cycles` | counter | int |\n" +
		"| `mode` | state: `auto`, `manual`, `maintenance`, `idle` | string |\n\n" +
		"Beyond 7 tags the names repeat with a suffix: `temperature_1`, `pressure_1`, … Timestamps are the sample times. " +
		"Quality is good unless `bad_ratio` or `uncertain_ratio` make a random share of the samples bad " +
		"(status BadSensorFailure) or uncertain (status UncertainLastUsableValue), so filters such as " +
		"`where = \"quality == 'good'\"` have something to do.",
	Example: `source "sim" "plant" {
  assets       = 3
  tags         = 7
  interval     = "500ms"
  change_ratio = 0.5
  bad_ratio    = 0.02
}`,
}, New)

// Resource limits checked by validate: beyond them a config cannot run on
// any gateway (the series alone would not fit in memory).
const (
	MaxSeries    = 1_000_000
	MaxBatchSize = 1_000_000
)

// New validates the config and builds the source.
func New(c *Config, env *engine.Env) (engine.Source, error) {
	var bad engine.Problems
	if c.Assets < 1 {
		bad.Addf("assets", "must be at least 1")
	}
	if c.Tags < 1 {
		bad.Addf("tags", "must be at least 1")
	}
	// Every series keeps its last value, and every interval produces a point
	// per series: bound them before anything is allocated.
	if c.Assets > 0 && c.Tags > 0 && int64(c.Assets)*int64(c.Tags) > MaxSeries {
		bad.Addf("tags", "assets × tags = %d × %d = %d series; at most %d are supported", c.Assets, c.Tags, int64(c.Assets)*int64(c.Tags), MaxSeries)
	}
	if c.Interval <= 0 {
		bad.Addf("interval", "must be positive")
	}
	if c.ChangeRatio < 0 || c.ChangeRatio > 1 {
		bad.Addf("change_ratio", "must be between 0 and 1")
	}
	if c.BadRatio < 0 || c.BadRatio > 1 {
		bad.Addf("bad_ratio", "must be between 0 and 1")
	}
	if c.Uncertain < 0 || c.Uncertain > 1 || c.BadRatio+c.Uncertain > 1 {
		bad.Addf("uncertain_ratio", "must be between 0 and 1, and with bad_ratio at most 1")
	}
	if c.BatchSize < 1 || c.BatchSize > MaxBatchSize {
		bad.Addf("batch_size", "must be between 1 and %d", MaxBatchSize)
	}
	if c.Count < 0 {
		bad.Addf("count", "must not be negative")
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	skipped := prometheus.NewCounter(prometheus.CounterOpts{Name: "flowd_sim_skipped_ticks_total", Help: "Samples the sim source skipped because the pipeline was slower than its interval."})
	env.MustRegister(skipped)
	return &Source{cfg: *c, env: env, skipped: skipped, shard: env.Shard}, nil
}

// Source generates points.
type Source struct {
	cfg     Config
	env     *engine.Env
	skipped prometheus.Counter
	shard   engine.Shard
}

var tagNames = []string{"temperature", "pressure", "setpoint", "vibration", "running", "cycles", "mode"}
var modes = []string{"auto", "manual", "maintenance", "idle"}

// Generator produces the sample values; shared by Run and the benchmarks.
type Generator struct {
	cfg    Config
	rng    *rand.Rand
	assets []string // the assets generated (this shard's)
	index  []int    // each one's number among all assets, from 0
	tags   []string
	last   []engine.Value
	step   int64
}

// NewGenerator prepares a generator for a config.
func NewGenerator(c Config) *Generator { return NewShardGenerator(c, engine.Shard{}) }

// NewShardGenerator prepares a generator of the assets a shard owns.
func NewShardGenerator(c Config, shard engine.Shard) *Generator {
	g := &Generator{cfg: c, rng: rand.New(rand.NewPCG(c.Seed, c.Seed^0x9e3779b97f4a7c15))}
	for a := 1; a <= c.Assets; a++ {
		name := fmt.Sprintf("%s%d", c.AssetPrefix, a)
		if shard.Owns(name) {
			g.assets = append(g.assets, name)
			g.index = append(g.index, a-1)
		}
	}
	for t := 0; t < c.Tags; t++ {
		name := tagNames[t%len(tagNames)]
		if t >= len(tagNames) {
			name = fmt.Sprintf("%s_%d", name, t/len(tagNames))
		}
		g.tags = append(g.tags, name)
	}
	g.last = make([]engine.Value, len(g.assets)*c.Tags)
	return g
}

// Assets lists the generated asset names.
func (g *Generator) Assets() []string { return g.assets }

// PointsPerStep is assets × tags.
func (g *Generator) PointsPerStep() int { return len(g.last) }

// Fill appends the points of sample i of step (i counts assets × tags) from
// index from, up to n points, stamping ts.
func (g *Generator) Fill(dst []engine.Point, from, n int, ts int64) []engine.Point {
	for i := from; i < from+n && i < len(g.last); i++ {
		a, t := i/g.cfg.Tags, i%g.cfg.Tags
		v := g.last[i]
		if v.IsNull() || g.cfg.ChangeRatio >= 1 || g.rng.Float64() < g.cfg.ChangeRatio {
			v = g.value(g.index[a], t, v)
			g.last[i] = v
		}
		p := engine.Point{Asset: g.assets[a], Tag: g.tags[t], Value: v, TS: ts}
		// Only drawn when asked for, so the values of a seed stay the same.
		if g.cfg.BadRatio > 0 || g.cfg.Uncertain > 0 {
			switch r := g.rng.Float64(); {
			case r < g.cfg.BadRatio:
				p.Quality, p.Status = engine.Bad, statusBadSensorFailure
			case r < g.cfg.BadRatio+g.cfg.Uncertain:
				p.Quality, p.Status = engine.Uncertain, statusUncertainLastUsableValue
			}
		}
		dst = append(dst, p)
	}
	return dst
}

// OPC UA status codes (Part 4, 7.34) of the simulated bad and uncertain samples.
const (
	statusBadSensorFailure         = 0x808C0000
	statusUncertainLastUsableValue = 0x40900000
)

// Advance moves to the next sample time.
func (g *Generator) Advance() { g.step++ }

func (g *Generator) value(a, t int, last engine.Value) engine.Value {
	phase := float64(g.step) * 0.05
	base := float64(20 + 10*a + t)
	switch t % len(tagNames) {
	case 0: // sine
		return engine.Float(math.Round((base+5*math.Sin(phase+float64(a)))*1000) / 1000)
	case 1: // ramp, wrapping
		return engine.Float(math.Mod(float64(g.step)*0.25+base, 100))
	case 2: // step: a setpoint that moves now and then
		if i, ok := last.Int64(); ok && last.Kind() == engine.KindInt && g.rng.IntN(20) != 0 {
			return engine.Int(i)
		}
		return engine.Int(int64(50 + 10*g.rng.IntN(5)))
	case 3: // noise
		return engine.Float(math.Round((base+g.rng.NormFloat64())*1000) / 1000)
	case 4: // boolean, flipping now and then
		b, _ := last.AsBool()
		if last.IsNull() || g.rng.IntN(10) == 0 {
			b = !b
		}
		return engine.Bool(b)
	case 5: // counter
		i, _ := last.Int64()
		return engine.Int(i + 1 + int64(g.rng.IntN(3)))
	default: // state
		return engine.String(modes[g.rng.IntN(len(modes))])
	}
}

// Run emits every tag each interval until ctx is done or count is reached.
func (s *Source) Run(ctx context.Context, out engine.Output) error {
	g := NewShardGenerator(s.cfg, s.shard)
	per := g.PointsPerStep()
	if per == 0 {
		// Possible with more replicas than assets: this one idles.
		s.env.Logger.Warn("this shard owns none of the assets", "shard", s.shard.String(), "assets", s.cfg.Assets)
		<-ctx.Done()
		return nil
	}
	if s.shard.Enabled() {
		s.env.Logger.Info("reading this shard's assets", "shard", s.shard.String(), "assets", len(g.Assets()), "of", s.cfg.Assets)
	}
	var sent int64
	ts := time.Now()
	var tick *time.Ticker
	if !s.cfg.Fast {
		tick = time.NewTicker(s.cfg.Interval)
		defer tick.Stop()
	}
	for {
		for from := 0; from < per; from += s.cfg.BatchSize {
			n := min(s.cfg.BatchSize, per-from)
			if s.cfg.Count > 0 {
				n = int(min(int64(n), s.cfg.Count-sent))
			}
			pts := g.Fill(engine.GetPoints(n), from, n, ts.UnixNano())
			if err := out.Emit(ctx, pts, nil); err != nil {
				return err
			}
			sent += int64(n)
			if s.cfg.Count > 0 && sent >= s.cfg.Count {
				return nil
			}
		}
		g.Advance()
		if tick == nil {
			ts = ts.Add(s.cfg.Interval)
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			// A pipeline slower than the interval makes the ticker drop ticks:
			// those samples are skipped (and counted), never queued up.
			if missed := int64(now.Sub(ts)/s.cfg.Interval) - 1; missed > 0 {
				s.skipped.Add(float64(missed))
			}
			ts = now
		}
	}
}
