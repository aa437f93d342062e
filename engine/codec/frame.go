package codec

import (
	"errors"

	"github.com/flowd/flowd/engine"
)

// ErrTooLarge marks points whose message exceeds a sink's byte limit even
// alone (one point, or one asset's points): they can never be written.
var ErrTooLarge = errors.New("record larger than max_message_bytes")

// Frame is one message a Framer made: its payload is buf[Start:End] and it
// holds Points (a slice of the points given, which FrameAsset reorders).
type Frame struct {
	Start, End int
	Points     []engine.Point
}

// Payload is the frame's bytes in buf, capped so an append cannot run into
// the next frame.
func (f *Frame) Payload(buf []byte) []byte { return buf[f.Start:f.End:f.End] }

// Framer turns points into messages with a codec, by the codec's framing:
// one message per point, per batch (halved until each message fits
// MaxBytes), or per asset. Every sink frames through it, so a format has the
// same message boundaries and limits everywhere.
type Framer struct {
	Codec *engine.Codec
	// MaxBytes bounds a message's payload; 0: no limit.
	MaxBytes int
	// Delimit, when not 0, is appended after every message (a newline for
	// files of lines); it does not count toward MaxBytes.
	Delimit byte
}

// Append encodes points into buf and appends a Frame per message to frames.
// Points whose message does not fit MaxBytes even alone go to reject with
// ErrTooLarge (reject may be nil) and are left out. Under FrameAsset the
// points are reordered by asset (stable within an asset).
func (f *Framer) Append(buf []byte, frames []Frame, points []engine.Point, reject func([]engine.Point, error)) ([]byte, []Frame) {
	if len(points) == 0 {
		return buf, frames
	}
	switch f.Codec.Framing {
	case engine.FrameBatch:
		return f.batch(buf, frames, points, reject)
	case engine.FrameAsset:
		GroupByAsset(points, func(_ string, pts []engine.Point) error {
			buf, frames = f.one(buf, frames, pts, reject)
			return nil
		})
		return buf, frames
	}
	for i := range points {
		buf, frames = f.one(buf, frames, points[i:i+1], reject)
	}
	return buf, frames
}

// one encodes points as a single message, or rejects them when it is too large.
func (f *Framer) one(buf []byte, frames []Frame, pts []engine.Point, reject func([]engine.Point, error)) ([]byte, []Frame) {
	start := len(buf)
	buf = f.Codec.Encode(buf, pts)
	if f.MaxBytes > 0 && len(buf)-start > f.MaxBytes {
		if reject != nil {
			reject(pts, ErrTooLarge)
		}
		return buf[:start], frames
	}
	frames = append(frames, Frame{Start: start, End: len(buf), Points: pts})
	if f.Delimit != 0 {
		buf = append(buf, f.Delimit)
	}
	return buf, frames
}

// batch encodes points as one message, halving a part that does not fit.
func (f *Framer) batch(buf []byte, frames []Frame, pts []engine.Point, reject func([]engine.Point, error)) ([]byte, []Frame) {
	if len(pts) == 0 {
		return buf, frames
	}
	start := len(buf)
	buf = f.Codec.Encode(buf, pts)
	if f.MaxBytes > 0 && len(buf)-start > f.MaxBytes && len(pts) > 1 {
		buf = buf[:start]
		half := len(pts) / 2
		buf, frames = f.batch(buf, frames, pts[:half], reject)
		return f.batch(buf, frames, pts[half:], reject)
	}
	if f.MaxBytes > 0 && len(buf)-start > f.MaxBytes {
		if reject != nil {
			reject(pts, ErrTooLarge)
		}
		return buf[:start], frames
	}
	frames = append(frames, Frame{Start: start, End: len(buf), Points: pts})
	if f.Delimit != 0 {
		buf = append(buf, f.Delimit)
	}
	return buf, frames
}
