package engine

import (
	"bytes"
	"testing"
	"time"
)

func TestRawPointKeepsAPrefixCopy(t *testing.T) {
	before := time.Now().UnixNano()
	for _, n := range []int{0, 10, RawBytes, RawBytes + 1, 64 << 10} {
		raw := bytes.Repeat([]byte{'x'}, n)
		p := RawPoint("topic/a", raw, map[string]string{"from": "here"})
		s, _ := p.Value.Str()
		if want := min(n, RawBytes); len(s) != want || p.Value.Kind() != KindString {
			t.Errorf("%d bytes: value of %d bytes (kind %v), want a string of %d", n, len(s), p.Value.Kind(), want)
		}
		if p.Tag != "topic/a" || p.Quality != Bad || p.Attrs["from"] != "here" || p.TS < before || p.TS > time.Now().UnixNano() {
			t.Errorf("%d bytes: %+v", n, p)
		}
		if n > 0 {
			raw[0] = 'y' // the caller's buffer is reused
			if s, _ := p.Value.Str(); s[0] != 'x' {
				t.Errorf("%d bytes: the value shares the caller's buffer", n)
			}
		}
	}
}
