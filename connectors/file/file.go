// Package file is a source that replays canonical JSONL points from a file
// and ends at its end.
package file

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
)

// Config is the file source's configuration.
type Config struct {
	Path      string      `hcl:"path,required" doc:"JSONL file of canonical points, one per line"`
	Rate      float64     `hcl:"rate" doc:"points per second to replay at (0: as fast as the pipeline takes them)"`
	BatchSize int         `hcl:"batch_size" default:"1000" doc:"points per batch"`
	MaxLine   engine.Size `hcl:"max_line" default:"1MiB" doc:"longest line accepted; longer lines are rejected"`
}

// Spec declares the file source.
var Spec = engine.SourceSpec(engine.Info{
	Type:    "file",
	Summary: "Replays canonical JSONL points from a file; the source ends at the end of the file.",
	Description: "Lines that do not decode are counted as dropped (reason decode) and go to the dead-letter sink " +
		"when one is configured. A point without ts gets the time it was read.",
	Example: `source "file" "replay" {
  path = "testdata/points.jsonl"
  rate = 1000
}`,
}, New)

// New builds the source; the file is opened when it runs.
func New(c *Config, env *engine.Env) (engine.Source, error) {
	if c.BatchSize < 1 {
		return nil, &engine.FieldError{Field: "batch_size", Offset: -1, Err: fmt.Errorf("must be at least 1")}
	}
	if c.Rate < 0 {
		return nil, &engine.FieldError{Field: "rate", Offset: -1, Err: fmt.Errorf("must not be negative")}
	}
	return &Source{cfg: *c, env: env}, nil
}

// Source replays a file.
type Source struct {
	cfg Config
	env *engine.Env
}

// Run reads the file to its end.
func (s *Source) Run(ctx context.Context, out engine.Output) error {
	f, err := os.Open(s.cfg.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), int(s.cfg.MaxLine))
	batch := s.cfg.BatchSize
	if s.cfg.Rate > 0 {
		// Small batches keep a paced replay smooth.
		batch = max(1, min(batch, int(s.cfg.Rate/10)))
	}
	start := time.Now()
	var sent int64
	pts := engine.GetPoints(batch)
	line := 0
	flush := func() error {
		if len(pts) == 0 {
			return nil
		}
		if s.cfg.Rate > 0 {
			due := start.Add(time.Duration(float64(sent) / s.cfg.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
			}
		}
		sent += int64(len(pts))
		err := out.Emit(ctx, pts, nil)
		pts = engine.GetPoints(batch)
		return err
	}
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		n := len(pts)
		var err error
		pts, err = codec.DecodePoints(pts, b)
		if err != nil {
			pts = pts[:n]
			s.env.Reject([]engine.Point{{Tag: "payload", Value: engine.String(string(b)), TS: time.Now().UnixNano()}},
				"decode", fmt.Errorf("%s:%d: %w", s.cfg.Path, line, err))
			continue
		}
		now := time.Now().UnixNano()
		for i := n; i < len(pts); i++ {
			if pts[i].TS == 0 {
				pts[i].TS = now
			}
		}
		if len(pts) >= batch {
			if err := flush(); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: line %d: %w", s.cfg.Path, line+1, err)
	}
	if err := flush(); err != nil {
		return err
	}
	engine.PutPoints(pts)
	return nil
}
