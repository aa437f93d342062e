package modbus

import (
	"bytes"
	"encoding/binary"
	"math"

	"github.com/flowd/flowd/engine"
)

// regs puts a numeric tag's registers (raw, as on the wire: each register
// big-endian) into buf in big-endian order of the whole value, applying the
// tag's byte order (inside a register) and word order (of the registers).
func (t *tag) regs(raw []byte, buf *[8]byte) []byte {
	n := t.size
	out := buf[:2*n]
	for i := 0; i < n; i++ {
		w := i
		if t.wordLE {
			w = n - 1 - i // low word first on the wire
		}
		hi, lo := raw[2*w], raw[2*w+1]
		if t.byteLE {
			hi, lo = lo, hi
		}
		out[2*i], out[2*i+1] = hi, lo
	}
	return out
}

// decodeRegs turns a register tag's bytes (raw: the block's answer starting
// at the tag's first register) into a value.
func (t *tag) decodeRegs(raw []byte) engine.Value {
	if t.typ == dString {
		return t.decodeString(raw[:2*t.size])
	}
	if t.typ == dBool {
		w := binary.BigEndian.Uint16(raw)
		if t.byteLE {
			w = w<<8 | w>>8
		}
		return engine.Bool(w>>t.bit&1 == 1)
	}
	var buf [8]byte
	b := t.regs(raw, &buf)
	var i int64
	var f float64
	isFloat := false
	switch t.typ {
	case dUint16:
		i = int64(binary.BigEndian.Uint16(b))
	case dInt16:
		i = int64(int16(binary.BigEndian.Uint16(b)))
	case dUint32:
		i = int64(binary.BigEndian.Uint32(b))
	case dInt32:
		i = int64(int32(binary.BigEndian.Uint32(b)))
	case dUint64:
		u := binary.BigEndian.Uint64(b)
		if !t.scaled {
			return engine.Uint(u) // exact beyond int64 too
		}
		f, isFloat = float64(u), true
	case dInt64:
		i = int64(binary.BigEndian.Uint64(b))
	case dFloat32:
		f, isFloat = float64(math.Float32frombits(binary.BigEndian.Uint32(b))), true
	case dFloat64:
		f, isFloat = math.Float64frombits(binary.BigEndian.Uint64(b)), true
	}
	if !t.scaled {
		if isFloat {
			return engine.Float(f)
		}
		return engine.Int(i)
	}
	if !isFloat {
		f = float64(i)
	}
	return engine.Float(f*t.scale + t.offset)
}

// decodeString reads two characters per register (the first in the high
// byte, unless byte_order is little), up to the first NUL; trailing spaces
// are kept, as the device sent them. The string is allocated only when the
// registers changed since the last read.
func (t *tag) decodeString(raw []byte) engine.Value {
	var tmp [250]byte // a string is at most one read: 125 registers
	s := tmp[:len(raw)]
	copy(s, raw)
	if t.byteLE {
		for i := 0; i+1 < len(s); i += 2 {
			s[i], s[i+1] = s[i+1], s[i]
		}
	}
	if k := bytes.IndexByte(s, 0); k >= 0 {
		s = s[:k]
	}
	if t.lastRaw == nil || !bytes.Equal(s, t.lastRaw) {
		t.lastRaw = append(t.lastRaw[:0], s...)
		t.lastStr = string(s)
	}
	return engine.String(t.lastStr)
}

// decodeBlock appends one point per tag of a register block.
func decodeBlock(dst []engine.Point, bl *block, raw []byte, ts int64) []engine.Point {
	for _, t := range bl.tags {
		off := 2 * (t.addr - bl.start)
		dst = append(dst, engine.Point{Asset: t.asset, Tag: t.name, Value: t.decodeRegs(raw[off:]), Quality: engine.Good, TS: ts})
	}
	return dst
}

// decodeBits appends one point per tag of a coil or discrete input block.
func decodeBits(dst []engine.Point, bl *block, bits []bool, ts int64) []engine.Point {
	for _, t := range bl.tags {
		dst = append(dst, engine.Point{Asset: t.asset, Tag: t.name, Value: engine.Bool(bits[t.addr-bl.start]), Quality: engine.Good, TS: ts})
	}
	return dst
}

// badBlock appends every tag of a block with quality bad and status code.
func badBlock(dst []engine.Point, bl *block, code uint32, ts int64) []engine.Point {
	for _, t := range bl.tags {
		dst = append(dst, engine.Point{Asset: t.asset, Tag: t.name, Quality: engine.Bad, Status: code, TS: ts})
	}
	return dst
}
