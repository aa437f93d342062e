package mqtt

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Term is one operand of a concatenation expression: a quoted literal, or a
// name with an optional index (topic[1]) or field path (attrs.line,
// payload.data.temp).
type Term struct {
	Lit    string
	IsLit  bool
	Name   string
	Index  int // -1 when there is none
	Path   []string
	Offset int // byte offset in the source, for error positions
}

// ParseConcat parses the small expression language of topic templates and
// payload mappings: operands joined by +, where an operand is a quoted
// string ('plant/' or "plant/"), a name (asset, tag, topic), an indexed
// name (topic[1]) or a dotted path (attrs.line, payload.data.value).
//
//	'plant/' + asset + '/' + tag
//	topic[1]
func ParseConcat(src string) ([]Term, error) {
	var out []Term
	i := 0
	skip := func() {
		for i < len(src) && (src[i] == ' ' || src[i] == '\t') {
			i++
		}
	}
	for {
		skip()
		if i >= len(src) {
			return nil, &PosError{Offset: i, Err: errors.New("expected an operand")}
		}
		start := i
		switch c := src[i]; {
		case c == '\'' || c == '"':
			j := strings.IndexByte(src[i+1:], c)
			if j < 0 {
				return nil, &PosError{Offset: i, Err: errors.New("unterminated string")}
			}
			out = append(out, Term{Lit: src[i+1 : i+1+j], IsLit: true, Index: -1, Offset: start})
			i += j + 2
		case isIdentStart(c):
			j := i
			for j < len(src) && (isIdentStart(src[j]) || src[j] == '.' || (src[j] >= '0' && src[j] <= '9')) {
				j++
			}
			parts := strings.Split(src[i:j], ".")
			for _, p := range parts {
				if p == "" {
					return nil, &PosError{Offset: i, Err: fmt.Errorf("bad name %q", src[i:j])}
				}
			}
			t := Term{Name: parts[0], Path: parts[1:], Index: -1, Offset: start}
			i = j
			if i < len(src) && src[i] == '[' {
				k := strings.IndexByte(src[i:], ']')
				if k < 0 {
					return nil, &PosError{Offset: i, Err: errors.New("missing ]")}
				}
				n, err := strconv.Atoi(strings.TrimSpace(src[i+1 : i+k]))
				if err != nil || n < 0 {
					return nil, &PosError{Offset: i + 1, Err: errors.New("index must be a non-negative integer")}
				}
				t.Index = n
				i += k + 1
			}
			out = append(out, t)
		default:
			return nil, &PosError{Offset: i, Err: fmt.Errorf("unexpected %q", c)}
		}
		skip()
		if i >= len(src) {
			return out, nil
		}
		if src[i] != '+' {
			return nil, &PosError{Offset: i, Err: fmt.Errorf("expected + or the end, found %q", src[i])}
		}
		i++
	}
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// PosError is an error at a byte offset of an expression.
type PosError struct {
	Offset int
	Err    error
}

func (e *PosError) Error() string { return e.Err.Error() }
func (e *PosError) Unwrap() error { return e.Err }

// TopicLevel returns level i (0-based) of an MQTT topic, or "".
func TopicLevel(topic string, i int) string {
	for ; i > 0; i-- {
		j := strings.IndexByte(topic, '/')
		if j < 0 {
			return ""
		}
		topic = topic[j+1:]
	}
	if j := strings.IndexByte(topic, '/'); j >= 0 {
		return topic[:j]
	}
	return topic
}
