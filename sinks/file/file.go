// Package file is a sink that writes points to a local file as JSONL.
package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
)

// Config is the file sink's configuration.
type Config struct {
	Path   string `hcl:"path,required" doc:"file to write; parent directories are created"`
	Format string `hcl:"format" default:"json" doc:"a codec that encodes (docs/codecs), one message per line: json: a line per point; json_batch: a line per batch (an array, never split: a file has no message limit); asset_json: a line per asset per batch"`
	Mode   string `hcl:"mode" default:"append" enum:"append|truncate" doc:"append to an existing file, or truncate it at start"`
	Sync   bool   `hcl:"sync" doc:"fsync after every batch (durable across power loss, slower)"`
}

// Spec declares the file sink.
var Spec = engine.SinkSpec(engine.Info{
	Type:    "file",
	Summary: "Writes points to a local file as JSON lines, flushed per batch.",
	Description: "Each batch is written with one write call, so a line is never split between batches. " +
		"A write or fsync that fails (a full disk) is undone by truncating the file back to where the batch began, " +
		"so the retry neither leaves a torn line nor writes a line twice; a torn last line left by a crash is " +
		"cut off when the file is opened in append mode. A FIFO or a device is only written to: the sink waits " +
		"for a FIFO's reader to open it and to read, and gives up either wait at shutdown.",
	Example: `sink "file" "local" {
  inputs = [source.plant]
  path   = "out/points.jsonl"
}`,
}, New)

// New builds the sink; the file is opened on Connect.
func New(c *Config, env *engine.Env) (engine.Sink, error) {
	enc, err := env.Codecs.Encoder(c.Format)
	if err != nil {
		return nil, &engine.FieldError{Field: "format", Offset: -1, Err: err}
	}
	// A file has no message size limit: a batch is one line.
	return &Sink{cfg: *c, env: env, undo: -1, framer: codec.Framer{Codec: enc, Delimit: '\n'}}, nil
}

// Sink writes JSONL.
type Sink struct {
	cfg Config
	env *engine.Env
	f   *os.File
	buf []byte
	// framer makes a line per message of the format.
	framer codec.Framer
	frames []codec.Frame
	// undo is the length to truncate back to before the next write: set when
	// a write failed and cutting it off failed too.
	undo int64
	// stream: the path is a FIFO or a device, written to and nothing else
	// (a failed write is retried whole: there is nothing to cut back).
	stream bool
}

// Connect opens the file.
func (s *Sink) Connect(ctx context.Context) error {
	if s.f != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(s.cfg.Path), 0o755); err != nil {
		return err
	}
	// A FIFO or a device (a test's stuck reader, /dev/stdout) cannot be
	// read back, seeked or truncated: it is only written to.
	if fi, err := os.Stat(s.cfg.Path); err == nil && !fi.Mode().IsRegular() {
		f, err := openStream(ctx, s.cfg.Path)
		if err != nil {
			return err
		}
		s.f, s.stream = f, true
		return nil
	}
	flags := os.O_CREATE | os.O_RDWR | os.O_APPEND // read: to find a torn last line
	if s.cfg.Mode == "truncate" {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(s.cfg.Path, flags, 0o644)
	if err != nil {
		return err
	}
	cut, err := cutTornLine(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", s.cfg.Path, err)
	}
	if cut > 0 && s.env != nil && s.env.Logger != nil {
		s.env.Logger.Warn("file sink: cut off a torn last line left by an earlier run", "path", s.cfg.Path, "bytes", cut)
	}
	s.f = f
	return nil
}

// openStream opens a FIFO or device for writing. A FIFO's blocking open
// waits for a reader and cannot be cancelled: open it non-blocking, which
// fails while there is no reader, and try again until ctx ends. Writes then
// wait for the reader through the runtime's poller, where a deadline can
// cut them off (writeStream).
func openStream(ctx context.Context, path string) (*os.File, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|syscall.O_NONBLOCK, 0)
		if !errors.Is(err, syscall.ENXIO) {
			return f, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: no reader yet: %w", path, ctx.Err())
		case <-tick.C:
		}
	}
}

// writeStream writes b to a FIFO or device, and gives up when ctx ends
// (a reader that stopped reading must not hold a shutdown).
func (s *Sink) writeStream(ctx context.Context, b []byte) error {
	cut := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(cut)
		// An error (a device the poller cannot watch, /dev/null) is fine:
		// writes to it do not wait for a reader.
		s.f.SetWriteDeadline(time.Now())
	})
	_, err := s.f.Write(b)
	if !stop() {
		<-cut
		s.f.SetWriteDeadline(time.Time{})
		if err != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
	}
	return err
}

// cutTornLine truncates a file that does not end with a newline back to its
// last one, and returns the bytes removed.
func cutTornLine(f *os.File) (int64, error) {
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil || end == 0 {
		return 0, err
	}
	var buf [4096]byte
	for pos := end; pos > 0; {
		n := min(pos, int64(len(buf)))
		pos -= n
		if _, err := f.ReadAt(buf[:n], pos); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			keep := pos + int64(i) + 1
			if keep == end {
				return 0, nil
			}
			return end - keep, f.Truncate(keep)
		}
	}
	return end, f.Truncate(0)
}

// Write appends one batch. A failed write or fsync is cut off again, so the
// engine's retry of the batch leaves exactly one copy of each line.
func (s *Sink) Write(ctx context.Context, points []engine.Point) error {
	if s.undo >= 0 {
		if err := s.f.Truncate(s.undo); err != nil {
			return fmt.Errorf("truncate %s back to %d bytes after a failed write: %w", s.cfg.Path, s.undo, err)
		}
		s.undo = -1
	}
	b, frames := s.framer.Append(s.buf[:0], s.frames[:0], points, nil)
	clear(frames) // keep no references to the caller's points
	s.buf, s.frames = b, frames[:0]
	if s.stream {
		if err := s.writeStream(ctx, b); err != nil {
			return fmt.Errorf("write %s: %w", s.cfg.Path, err)
		}
		return nil
	}
	// With O_APPEND the write goes to the end, wherever other writers left it.
	start, err := s.f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("seek %s: %w", s.cfg.Path, err)
	}
	_, err = s.f.Write(b)
	if err == nil && s.cfg.Sync {
		err = s.f.Sync()
	}
	if err != nil {
		if terr := s.f.Truncate(start); terr != nil {
			s.undo = start
		}
		return fmt.Errorf("write %s: %w", s.cfg.Path, err)
	}
	return nil
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
