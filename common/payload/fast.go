package payload

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
)

// The json format's fast path: the point, array and tag-map shapes read
// straight from the payload bytes, without reflection and, in steady state,
// without allocating (asset and tag names are interned per decoder, an attrs
// object equal to a recent message's reuses its map).
//
// It only ever accepts what the general decoder (encoding/json, in
// decode.go) accepts, with the same points. Anything unusual — escaped or
// invalid UTF-8 names and strings, duplicate members, keys that match a
// point field only case-insensitively (encoding/json matches those), a
// wrong type, any reject — makes it give up, and the general decoder decides
// and words the error. FuzzFastMatchesGeneral checks the two agree.

// maxNames bounds a decoder's interned names; past it the table starts over.
const maxNames = 16384

// fastState is a decoder's scratch for the fast path.
type fastState struct {
	names   map[string]string    // interned asset and tag names
	recent  [8]map[string]string // recent attrs maps, reused while equal
	next    int                  // the next slot of recent to replace
	members []member             // a tag map's entries
	seen    map[string]struct{}
}

func (f *fastState) name(b []byte) string {
	if s, ok := f.names[string(b)]; ok {
		return s
	}
	if len(f.names) >= maxNames {
		clear(f.names)
	}
	s := string(b)
	f.names[s] = s
	return s
}

// span is a value's bytes in the payload: [start, end).
type span struct{ start, end int }

type member struct{ key, val span }

// Point fields, indexes into codec.PointFields.
const (
	fAsset = iota
	fTag
	fValue
	fQuality
	fStatus
	fTS
	fAttrs
	nFields
)

// objectFields are the members of one point object that name a field.
type objectFields struct {
	has [nFields]bool
	val [nFields]span
}

// scanner walks a payload that json.Valid accepted.
type scanner struct {
	data []byte
	i    int
}

func (s *scanner) ws() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// str reads a string at s.i (at its quote); the span is its content.
// plain: no escapes and valid UTF-8, so the content is the string as
// encoding/json would decode it.
func (s *scanner) str() (sp span, plain bool) {
	s.i++
	sp.start = s.i
	// Most strings have no escape: find the closing quote with IndexByte.
	if j := bytes.IndexByte(s.data[s.i:], '"'); j >= 0 && bytes.IndexByte(s.data[s.i:s.i+j], '\\') < 0 {
		s.i += j + 1
		sp.end = s.i - 1
		return sp, utf8.Valid(s.data[sp.start:sp.end])
	}
	for {
		switch s.data[s.i] {
		case '"':
			sp.end = s.i
			s.i++
			return sp, false
		case '\\':
			s.i += 2
		default:
			s.i++
		}
	}
}

// skip moves past the value at s.i and returns its span.
func (s *scanner) skip() span {
	start := s.i
	switch s.data[s.i] {
	case '"':
		s.str()
	case '{', '[':
		depth := 0
		for {
			switch s.data[s.i] {
			case '"':
				s.str()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.i++
			if depth == 0 {
				break
			}
		}
	default:
		for s.i < len(s.data) {
			switch s.data[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return span{start, s.i}
			}
			s.i++
		}
	}
	return span{start, s.i}
}

// object calls fn for each member of the object at s.i and moves past it;
// it stops when fn returns false.
func (s *scanner) object(fn func(key span, plain bool, val span) bool) bool {
	s.i++ // {
	s.ws()
	if s.data[s.i] == '}' {
		s.i++
		return true
	}
	for {
		s.ws()
		key, plain := s.str()
		s.ws()
		s.i++ // :
		s.ws()
		val := s.skip()
		if !fn(key, plain, val) {
			return false
		}
		s.ws()
		c := s.data[s.i]
		s.i++
		if c == '}' {
			return true
		}
	}
}

// matchField classifies an object key among names: its index, -1 for another
// key, or ok false for a key encoding/json would match case-insensitively
// (or one that is not plain).
func matchField(key []byte, plain bool, names []string) (int, bool) {
	if !plain {
		return 0, false
	}
	for i, n := range names {
		if string(key) == n {
			return i, true
		}
	}
	for _, n := range names {
		if bytes.EqualFold(key, []byte(n)) {
			return 0, false
		}
	}
	return -1, true
}

// fields reads the point object at s.i; members that name no field are
// appended to rest when it is not nil (a tag map's entries).
func (s *scanner) fields(of *objectFields, rest *[]member) bool {
	return s.object(func(key span, plain bool, val span) bool {
		i, ok := matchField(s.data[key.start:key.end], plain, codec.PointFields[:])
		if !ok || i >= 0 && of.has[i] {
			return false
		}
		if i >= 0 {
			of.has[i], of.val[i] = true, val
		} else if rest != nil {
			*rest = append(*rest, member{key, val})
		}
		return true
	})
}

// decodeFast decodes the point, array and tag-map shapes; ok false means
// the general decoder must decide. data is trimmed and starts with { or [.
func (d *Decoder) decodeFast(dst []engine.Point, topic string, data []byte, now int64) (_ []engine.Point, ok bool) {
	if !json.Valid(data) {
		return dst, false
	}
	f := d.fast
	if f == nil {
		f = &fastState{names: map[string]string{}}
		d.fast = f
	}
	n := len(dst)
	s := &scanner{data: data}
	if data[0] == '[' {
		s.i++
		s.ws()
		if data[s.i] == ']' {
			return dst, false // empty array: rejected
		}
		for {
			s.ws()
			if data[s.i] != '{' {
				return dst[:n], false
			}
			var of objectFields
			if !s.fields(&of, nil) {
				return dst[:n], false
			}
			p, ok := d.fastPoint(f, data, &of, topic, now)
			if !ok {
				return dst[:n], false
			}
			dst = append(dst, p)
			s.ws()
			c := data[s.i]
			s.i++
			if c == ']' {
				return dst, true
			}
		}
	}
	var of objectFields
	f.members = f.members[:0]
	if !s.fields(&of, &f.members) {
		return dst, false
	}
	if of.has[fValue] || of.has[fTag] && data[of.val[fTag].start] == '"' && of.val[fTag].end-of.val[fTag].start > 2 {
		p, ok := d.fastPoint(f, data, &of, topic, now)
		if !ok {
			return dst, false
		}
		return append(dst, p), true
	}
	for _, h := range of.has {
		if h {
			return dst, false // a point object without tag and value: rejected
		}
	}
	return d.fastTagMap(f, dst, topic, data, now)
}

// plainString reads a JSON string or null; ok false for another type or a
// string that is not plain.
func plainString(raw []byte) (b []byte, ok bool) {
	if raw[0] == 'n' {
		return nil, true
	}
	if raw[0] != '"' {
		return nil, false
	}
	b = raw[1 : len(raw)-1]
	if bytes.IndexByte(b, '\\') >= 0 || !utf8.Valid(b) {
		return nil, false
	}
	return b, true
}

func (d *Decoder) fastPoint(f *fastState, data []byte, of *objectFields, topic string, now int64) (engine.Point, bool) {
	raw := func(i int) []byte { return data[of.val[i].start:of.val[i].end] }
	var p engine.Point
	if of.has[fAsset] {
		b, ok := plainString(raw(fAsset))
		if !ok {
			return p, false
		}
		if len(b) > 0 {
			p.Asset = f.name(b)
		}
	}
	if of.has[fTag] {
		b, ok := plainString(raw(fTag))
		if !ok {
			return p, false
		}
		if len(b) > 0 {
			p.Tag = f.name(b)
		}
	}
	p.Value = engine.Null()
	if of.has[fValue] {
		v, ok := fastScalar(raw(fValue))
		if !ok {
			return p, false
		}
		p.Value = v
	}
	quality := false
	if of.has[fQuality] {
		b, ok := plainString(raw(fQuality))
		if !ok {
			return p, false
		}
		if p.Quality, ok = engine.ParseQuality(string(b)); !ok {
			return p, false
		}
		quality = len(b) > 0
	}
	if of.has[fStatus] {
		c, ok := fastUint32(raw(fStatus))
		if !ok {
			return p, false
		}
		p.Status = c
	}
	p.TS = now
	if of.has[fTS] {
		ts, ok := fastTS(raw(fTS))
		if !ok {
			return p, false
		}
		if ts != 0 {
			p.TS = ts
		}
	}
	if p.Status != 0 && !quality {
		p.Quality = engine.QualityFromStatus(p.Status)
	}
	if of.has[fAttrs] {
		a, ok := f.attrsOf(data, of.val[fAttrs])
		if !ok {
			return p, false
		}
		p.Attrs = a
	}
	if err := d.assetTag(&p, topic); err != nil || p.Tag == "" {
		return p, false
	}
	return p, true
}

// fastScalar reads a value as ParseValue does; objects and arrays (which
// the json format rejects) and escaped or invalid strings give up.
func fastScalar(raw []byte) (engine.Value, bool) {
	switch raw[0] {
	case 'n':
		return engine.Null(), true
	case 't':
		return engine.Bool(true), true
	case 'f':
		return engine.Bool(false), true
	case '"':
		b, ok := plainString(raw)
		if !ok {
			return engine.Value{}, false
		}
		return engine.String(string(b)), true
	case '{', '[':
		return engine.Value{}, false
	}
	if bytes.ContainsAny(raw, ".eE") {
		f, err := strconv.ParseFloat(string(raw), 64)
		return engine.Float(f), err == nil
	}
	if i, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return engine.Int(i), true
	}
	if u, err := strconv.ParseUint(string(raw), 10, 64); err == nil {
		return engine.Uint(u), true
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	return engine.Float(f), err == nil
}

// fastUint32 reads a status code as encoding/json fills a uint32: a whole
// number in range, or null (0).
func fastUint32(raw []byte) (uint32, bool) {
	if raw[0] == 'n' {
		return 0, true
	}
	if raw[0] < '0' || raw[0] > '9' || bytes.ContainsAny(raw, ".eE") {
		return 0, false
	}
	c, err := strconv.ParseUint(string(raw), 10, 32)
	return uint32(c), err == nil
}

// fastTS reads a timestamp as codec.ParseTS does.
func fastTS(raw []byte) (int64, bool) {
	switch c := raw[0]; {
	case c == 'n':
		return 0, true
	case c == '"':
		b, ok := plainString(raw)
		if !ok {
			return 0, false
		}
		// ParseTime and ParseMillis keep no reference to their argument
		// (they only parse it and format it into a new error), so the
		// payload's bytes can be lent without a copy.
		ts, err := codec.ParseTime(unsafe.String(unsafe.SliceData(b), len(b)))
		return ts, err == nil
	case c == '-' || c >= '0' && c <= '9':
		ts, err := codec.ParseMillis(unsafe.String(unsafe.SliceData(raw), len(raw)))
		return ts, err == nil
	}
	return 0, false
}

// attrsOf reads an attrs object of strings (null members are ""), reusing
// one of the recent messages' maps when it is equal: points treat Attrs as
// immutable, so equal maps may be shared. Several are kept because
// publishers pad or label messages with a few alternating values.
func (f *fastState) attrsOf(data []byte, v span) (map[string]string, bool) {
	if data[v.start] == 'n' {
		return nil, true
	}
	if data[v.start] != '{' {
		return nil, false
	}
	s := &scanner{data: data[:v.end], i: v.start}
	var mem [8]member
	count, reuse := 0, true
	ok := s.object(func(key span, plain bool, val span) bool {
		if !plain {
			return false
		}
		if _, ok := plainString(data[val.start:val.end]); !ok {
			return false
		}
		if count < len(mem) {
			for _, prev := range mem[:count] {
				if string(data[prev.key.start:prev.key.end]) == string(data[key.start:key.end]) {
					reuse = false // a repeated key: its last value wins
				}
			}
			mem[count] = member{key, val}
		} else {
			reuse = false
		}
		count++
		return true
	})
	if !ok {
		return nil, false
	}
	if count == 0 {
		return nil, true
	}
	if reuse {
		for _, m := range f.recent {
			if len(m) == count && sameAttrs(m, data, mem[:count]) {
				return m, true
			}
		}
	}
	m := make(map[string]string, count)
	s = &scanner{data: data[:v.end], i: v.start}
	s.object(func(key span, _ bool, val span) bool {
		b, _ := plainString(data[val.start:val.end])
		m[string(data[key.start:key.end])] = string(b)
		return true
	})
	if reuse {
		f.recent[f.next%len(f.recent)] = m
		f.next++
	}
	return m, true
}

// sameAttrs reports whether m holds exactly the (distinct) members.
func sameAttrs(m map[string]string, data []byte, members []member) bool {
	for _, mb := range members {
		b, _ := plainString(data[mb.val.start:mb.val.end])
		if old, found := m[string(data[mb.key.start:mb.key.end])]; !found || old != string(b) {
			return false
		}
	}
	return true
}

// gatewayFields are the members of a tag-map entry object.
var gatewayFields = [...]string{"Value", "SourceTimestamp", "StatusCode"}

var codeField = [...]string{"Code"}

func (d *Decoder) fastTagMap(f *fastState, dst []engine.Point, topic string, data []byte, now int64) ([]engine.Point, bool) {
	n := len(dst)
	if len(f.members) == 0 {
		return dst, false
	}
	asset := ""
	if d.asset.set {
		var err error
		if asset, err = d.str(&d.asset, topic); err != nil {
			return dst, false
		}
	}
	for _, m := range f.members {
		key := data[m.key.start:m.key.end]
		if len(key) == 0 {
			return dst[:n], false
		}
		// matchField already gave up on escaped and invalid keys.
		p := engine.Point{Asset: asset, Tag: f.name(key), TS: now}
		raw := data[m.val.start:m.val.end]
		if raw[0] == '{' {
			var has [3]bool
			var val [3]span
			s := &scanner{data: data[:m.val.end], i: m.val.start}
			if !s.object(func(key span, plain bool, v span) bool {
				i, ok := matchField(data[key.start:key.end], plain, gatewayFields[:])
				if !ok || i >= 0 && has[i] {
					return false
				}
				if i >= 0 {
					has[i], val[i] = true, v
				}
				return true
			}) || !has[0] {
				return dst[:n], false
			}
			v, ok := fastScalar(data[val[0].start:val[0].end])
			if !ok {
				return dst[:n], false
			}
			p.Value = v
			if has[1] {
				ts, ok := fastTS(data[val[1].start:val[1].end])
				if !ok {
					return dst[:n], false
				}
				if ts != 0 {
					p.TS = ts
				}
			}
			var code uint32
			if has[2] {
				if code, ok = fastStatusCode(data, val[2]); !ok {
					return dst[:n], false
				}
			}
			p.Status, p.Quality = code, engine.QualityFromStatus(code)
		} else {
			v, ok := fastScalar(raw)
			if !ok {
				return dst[:n], false
			}
			p.Value = v
		}
		dst = append(dst, p)
	}
	if !f.distinct(dst[n:]) {
		return dst[:n], false // a repeated tag: the general decoder keeps the last
	}
	return dst, true
}

// fastStatusCode reads an OPC UA status code: a number, null, or
// {"Code": n, …}.
func fastStatusCode(data []byte, v span) (uint32, bool) {
	if data[v.start] != '{' {
		return fastUint32(data[v.start:v.end])
	}
	var code uint32
	has, ok := false, true
	s := &scanner{data: data[:v.end], i: v.start}
	if !s.object(func(key span, plain bool, val span) bool {
		i, fine := matchField(data[key.start:key.end], plain, codeField[:])
		if !fine || i == 0 && has {
			return false
		}
		if i == 0 {
			has = true
			code, ok = fastUint32(data[val.start:val.end])
		}
		return ok
	}) {
		return 0, false
	}
	return code, ok
}

// distinct reports whether the points' tags (interned) are all different.
func (f *fastState) distinct(pts []engine.Point) bool {
	if len(pts) <= 16 {
		for i := range pts {
			for j := i + 1; j < len(pts); j++ {
				if pts[i].Tag == pts[j].Tag {
					return false
				}
			}
		}
		return true
	}
	if f.seen == nil {
		f.seen = map[string]struct{}{}
	}
	defer clear(f.seen)
	for i := range pts {
		if _, dup := f.seen[pts[i].Tag]; dup {
			return false
		}
		f.seen[pts[i].Tag] = struct{}{}
	}
	return true
}
