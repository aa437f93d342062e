// Package file is a source that replays canonical JSONL points from a file
// and ends at its end.
package file

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/flowd/flowd/engine"
)

// Config is the file source's configuration.
type Config struct {
	Path      string      `hcl:"path,required" doc:"JSONL file of canonical points, one per line"`
	Rate      float64     `hcl:"rate" doc:"points per second to replay at (0: as fast as the pipeline takes them)"`
	BatchSize int         `hcl:"batch_size" default:"1000" doc:"points per batch (at most 1,000,000)"`
	MaxLine   engine.Size `hcl:"max_line" default:"1MiB" doc:"longest line accepted; a longer line is rejected on its own and reading goes on (at most 256MiB)"`
	Format    string      `hcl:"format" default:"json" doc:"codec of each line (docs/codecs): json (what the file sink writes by default), json_batch, asset_json, …"`
}

// Spec declares the file source.
var Spec = engine.SourceSpec(engine.Info{
	Type:    "file",
	Summary: "Replays canonical JSONL points from a file; the source ends at the end of the file.",
	Description: "Lines that do not decode, lines longer than max_line and points whose ts lies outside 1677–2262 " +
		"(the range of Unix nanoseconds) are counted as dropped (reason decode) and go to the dead-letter sink " +
		"when one is configured (an over-long line as its first 1 KiB); the other lines are read on. " +
		"A point without ts gets the time it was read; a numeric ts is Unix milliseconds, read exactly.",
	Example: `source "file" "replay" {
  path = "testdata/points.jsonl"
  rate = 1000
}`,
}, New)

// New builds the source; the file is opened when it runs.
func New(c *Config, env *engine.Env) (engine.Source, error) {
	var bad engine.Problems
	bad.Between("batch_size", int64(c.BatchSize), 1, engine.MaxBatchSize)
	if c.Rate < 0 || math.IsNaN(c.Rate) {
		bad.Addf("rate", "must not be negative")
	}
	if c.MaxLine < 1 || c.MaxLine > engine.MaxMessageSize {
		bad.Addf("max_line", "must be between 1 byte and 256MiB")
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	dec, err := env.Codecs.Decoder(c.Format)
	if err != nil {
		return nil, &engine.FieldError{Field: "format", Offset: -1, Err: err}
	}
	return &Source{cfg: *c, env: env, dec: dec}, nil
}

// Source replays a file.
type Source struct {
	cfg Config
	env *engine.Env
	dec *engine.Codec
}

// Run reads the file to its end.
func (s *Source) Run(ctx context.Context, out engine.Output) error {
	f, err := os.Open(s.cfg.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	rd := &lineReader{r: bufio.NewReaderSize(f, 64*1024), max: int(s.cfg.MaxLine)}
	batch := s.cfg.BatchSize
	if s.cfg.Rate > 0 {
		// Small batches keep a paced replay smooth.
		batch = max(1, min(batch, int(s.cfg.Rate/10)))
	}
	r := &replay{out: out, batch: batch, rate: s.cfg.Rate, start: time.Now(), pts: engine.GetPoints(batch)}
	line := 0
	msg := engine.Message{Subject: s.cfg.Path}
	for {
		b, size, rerr := rd.next()
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("%s: line %d: %w", s.cfg.Path, line+1, rerr)
		}
		line++
		if size > rd.max {
			// Only this line is lost: the rest of the file is read on.
			s.env.Reject([]engine.Point{engine.RawPoint("payload", b, nil)}, "decode", fmt.Errorf("%s:%d: line of %d bytes is longer than max_line (%d bytes)", s.cfg.Path, line, size, rd.max))
			continue
		}
		if len(b) == 0 {
			continue
		}
		n := len(r.pts)
		var err error
		now := time.Now().UnixNano()
		msg.Payload, msg.Now = b, now
		r.pts, err = s.dec.Decode(r.pts, &msg)
		if err != nil {
			r.pts = r.pts[:n]
			s.env.Reject([]engine.Point{engine.RawPoint("payload", b, nil)}, "decode", fmt.Errorf("%s:%d: %w", s.cfg.Path, line, err))
			continue
		}
		if len(r.pts) >= batch {
			if err := r.flush(ctx); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return nil
		}
	}
	if err := r.flush(ctx); err != nil {
		return err
	}
	engine.PutPoints(r.pts)
	return nil
}

// replay hands a file's points on in batches, paced to rate points a
// second when rate > 0.
type replay struct {
	out   engine.Output
	batch int
	rate  float64
	start time.Time
	sent  int64
	pts   []engine.Point // the batch being filled
}

// flush emits the batch, once it is due, and starts the next one.
func (r *replay) flush(ctx context.Context) error {
	if len(r.pts) == 0 {
		return nil
	}
	if r.rate > 0 {
		due := r.start.Add(time.Duration(float64(r.sent) / r.rate * float64(time.Second)))
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
	r.sent += int64(len(r.pts))
	err := r.out.Emit(ctx, r.pts, nil)
	r.pts = engine.GetPoints(r.batch)
	return err
}

// rejectedPrefix is how much of an over-long line goes to the dead-letter
// sink: enough to find it, not a copy of a runaway file.
const rejectedPrefix = engine.RawBytes

// lineReader reads lines of at most max bytes. Unlike bufio.Scanner, a longer
// line is skipped to its end and reported (its size and first bytes) instead
// of ending the read.
type lineReader struct {
	r    *bufio.Reader
	max  int
	long []byte
}

// next returns the next line without its line ending and the line's size;
// when size > max, line holds only its first bytes. The error is io.EOF
// after the last line.
func (l *lineReader) next() ([]byte, int, error) {
	l.long = l.long[:0]
	keep := max(l.max+2, rejectedPrefix) // a line that fits, with "\r\n"
	size := 0
	for {
		chunk, err := l.r.ReadSlice('\n')
		if err == nil && size == 0 {
			// The common case: the whole line sits in the reader's buffer.
			line := trimEOL(chunk)
			if len(line) > l.max {
				return line[:min(len(line), rejectedPrefix)], len(line), nil
			}
			return line, len(line), nil
		}
		size += len(chunk)
		if room := keep - len(l.long); room > 0 {
			l.long = append(l.long, chunk[:min(room, len(chunk))]...)
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && size > 0: // a last line without a newline
		case err != nil:
			return nil, 0, err
		}
		line, n := l.long, size-(len(chunk)-len(trimEOL(chunk)))
		if size <= keep { // held whole
			line = trimEOL(line)
			n = len(line)
		}
		if n > l.max {
			line = line[:min(len(line), rejectedPrefix)]
		}
		return line, n, nil
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}
