// Package codectest is the conformance suite every codec passes: round
// trips through the shared framer, reject reasons for malformed and
// truncated payloads, and the framer's byte limits. Run it for each
// registered codec (see codecs/codecs_test.go).
package codectest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
)

// filler names points the payload left without asset or tag, as a source's
// asset/tag settings do.
type filler struct{}

func (filler) FillPoint(p *engine.Point, subject string) error {
	if p.Tag == "" {
		p.Tag = "filled"
	}
	return nil
}

// Points is a batch covering every value kind, quality, escapes, several
// assets and timestamps at millisecond, microsecond and nanosecond detail;
// tags are unique per asset (asset framing keeps the last of a tag).
func Points() []engine.Point {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).UnixNano()
	return []engine.Point{
		{Asset: "line1", Tag: "temperature", Value: engine.Float(21.5), TS: t0 + 123_000_000},
		{Asset: "line1", Tag: "whole", Value: engine.Float(3), TS: t0},
		{Asset: "line1", Tag: "count", Value: engine.Int(-42), Quality: engine.Uncertain, TS: t0 + 1},
		{Asset: "line2", Tag: "big", Value: engine.Uint(math.MaxUint64), TS: t0 + 1_500},
		{Asset: "line2", Tag: "running", Value: engine.Bool(true), Quality: engine.Bad, TS: t0},
		{Asset: "line2", Tag: "text \"q\" \\ \n ü", Value: engine.String("a\tb\u00e9\"c"), TS: t0},
		{Asset: "line3", Tag: "nothing", Value: engine.Null(), Quality: engine.Bad, TS: t0 - 1_000_000_000},
		{Asset: "", Tag: "no asset", Value: engine.Int(7), TS: t0},
	}
}

// Run checks one codec.
func Run(t *testing.T, c *engine.Codec) {
	if c.Name == "" || c.Summary == "" || c.Description == "" {
		t.Errorf("codec %q: name, summary and description are its docs", c.Name)
	}
	if c.Encode != nil {
		t.Run("append keeps the prefix", func(t *testing.T) { appendKeepsPrefix(t, c) })
		t.Run("framing limits", func(t *testing.T) { framingLimits(t, c) })
	}
	if c.Encode != nil && c.Decode != nil {
		t.Run("round trip", func(t *testing.T) { roundTrip(t, c) })
		t.Run("truncated", func(t *testing.T) { truncated(t, c) })
	}
	if c.Decode != nil {
		t.Run("reject reasons", func(t *testing.T) { rejectReasons(t, c) })
	}
}

func appendKeepsPrefix(t *testing.T, c *engine.Codec) {
	pts := Points()
	prefix := []byte("PREFIX")
	one := pts[:1]
	b := c.Encode(append([]byte(nil), prefix...), one)
	if !bytes.HasPrefix(b, prefix) || len(b) == len(prefix) {
		t.Fatalf("Encode must append to b: got %q", b)
	}
	if got := c.Encode(nil, one); !bytes.Equal(got, b[len(prefix):]) {
		t.Errorf("Encode depends on what b holds: %q vs %q", got, b[len(prefix):])
	}
}

// key identifies a point for comparison regardless of order.
func key(p *engine.Point) string { return p.Asset + "\x00" + p.Tag }

func sorted(pts []engine.Point) []engine.Point {
	out := append([]engine.Point(nil), pts...)
	sort.SliceStable(out, func(i, j int) bool { return key(&out[i]) < key(&out[j]) })
	return out
}

func roundTrip(t *testing.T, c *engine.Codec) {
	in := Points()
	f := codec.Framer{Codec: c}
	buf, frames := f.Append(nil, nil, append([]engine.Point(nil), in...), func(p []engine.Point, err error) {
		t.Errorf("rejected without a limit: %v", err)
	})
	var out []engine.Point
	const now = 99
	for i := range frames {
		var err error
		n := len(out)
		out, err = c.Decode(out, &engine.Message{Payload: frames[i].Payload(buf), Now: now})
		if err != nil {
			t.Fatalf("decode %q: %v", frames[i].Payload(buf), err)
		}
		if len(out)-n != len(frames[i].Points) {
			t.Errorf("message %q: %d points, encoded %d", frames[i].Payload(buf), len(out)-n, len(frames[i].Points))
		}
	}
	want, got := sorted(in), sorted(out)
	if len(got) != len(want) {
		t.Fatalf("%d points back, want %d", len(got), len(want))
	}
	for i := range want {
		w, g := &want[i], &got[i]
		if g.Asset != w.Asset || g.Tag != w.Tag || !g.Value.Equal(w.Value) || g.Value.Kind() != w.Value.Kind() ||
			g.Quality != w.Quality || g.TS != w.TS {
			t.Errorf("round trip changed a point:\n got  %+v\n want %+v", *g, *w)
		}
	}
}

// truncated: every proper prefix of a message either decodes to tagged
// points or is rejected with a reason, and never leaves points behind.
func truncated(t *testing.T, c *engine.Codec) {
	f := codec.Framer{Codec: c}
	buf, frames := f.Append(nil, nil, Points(), nil)
	for _, fr := range frames {
		msg := fr.Payload(buf)
		for n := 0; n < len(msg); n++ {
			checkDecode(t, c, msg[:n], nil)
		}
	}
}

// Malformed payloads every decoder must survive.
var malformed = [][]byte{
	nil, []byte(""), []byte(" "), []byte("\x00\xff\xfe"), []byte("{"), []byte("["), []byte("[]"), []byte("{}"),
	[]byte("nul"), []byte(`{"tag":`), []byte(`{"tag":"a","value":{"x":1}}`), []byte(`{"tag":"a","value":1,"quality":"great"}`),
	[]byte(`{"tag":"a","value":1,"ts":"yesterday"}`), []byte(`{"tag":"a","value":1,"ts":1e300}`),
	[]byte(`{"asset":"a","points":{"t":{"value":1,"quality":"bad","ts":"2026-01-01T00:00:00Z"}}}`),
	[]byte(`{"asset":"a","points":{"t":{"quality":"bad"}}}`), []byte(`{"asset":"a","points":{}}`),
	bytes.Repeat([]byte("["), 10000),
}

func rejectReasons(t *testing.T, c *engine.Codec) {
	for _, p := range malformed {
		checkDecode(t, c, p, nil)
		checkDecode(t, c, p, filler{})
	}
	// Without the source's tag, a payload that names none is rejected, with
	// a reason.
	if out, err := c.Decode(nil, &engine.Message{Payload: []byte("42")}); err == nil {
		t.Errorf("bare value without a tag: decoded %+v, want a reject", out)
	} else if engine.RejectReason(err) == "decode" {
		t.Errorf("bare value without a tag: error %v has no reason", err)
	}
}

// checkDecode decodes p after a sentinel point: on success every new point
// has a tag; on failure the sentinel alone is left and the error names a
// reason.
func checkDecode(t *testing.T, c *engine.Codec, p []byte, fill engine.PointFiller) {
	t.Helper()
	sentinel := []engine.Point{{Tag: "sentinel"}}
	var out []engine.Point
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
				t.Errorf("decode %.60q panicked: %v", p, r)
			}
		}()
		out, err = c.Decode(sentinel, &engine.Message{Payload: p, Now: 1, Fill: fill})
	}()
	if len(out) == 0 || out[0].Tag != "sentinel" {
		t.Fatalf("decode %.60q dropped the points already in dst", p)
	}
	if err != nil {
		if len(out) != 1 {
			t.Errorf("decode %.60q failed (%v) but left %d points in dst", p, err, len(out)-1)
		}
		var de *engine.DecodeError
		if !errors.As(err, &de) || de.Reason == "" {
			t.Errorf("decode %.60q: error %q names no reason (engine.DecodeError)", p, err)
		}
		return
	}
	for i := range out[1:] {
		if out[1+i].Tag == "" {
			t.Errorf("decode %.60q gave a point without a tag", p)
		}
	}
}

func framingLimits(t *testing.T, c *engine.Codec) {
	in := Points()
	// The largest single message the framing can make of one point (asset:
	// of one asset) bounds what a limit must let through.
	var largest int
	for i := range in {
		largest = max(largest, len(c.Encode(nil, in[i:i+1])))
	}
	for _, limit := range []int{0, 1, largest / 2, largest, largest + 10, 3 * largest, 1 << 20} {
		pts := Points()
		f := codec.Framer{Codec: c, MaxBytes: limit, Delimit: '\n'}
		rejected := 0
		buf, frames := f.Append([]byte("x"), nil, pts, func(p []engine.Point, err error) {
			if !errors.Is(err, codec.ErrTooLarge) {
				t.Errorf("limit %d: rejected with %v, want ErrTooLarge", limit, err)
			}
			rejected += len(p)
		})
		framed := 0
		end := 1
		for _, fr := range frames {
			if fr.Start != end {
				t.Errorf("limit %d: frame starts at %d, want %d (after the last one and its delimiter)", limit, fr.Start, end)
			}
			end = fr.End + 1
			if buf[fr.End] != '\n' {
				t.Errorf("limit %d: no delimiter after a frame", limit)
			}
			if limit > 0 && fr.End-fr.Start > limit {
				t.Errorf("limit %d: message of %d bytes", limit, fr.End-fr.Start)
			}
			if len(fr.Points) == 0 {
				t.Errorf("limit %d: frame without points", limit)
			}
			if !bytes.Equal(fr.Payload(buf), c.Encode(nil, fr.Points)) {
				t.Errorf("limit %d: frame is not its points' encoding", limit)
			}
			switch c.Framing {
			case engine.FramePoint:
				if len(fr.Points) != 1 {
					t.Errorf("limit %d: %d points in a per-point message", limit, len(fr.Points))
				}
			case engine.FrameAsset:
				for _, p := range fr.Points {
					if p.Asset != fr.Points[0].Asset {
						t.Errorf("limit %d: assets %q and %q in one message", limit, p.Asset, fr.Points[0].Asset)
					}
				}
			}
			framed += len(fr.Points)
		}
		if framed+rejected != len(in) {
			t.Errorf("limit %d: %d framed + %d rejected != %d points", limit, framed, rejected, len(in))
		}
		if limit == 0 || limit >= 3*largest {
			if rejected != 0 && c.Framing != engine.FrameAsset {
				t.Errorf("limit %d: %d points rejected", limit, rejected)
			}
		}
		if limit >= largest && c.Framing != engine.FrameAsset && rejected != 0 {
			t.Errorf("limit %d (the largest point's message): %d points rejected", limit, rejected)
		}
		if c.Framing == engine.FrameBatch && limit == 0 && len(frames) != 1 {
			t.Errorf("no limit: %d messages for one batch", len(frames))
		}
		if c.Framing == engine.FrameBatch && limit > 0 && limit < 3*largest && len(frames) < 2 && rejected == 0 {
			t.Errorf("limit %d: the batch was not split", limit)
		}
	}
}
