package engine

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Framing is how an encoder groups points into messages. It is a property of
// the codec, applied by one framer (engine/codec) in every sink, so a format
// means the same message boundaries wherever it is written.
type Framing string

const (
	// FramePoint: one message per point.
	FramePoint Framing = "point"
	// FrameBatch: one message per batch (per topic or key where the sink
	// routes), split in halves until each message is under the sink's byte
	// limit.
	FrameBatch Framing = "batch"
	// FrameAsset: one message per asset per batch.
	FrameAsset Framing = "asset"
)

// Codec declares a payload format once: its documentation, how it encodes
// points into one message's payload, and how it decodes a payload into points.
// Either half may be nil (a decode-only or encode-only format).
type Codec struct {
	Name        string
	Summary     string
	Description string
	// Example is a payload in this format (for the docs).
	Example string
	// ContentType is the payload's media type (the MQTT v5 content type).
	ContentType string
	// Framing says which points Encode gets for one message.
	Framing Framing
	// Encode appends one message's payload: one point (FramePoint), a batch
	// or part of it (FrameBatch), or one asset's points (FrameAsset, all with
	// the same Asset). It must not keep points.
	Encode func(b []byte, points []Point) []byte
	// Decode appends the points of one message to dst. A payload it rejects
	// returns dst unchanged (its original length) and an error that wraps a
	// *DecodeError naming the reason.
	Decode func(dst []Point, m *Message) ([]Point, error)
}

// Message is one received payload with what the source knows about it.
type Message struct {
	// Subject is where the message came from: an MQTT topic, an HTTP path, a
	// file name; "" when the source has none.
	Subject string
	Payload []byte
	// Now is the receive time (Unix ns), the ts of points that carry none.
	Now int64
	// Fill, when set, completes a point the payload left without asset or
	// tag (the source's asset/tag settings) before the codec checks it.
	Fill PointFiller
}

// PointFiller completes a decoded point from the message's subject.
type PointFiller interface {
	FillPoint(p *Point, subject string) error
}

// Decode reasons shared by the codecs (DecodeError.Reason).
const (
	ReasonSyntax  = "syntax"  // not well-formed in the codec's format
	ReasonShape   = "shape"   // well-formed, but not a shape the codec reads
	ReasonNoTag   = "no_tag"  // a point without a tag
	ReasonValue   = "value"   // a value of the wrong type
	ReasonQuality = "quality" // an unknown quality
	ReasonTS      = "ts"      // a timestamp that is not one, or out of range
	ReasonEmpty   = "empty"   // no payload, or nothing in it
)

// DecodeError is a payload a codec rejects, with a short machine-readable
// reason (the Reason* constants) and the full explanation.
type DecodeError struct {
	Reason string
	Err    error
}

func (e *DecodeError) Error() string { return e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

// Rejectf makes a *DecodeError.
func Rejectf(reason, format string, args ...any) error {
	return &DecodeError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// RejectReason is the reason of a decode error, "decode" when it names none.
func RejectReason(err error) string {
	var de *DecodeError
	if errors.As(err, &de) && de.Reason != "" {
		return de.Reason
	}
	return "decode"
}

// Codecs is the set of payload formats a build has. Like the component
// registry it is built explicitly (cmd/flowd) and handed to components in
// Env.Codecs: nothing registers itself.
type Codecs struct {
	byName map[string]*Codec
}

// NewCodecs registers codecs; a name given twice is a programming error.
func NewCodecs(cs ...*Codec) *Codecs {
	r := &Codecs{byName: map[string]*Codec{}}
	for _, c := range cs {
		if c.Name == "" || (c.Encode == nil && c.Decode == nil) {
			panic(fmt.Sprintf("engine: codec %q encodes and decodes nothing", c.Name))
		}
		if c.Encode != nil && c.Framing == "" {
			panic(fmt.Sprintf("engine: codec %q encodes without a framing", c.Name))
		}
		if _, dup := r.byName[c.Name]; dup {
			panic(fmt.Sprintf("engine: codec %q registered twice", c.Name))
		}
		r.byName[c.Name] = c
	}
	return r
}

// All lists the codecs sorted by name.
func (r *Codecs) All() []*Codec {
	if r == nil {
		return nil
	}
	out := make([]*Codec, 0, len(r.byName))
	for _, c := range r.byName {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (r *Codecs) names(ok func(*Codec) bool) []string {
	var out []string
	for _, c := range r.All() {
		if ok(c) {
			out = append(out, c.Name)
		}
	}
	return out
}

// UnknownCodecError is a format name no codec of the build has (for the
// use asked: encoding or decoding), with the names there are.
type UnknownCodecError struct {
	Name  string
	Known []string
}

func (e *UnknownCodecError) Error() string {
	return fmt.Sprintf("unknown format %q: one of %s", e.Name, strings.Join(e.Known, ", "))
}

// Encoder finds a codec that encodes; the error lists the ones there are.
func (r *Codecs) Encoder(name string) (*Codec, error) {
	if r == nil {
		return nil, errors.New("no codecs registered")
	}
	c, ok := r.byName[name]
	if !ok || c.Encode == nil {
		return nil, &UnknownCodecError{Name: name, Known: r.names(func(c *Codec) bool { return c.Encode != nil })}
	}
	return c, nil
}

// Decoder finds a codec that decodes; extra are the names a source reads
// itself (map), listed in the error with the codecs.
func (r *Codecs) Decoder(name string, extra ...string) (*Codec, error) {
	if r == nil {
		return nil, errors.New("no codecs registered")
	}
	c, ok := r.byName[name]
	if !ok || c.Decode == nil {
		known := append(r.names(func(c *Codec) bool { return c.Decode != nil }), extra...)
		sort.Strings(known)
		return nil, &UnknownCodecError{Name: name, Known: known}
	}
	return c, nil
}
