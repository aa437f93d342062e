// Package stdout is a sink that prints points to standard output.
package stdout

import (
	"context"
	"io"
	"os"
	"strconv"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
)

// Config is the stdout sink's configuration.
type Config struct {
	Format string `hcl:"format" default:"text" enum:"text|json" doc:"text: one readable line per point; json: canonical JSON lines"`
	Sample int    `hcl:"sample" default:"1" doc:"print one point in this many (the rest are delivered silently)"`
}

// Spec declares the stdout sink.
var Spec = engine.SinkSpec(engine.Info{
	Type:    "stdout",
	Summary: "Prints points to standard output, optionally sampled.",
	Example: `sink "stdout" "console" {
  inputs = [source.plant]
  sample = 100
}`,
}, func(c *Config, env *engine.Env) (engine.Sink, error) {
	if c.Sample < 1 {
		return nil, &engine.FieldError{Field: "sample", Offset: -1, Err: errAtLeastOne}
	}
	return &Sink{cfg: *c, w: os.Stdout}, nil
})

type constErr string

func (e constErr) Error() string { return string(e) }

const errAtLeastOne = constErr("must be at least 1")

// Sink prints points.
type Sink struct {
	cfg Config
	w   io.Writer
	n   int
	buf []byte
}

// Write prints the sampled points of a batch.
func (s *Sink) Write(ctx context.Context, points []engine.Point) error {
	b := s.buf[:0]
	for i := range points {
		s.n++
		if s.n%s.cfg.Sample != 0 {
			continue
		}
		p := &points[i]
		if s.cfg.Format == "json" {
			b = codec.AppendPoint(b, p)
		} else {
			b = p.Time().AppendFormat(b, "15:04:05.000")
			b = append(b, ' ')
			if p.Asset != "" {
				b = append(b, p.Asset...)
				b = append(b, '/')
			}
			b = append(b, p.Tag...)
			b = append(b, " = "...)
			b = append(b, p.Value.String()...)
			if p.Quality != engine.Good {
				b = append(b, " ("...)
				b = append(b, p.Quality.String()...)
				if p.Status != 0 {
					b = append(b, " 0x"...)
					b = strconv.AppendUint(b, uint64(p.Status), 16)
				}
				b = append(b, ')')
			}
		}
		b = append(b, '\n')
	}
	s.buf = b
	if len(b) == 0 {
		return nil
	}
	_, err := s.w.Write(b)
	return err
}
