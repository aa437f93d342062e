package diskq

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/flowd/flowd/engine"
)

// A record's payload is a compact binary encoding of one batch. Each point:
//
//	flags    byte: bits 0-2 value kind, bit 3 asset same as the previous
//	         point's, bit 4 has attrs, bits 5-6 quality
//	asset    uvarint length + bytes (absent when bit 3 is set)
//	tag      uvarint length + bytes
//	value    float: 8 bytes little endian; int: varint; uint: uvarint;
//	         bool: 1 byte; string: uvarint length + bytes; null: nothing
//	status   uvarint
//	ts       varint, delta from the previous point's ts
//	ingest   varint, wall-clock nanoseconds, delta from the previous point's
//	attrs    uvarint count, then key and value as strings (when bit 4 is set)

const (
	flagSameAsset = 1 << 3
	flagAttrs     = 1 << 4
	qualityShift  = 5
)

var errCorrupt = errors.New("diskq: corrupt record")

// ingestWall converts an engine clock reading to wall-clock nanoseconds, the
// form that survives a restart.
func ingestWall(mono int64) int64 {
	if mono == 0 {
		return 0
	}
	return engine.WallFromMono(mono)
}

// ingestMono converts back to this process's engine clock.
func ingestMono(wall int64) int64 {
	if wall == 0 {
		return 0
	}
	m := wall - engine.WallFromMono(0)
	if m == 0 {
		m = -1 // 0 means "not stamped"
	}
	return m
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodePoints appends the encoding of points to b.
func encodePoints(b []byte, points []engine.Point) []byte {
	var prevAsset string
	var prevTS, prevIngest int64
	for i := range points {
		p := &points[i]
		v := p.Value
		flags := byte(v.Kind()) | byte(p.Quality&3)<<qualityShift
		same := i > 0 && p.Asset == prevAsset
		if same {
			flags |= flagSameAsset
		}
		if len(p.Attrs) > 0 {
			flags |= flagAttrs
		}
		b = append(b, flags)
		if !same {
			b = appendString(b, p.Asset)
		}
		prevAsset = p.Asset
		b = appendString(b, p.Tag)
		switch v.Kind() {
		case engine.KindFloat:
			f, _ := v.Float64()
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
		case engine.KindInt:
			n, _ := v.Int64()
			b = binary.AppendVarint(b, n)
		case engine.KindUint:
			u, _ := v.Uint64()
			b = binary.AppendUvarint(b, u)
		case engine.KindBool:
			t, _ := v.AsBool()
			if t {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		case engine.KindString:
			s, _ := v.Str()
			b = appendString(b, s)
		}
		b = binary.AppendUvarint(b, uint64(p.Status))
		b = binary.AppendVarint(b, p.TS-prevTS)
		prevTS = p.TS
		w := ingestWall(p.Ingest)
		b = binary.AppendVarint(b, w-prevIngest)
		prevIngest = w
		if len(p.Attrs) > 0 {
			b = binary.AppendUvarint(b, uint64(len(p.Attrs)))
			for k, val := range p.Attrs {
				b = appendString(b, k)
				b = appendString(b, val)
			}
		}
	}
	return b
}

type decoder struct {
	b   []byte
	err bool
	// intern maps names seen before (assets, tags, attribute keys) to one
	// string, so replaying a backlog does not allocate them per point.
	intern map[string]string
}

const maxInterned = 1 << 14

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.err = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err || n > uint64(len(d.b)) {
		d.err = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) name() string {
	n := d.uvarint()
	if d.err || n > uint64(len(d.b)) {
		d.err = true
		return ""
	}
	raw := d.b[:n]
	d.b = d.b[n:]
	if d.intern == nil {
		return string(raw)
	}
	if s, ok := d.intern[string(raw)]; ok {
		return s
	}
	if len(d.intern) >= maxInterned {
		clear(d.intern)
	}
	s := string(raw)
	d.intern[s] = s
	return s
}

// decodePoints decodes count points from payload, appending to dst.
// intern, when not nil, is used and filled to share repeated names.
func decodePoints(dst []engine.Point, payload []byte, count int, intern map[string]string) ([]engine.Point, error) {
	if count < 0 || count > len(payload)/4+1 {
		return dst, errCorrupt
	}
	d := decoder{b: payload, intern: intern}
	var prevAsset string
	var prevTS, prevIngest int64
	for i := 0; i < count; i++ {
		flags := d.byte()
		var p engine.Point
		if flags&flagSameAsset != 0 {
			if i == 0 {
				return dst, errCorrupt
			}
			p.Asset = prevAsset
		} else {
			p.Asset = d.name()
			prevAsset = p.Asset
		}
		p.Tag = d.name()
		var ok bool
		if p.Value, ok = d.value(engine.Kind(flags & 7)); !ok {
			return dst, errCorrupt
		}
		q := engine.Quality(flags >> qualityShift & 3)
		if q > engine.Bad {
			return dst, errCorrupt
		}
		p.Quality = q
		st := d.uvarint()
		if st > math.MaxUint32 {
			return dst, errCorrupt
		}
		p.Status = uint32(st)
		prevTS += d.varint()
		p.TS = prevTS
		prevIngest += d.varint()
		p.Ingest = ingestMono(prevIngest)
		if flags&flagAttrs != 0 {
			if p.Attrs, ok = d.attrs(); !ok {
				return dst, errCorrupt
			}
		}
		if d.err {
			return dst, errCorrupt
		}
		dst = append(dst, p)
	}
	if len(d.b) != 0 {
		return dst, errCorrupt
	}
	return dst, nil
}

// value decodes a value of kind k; false means the payload is corrupt.
func (d *decoder) value(k engine.Kind) (engine.Value, bool) {
	switch k {
	case engine.KindNull:
		return engine.Null(), true
	case engine.KindFloat:
		if len(d.b) < 8 {
			return engine.Value{}, false
		}
		v := engine.Float(math.Float64frombits(binary.LittleEndian.Uint64(d.b)))
		d.b = d.b[8:]
		return v, true
	case engine.KindInt:
		return engine.Int(d.varint()), true
	case engine.KindUint:
		u := d.uvarint()
		if u <= math.MaxInt64 {
			return engine.Value{}, false // written as an int
		}
		return engine.Uint(u), true
	case engine.KindBool:
		c := d.byte()
		if c > 1 {
			return engine.Value{}, false
		}
		return engine.Bool(c == 1), true
	case engine.KindString:
		return engine.String(d.string()), true
	}
	return engine.Value{}, false
}

// attrs decodes a point's attributes; false means the count cannot be
// right. A failed read inside sets d.err, which the caller checks.
func (d *decoder) attrs() (map[string]string, bool) {
	n := d.uvarint()
	if d.err || n == 0 || n > uint64(len(d.b)) {
		return nil, false
	}
	attrs := make(map[string]string, n)
	for j := uint64(0); j < n && !d.err; j++ {
		k := d.name()
		attrs[k] = d.string()
	}
	return attrs, true
}
