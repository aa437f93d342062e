package payload

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/pointexpr"
)

// topicEnv is what asset_expr and tag_expr see: the topic's levels.
type topicEnv struct {
	Topic []string `expr:"topic"`
}

// msgEnv is what the map block's expressions see: the topic's levels and
// the decoded JSON payload (numbers as int or float64).
type msgEnv struct {
	Topic   []string       `expr:"topic"`
	Payload map[string]any `expr:"payload"`
}

// pathEnv and pathMsgEnv are topicEnv and msgEnv for an HTTP path.
type pathEnv struct {
	Path []string `expr:"path"`
}

type pathMsgEnv struct {
	Path    []string       `expr:"path"`
	Payload map[string]any `expr:"payload"`
}

// noEnv and payloadEnv are for sources without a subject (UDP).
type noEnv struct{}

type payloadEnv struct {
	Payload map[string]any `expr:"payload"`
}

// envFor is the compile-time environment for a subject name.
func envFor(subject string, payload bool) any {
	switch {
	case subject == "topic" && payload:
		return msgEnv{}
	case subject == "topic":
		return topicEnv{}
	case subject == "path" && payload:
		return pathMsgEnv{}
	case subject == "path":
		return pathEnv{}
	case payload:
		return payloadEnv{}
	}
	return noEnv{}
}

// msgExpr is a compiled expression over a message. Expressions made of
// quoted strings and topic levels joined by + run natively (no allocation
// for a single level); anything else runs on expr's VM.
type msgExpr struct {
	field string
	src   string
	prog  *vm.Program
	parts []part // native form; nil when the VM is needed
}

// part is a literal or a topic level (index, negative from the end).
type part struct {
	lit   string
	level int
	isLit bool
}

// compileExpr compiles x for the attribute field with the engine's
// expression front end; payload says whether the payload is in scope (the
// map block). Compile errors are *engine.FieldError values pointing at the
// column inside the expression.
func compileExpr(subject, field string, x engine.Expr, payload bool, want pointexpr.Result) (*msgExpr, error) {
	prog, err := pointexpr.CompileEnv(field, x, envFor(subject, payload), want)
	if err != nil {
		return nil, err
	}
	e := &msgExpr{field: field, src: x.Src, prog: prog}
	if parts, ok := flatten(subject, prog.Node(), nil); ok && subject != "" {
		e.parts = parts
	}
	return e, nil
}

// flatten reads a tree of quoted strings and subject[N] (topic[N]) joined by
// + into its parts; ok is false for anything else.
func flatten(subject string, n ast.Node, out []part) ([]part, bool) {
	switch n := n.(type) {
	case *ast.StringNode:
		return append(out, part{lit: n.Value, isLit: true}), true
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		idx, ok2 := n.Property.(*ast.IntegerNode)
		if !ok || !ok2 || id.Value != subject || n.Method || n.Optional {
			return nil, false
		}
		return append(out, part{level: idx.Value}), true
	case *ast.BinaryNode:
		if n.Operator != "+" {
			return nil, false
		}
		out, ok := flatten(subject, n.Left, out)
		if !ok {
			return nil, false
		}
		return flatten(subject, n.Right, out)
	}
	return nil, false
}

// evaluator runs a decoder's expressions: it owns the VM and the reused
// environment, so each goroutine needs its own (Decoder.clone).
type evaluator struct {
	vm     vm.VM
	topic  topicEnv
	msg    msgEnv
	path   pathEnv
	pmsg   pathMsgEnv
	none   noEnv
	pl     payloadEnv
	levels []string // topic levels of the current message, split on demand
	split  bool
	buf    []byte
}

// reset prepares for a new message.
func (ev *evaluator) reset() { ev.split = false }

func (ev *evaluator) topicLevels(topic string) []string {
	if !ev.split {
		ev.levels = ev.levels[:0]
		for {
			i := strings.IndexByte(topic, '/')
			if i < 0 {
				break
			}
			ev.levels = append(ev.levels, topic[:i])
			topic = topic[i+1:]
		}
		ev.levels = append(ev.levels, topic)
		ev.split = true
	}
	return ev.levels
}

// level returns topic level i (negative: from the end) without splitting.
func level(topic string, i int) (string, bool) {
	if i < 0 {
		n := strings.Count(topic, "/") + 1
		i += n
		if i < 0 {
			return "", false
		}
	}
	for ; i > 0; i-- {
		j := strings.IndexByte(topic, '/')
		if j < 0 {
			return "", false
		}
		topic = topic[j+1:]
	}
	if j := strings.IndexByte(topic, '/'); j >= 0 {
		return topic[:j], true
	}
	return topic, true
}

// eval evaluates e for a message; payload is nil outside the map format.
func (ev *evaluator) eval(subject string, e *msgExpr, topic string, payload map[string]any) (any, error) {
	if e.parts != nil {
		s, err := ev.native(subject, e, topic)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	var env any
	switch {
	case subject == "topic" && payload != nil:
		ev.msg.Topic, ev.msg.Payload = ev.topicLevels(topic), payload
		env = &ev.msg
	case subject == "topic":
		ev.topic.Topic = ev.topicLevels(topic)
		env = &ev.topic
	case subject == "path" && payload != nil:
		ev.pmsg.Path, ev.pmsg.Payload = ev.topicLevels(topic), payload
		env = &ev.pmsg
	case subject == "path":
		ev.path.Path = ev.topicLevels(topic)
		env = &ev.path
	case payload != nil:
		ev.pl.Payload = payload
		env = &ev.pl
	default:
		env = &ev.none
	}
	out, err := ev.vm.Run(e.prog, env)
	ev.msg.Payload, ev.pmsg.Payload, ev.pl.Payload = nil, nil, nil
	if err != nil {
		return nil, fmt.Errorf("%s: %s", e.field, firstLine(err.Error()))
	}
	return out, nil
}

// evalString evaluates e and renders the result as a string (nil is "").
func (ev *evaluator) evalString(subject string, e *msgExpr, topic string, payload map[string]any) (string, error) {
	if e.parts != nil {
		return ev.native(subject, e, topic)
	}
	v, err := ev.eval(subject, e, topic, payload)
	if err != nil {
		return "", err
	}
	return valueString(v), nil
}

func (ev *evaluator) native(subject string, e *msgExpr, topic string) (string, error) {
	if len(e.parts) == 1 {
		return ev.part(subject, e, &e.parts[0], topic)
	}
	b := ev.buf[:0]
	for i := range e.parts {
		s, err := ev.part(subject, e, &e.parts[i], topic)
		if err != nil {
			return "", err
		}
		b = append(b, s...)
	}
	ev.buf = b
	return string(b), nil
}

func (ev *evaluator) part(subject string, e *msgExpr, p *part, topic string) (string, error) {
	if p.isLit {
		return p.lit, nil
	}
	s, ok := level(topic, p.level)
	if !ok {
		return "", fmt.Errorf("%s: %s %q has no level %d", e.field, subject, topic, p.level)
	}
	return s, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func valueString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case nil:
		return ""
	case bool:
		return strconv.FormatBool(t)
	case int:
		return strconv.Itoa(t)
	case float64:
		return strconv.FormatFloat(t, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// numbers replaces the json.Number values of a decoded document with int
// (integers that fit) or float64, so expressions can compute with them.
func numbers(v any) (any, error) {
	switch t := v.(type) {
	case json.Number:
		s := t.String()
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 0); err == nil {
				return int(i), nil
			}
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("number %s: %w", s, err)
		}
		return f, nil
	case map[string]any:
		for k, x := range t {
			y, err := numbers(x)
			if err != nil {
				return nil, err
			}
			t[k] = y
		}
	case []any:
		for i, x := range t {
			y, err := numbers(x)
			if err != nil {
				return nil, err
			}
			t[i] = y
		}
	}
	return v, nil
}
