// Package file is a sink that writes points to a local file as JSONL.
package file

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
)

// Config is the file sink's configuration.
type Config struct {
	Path   string `hcl:"path,required" doc:"file to write; parent directories are created"`
	Format string `hcl:"format" default:"json" enum:"json|json_batch|asset_json" doc:"json: a line per point; json_batch: a line per batch (an array); asset_json: a line per asset per batch"`
	Mode   string `hcl:"mode" default:"append" enum:"append|truncate" doc:"append to an existing file, or truncate it at start"`
	Sync   bool   `hcl:"sync" doc:"fsync after every batch (durable across power loss, slower)"`
}

// Spec declares the file sink.
var Spec = engine.SinkSpec(engine.Info{
	Type:        "file",
	Summary:     "Writes points to a local file as JSON lines, flushed per batch.",
	Description: "Each batch is written with one write call, so a line is never split between batches.",
	Example: `sink "file" "local" {
  inputs = [source.plant]
  path   = "out/points.jsonl"
}`,
}, New)

// New builds the sink; the file is opened on Connect.
func New(c *Config, env *engine.Env) (engine.Sink, error) {
	return &Sink{cfg: *c}, nil
}

// Sink writes JSONL.
type Sink struct {
	cfg Config
	f   *os.File
	buf []byte
}

// Connect opens the file.
func (s *Sink) Connect(ctx context.Context) error {
	if s.f != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(s.cfg.Path), 0o755); err != nil {
		return err
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	if s.cfg.Mode == "truncate" {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(s.cfg.Path, flags, 0o644)
	if err != nil {
		return err
	}
	s.f = f
	return nil
}

// Write appends one batch.
func (s *Sink) Write(ctx context.Context, points []engine.Point) error {
	b := Encode(s.buf[:0], s.cfg.Format, points)
	s.buf = b
	if _, err := s.f.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", s.cfg.Path, err)
	}
	if s.cfg.Sync {
		return s.f.Sync()
	}
	return nil
}

// Encode appends points as lines in a format.
func Encode(b []byte, format string, points []engine.Point) []byte {
	switch format {
	case "json_batch":
		b = codec.AppendBatch(b, points)
		return append(b, '\n')
	case "asset_json":
		codec.GroupByAsset(points, func(asset string, pts []engine.Point) error {
			b = codec.AppendAssetJSON(b, asset, pts)
			b = append(b, '\n')
			return nil
		})
		return b
	}
	for i := range points {
		b = codec.AppendPoint(b, &points[i])
		b = append(b, '\n')
	}
	return b
}

// Close closes the file.
func (s *Sink) Close(ctx context.Context) error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
