package pointexpr

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/expr-lang/expr/ast"
	"github.com/flowd/flowd/engine"
)

// evalFn is a natively compiled expression node.
type evalFn func(p *engine.Point) (engine.Value, error)

// compileNode turns a checked expr AST into closures over the point, or
// returns nil when the tree uses something only the VM does. The semantics
// follow expr's runtime: int op int stays int (but / is always float), ints
// and floats compare as numbers, == between different kinds is false.
func compileNode(n ast.Node) evalFn {
	switch n := n.(type) {
	case *ast.NilNode:
		return constant(engine.Null())
	case *ast.IntegerNode:
		return constant(engine.Int(int64(n.Value)))
	case *ast.FloatNode:
		return constant(engine.Float(n.Value))
	case *ast.BoolNode:
		return constant(engine.Bool(n.Value))
	case *ast.StringNode:
		return constant(engine.String(n.Value))
	case *ast.ConstantNode:
		switch n.Value.(type) {
		case nil, int, int64, float64, bool, string:
			return constant(engine.ValueOf(n.Value))
		}
		return nil
	case *ast.IdentifierNode:
		return identifier(n.Value)
	case *ast.ChainNode:
		return compileNode(n.Node)
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		key, ok2 := n.Property.(*ast.StringNode)
		if !ok || !ok2 || id.Value != "attrs" || n.Method {
			return nil
		}
		k := key.Value
		return func(p *engine.Point) (engine.Value, error) {
			return engine.String(p.Attrs[k]), nil
		}
	case *ast.UnaryNode:
		return unary(n)
	case *ast.BinaryNode:
		return binary(n)
	case *ast.ConditionalNode:
		c, a, b := compileNode(n.Cond), compileNode(n.Exp1), compileNode(n.Exp2)
		if c == nil || a == nil || b == nil {
			return nil
		}
		return func(p *engine.Point) (engine.Value, error) {
			cv, err := c(p)
			if err != nil {
				return cv, err
			}
			t, ok := cv.AsBool()
			if !ok {
				return engine.Null(), fmt.Errorf("condition is %s, not bool", cv.Kind())
			}
			if t {
				return a(p)
			}
			return b(p)
		}
	case *ast.CallNode:
		return call(n)
	case *ast.BuiltinNode:
		return builtin(n)
	}
	return nil
}

func constant(v engine.Value) evalFn {
	return func(*engine.Point) (engine.Value, error) { return v, nil }
}

var qualityNames = [...]engine.Value{engine.String("good"), engine.String("uncertain"), engine.String("bad")}

func identifier(name string) evalFn {
	switch name {
	case "asset":
		return func(p *engine.Point) (engine.Value, error) { return engine.String(p.Asset), nil }
	case "tag":
		return func(p *engine.Point) (engine.Value, error) { return engine.String(p.Tag), nil }
	case "value":
		return func(p *engine.Point) (engine.Value, error) { return p.Value, nil }
	case "quality":
		return func(p *engine.Point) (engine.Value, error) {
			if int(p.Quality) < len(qualityNames) {
				return qualityNames[p.Quality], nil
			}
			return engine.String(p.Quality.String()), nil
		}
	case "status":
		return func(p *engine.Point) (engine.Value, error) { return engine.Int(int64(p.Status)), nil }
	case "ts":
		return func(p *engine.Point) (engine.Value, error) { return engine.Int(tsMillis(p.TS)), nil }
	}
	return nil
}

var errNotBool = errors.New("operand is not a bool")

func unary(n *ast.UnaryNode) evalFn {
	x := compileNode(n.Node)
	if x == nil {
		return nil
	}
	switch n.Operator {
	case "!", "not":
		return func(p *engine.Point) (engine.Value, error) {
			v, err := x(p)
			if err != nil {
				return v, err
			}
			b, ok := v.AsBool()
			if !ok {
				return engine.Null(), fmt.Errorf("invalid operation: !%s", v.Kind())
			}
			return engine.Bool(!b), nil
		}
	case "-":
		return func(p *engine.Point) (engine.Value, error) {
			v, err := x(p)
			if err != nil {
				return v, err
			}
			switch v.Kind() {
			case engine.KindInt:
				i, _ := v.Int64()
				return engine.Int(-i), nil
			case engine.KindFloat, engine.KindUint:
				f, _ := v.Float64()
				return engine.Float(-f), nil
			}
			return engine.Null(), fmt.Errorf("invalid operation: -%s", v.Kind())
		}
	case "+":
		return func(p *engine.Point) (engine.Value, error) {
			v, err := x(p)
			if err == nil && !v.IsNumeric() {
				return engine.Null(), fmt.Errorf("invalid operation: +%s", v.Kind())
			}
			return v, err
		}
	}
	return nil
}

func binary(n *ast.BinaryNode) evalFn {
	l, r := compileNode(n.Left), compileNode(n.Right)
	if l == nil || r == nil {
		return nil
	}
	// and/or/?? short-circuit, so they cannot go through apply, which
	// evaluates both sides first.
	switch n.Operator {
	case "and", "&&":
		return logicalAnd(l, r)
	case "or", "||":
		return logicalOr(l, r)
	case "??":
		return coalesce(l, r)
	}
	if n.Operator == "+" {
		if f := concat(n); f != nil {
			return f
		}
	}
	op, ok := binOps[n.Operator]
	if !ok {
		return nil
	}
	if f := fieldEquals(op, n.Left, n.Right); f != nil {
		return f
	}
	if f := fieldEquals(op, n.Right, n.Left); f != nil {
		return f
	}
	return func(p *engine.Point) (engine.Value, error) {
		a, err := l(p)
		if err != nil {
			return a, err
		}
		b, err := r(p)
		if err != nil {
			return b, err
		}
		return apply(op, a, b)
	}
}

// logicalAnd evaluates r only when l is true; both sides must be booleans.
func logicalAnd(l, r evalFn) evalFn { return shortCircuit(l, r, false) }

// logicalOr evaluates r only when l is false; both sides must be booleans.
func logicalOr(l, r evalFn) evalFn { return shortCircuit(l, r, true) }

// shortCircuit returns l's value when it equals decided (false for &&, true
// for ||) without evaluating r, and r's value otherwise.
func shortCircuit(l, r evalFn, decided bool) evalFn {
	return func(p *engine.Point) (engine.Value, error) {
		a, err := l(p)
		if err != nil {
			return a, err
		}
		ab, ok := a.AsBool()
		if !ok {
			return engine.Null(), errNotBool
		}
		if ab == decided {
			return a, nil
		}
		b, err := r(p)
		if err != nil {
			return b, err
		}
		if _, ok := b.AsBool(); !ok {
			return engine.Null(), errNotBool
		}
		return b, nil
	}
}

// coalesce (??) evaluates r only when l is null.
func coalesce(l, r evalFn) evalFn {
	return func(p *engine.Point) (engine.Value, error) {
		a, err := l(p)
		if err != nil || !a.IsNull() {
			return a, err
		}
		return r(p)
	}
}

// concat compiles a chain of strings joined by + ('plant/' + asset + '/' +
// tag, every operand statically a string) into one concatenation: a single
// allocation for the result instead of one per +.
func concat(n *ast.BinaryNode) evalFn {
	var parts []evalFn
	var walk func(ast.Node) bool
	walk = func(x ast.Node) bool {
		if b, ok := x.(*ast.BinaryNode); ok && b.Operator == "+" && isString(b) {
			return walk(b.Left) && walk(b.Right)
		}
		f := compileNode(x)
		if f == nil || !isString(x) {
			return false
		}
		parts = append(parts, f)
		return true
	}
	if !isString(n) || !walk(n) || len(parts) < 3 {
		return nil
	}
	return func(p *engine.Point) (engine.Value, error) {
		var small [8]string
		strs := small[:0]
		size := 0
		for _, f := range parts {
			v, err := f(p)
			if err != nil {
				return v, err
			}
			s, ok := v.Str()
			if !ok {
				return engine.Null(), fmt.Errorf("invalid operation: string + %s", v.Kind())
			}
			strs = append(strs, s)
			size += len(s)
		}
		var b strings.Builder
		b.Grow(size)
		for _, s := range strs {
			b.WriteString(s)
		}
		return engine.String(b.String()), nil
	}
}

func isString(x ast.Node) bool {
	t := x.Type()
	return t != nil && t.Kind() == reflect.String
}

// fieldEquals specialises the most common conditions, a string field
// compared with a string literal (quality == 'good', tag != 'x'), to a direct
// comparison on the point.
func fieldEquals(op binOp, field, lit ast.Node) evalFn {
	if op != opEq && op != opNe {
		return nil
	}
	id, ok := field.(*ast.IdentifierNode)
	str, ok2 := lit.(*ast.StringNode)
	if !ok || !ok2 {
		return nil
	}
	want := op == opEq
	s := str.Value
	switch id.Value {
	case "asset":
		return func(p *engine.Point) (engine.Value, error) { return engine.Bool((p.Asset == s) == want), nil }
	case "tag":
		return func(p *engine.Point) (engine.Value, error) { return engine.Bool((p.Tag == s) == want), nil }
	case "quality":
		q, ok := engine.ParseQuality(s)
		if !ok || q.String() != s {
			// Not one of the three names: never equal.
			return func(*engine.Point) (engine.Value, error) { return engine.Bool(!want), nil }
		}
		return func(p *engine.Point) (engine.Value, error) { return engine.Bool((p.Quality == q) == want), nil }
	}
	return nil
}

type binOp uint8

const (
	opEq binOp = iota
	opNe
	opLt
	opLe
	opGt
	opGe
	opAdd
	opSub
	opMul
	opDiv
	opMod
	opPow
	opContains
	opStartsWith
	opEndsWith
)

var binOps = map[string]binOp{
	"==": opEq, "!=": opNe, "<": opLt, "<=": opLe, ">": opGt, ">=": opGe,
	"+": opAdd, "-": opSub, "*": opMul, "/": opDiv, "%": opMod, "**": opPow, "^": opPow,
	"contains": opContains, "startsWith": opStartsWith, "endsWith": opEndsWith,
}

var opNames = [...]string{"==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "**", "contains", "startsWith", "endsWith"}

func invalid(op binOp, a, b engine.Value) error {
	return fmt.Errorf("invalid operation: %s %s %s", a.Kind(), opNames[op], b.Kind())
}

// Results of arith.
const (
	notArith = iota
	arithBool
	arithNumber
)

// arith applies a comparison or +, - or * within one number type, giving
// either a bool or a number of that type (ints stay ints); the caller makes
// the value, so nothing here is called indirectly on the hot path.
func arith[T int64 | float64](op binOp, x, y T) (kind int, b bool, n T) {
	switch op {
	case opLt:
		return arithBool, x < y, 0
	case opLe:
		return arithBool, x <= y, 0
	case opGt:
		return arithBool, x > y, 0
	case opGe:
		return arithBool, x >= y, 0
	case opAdd:
		return arithNumber, false, x + y
	case opSub:
		return arithNumber, false, x - y
	case opMul:
		return arithNumber, false, x * y
	}
	return notArith, false, 0
}

// apply evaluates a binary operator on two values.
func apply(op binOp, a, b engine.Value) (engine.Value, error) {
	switch op {
	case opEq:
		return engine.Bool(equal(a, b)), nil
	case opNe:
		return engine.Bool(!equal(a, b)), nil
	}
	if a.IsNumeric() && b.IsNumeric() {
		if a.Kind() == engine.KindInt && b.Kind() == engine.KindInt {
			x, _ := a.Int64()
			y, _ := b.Int64()
			switch kind, b, n := arith(op, x, y); kind {
			case arithBool:
				return engine.Bool(b), nil
			case arithNumber:
				return engine.Int(n), nil
			}
			if op == opMod {
				if y == 0 {
					return engine.Null(), errors.New("integer divide by zero")
				}
				return engine.Int(x % y), nil
			}
			// / and ** of ints give floats, as below.
		}
		x, _ := a.Float64()
		y, _ := b.Float64()
		switch kind, b, n := arith(op, x, y); kind {
		case arithBool:
			return engine.Bool(b), nil
		case arithNumber:
			return engine.Float(n), nil
		}
		switch op {
		case opDiv:
			return engine.Float(x / y), nil
		case opPow:
			return engine.Float(math.Pow(x, y)), nil
		}
		return engine.Null(), invalid(op, a, b)
	}
	s, ok1 := a.Str()
	t, ok2 := b.Str()
	if !ok1 || !ok2 {
		return engine.Null(), invalid(op, a, b)
	}
	switch op {
	case opLt:
		return engine.Bool(s < t), nil
	case opLe:
		return engine.Bool(s <= t), nil
	case opGt:
		return engine.Bool(s > t), nil
	case opGe:
		return engine.Bool(s >= t), nil
	case opAdd:
		return engine.String(s + t), nil
	case opContains:
		return engine.Bool(strings.Contains(s, t)), nil
	case opStartsWith:
		return engine.Bool(strings.HasPrefix(s, t)), nil
	case opEndsWith:
		return engine.Bool(strings.HasSuffix(s, t)), nil
	}
	return engine.Null(), invalid(op, a, b)
}

// equal is expr's ==: numbers by value across int and float, otherwise the
// same kind and the same value. A uint (above math.MaxInt64) equals only the
// same uint.
func equal(a, b engine.Value) bool {
	if a.Kind() == engine.KindUint || b.Kind() == engine.KindUint {
		if a.IsInteger() && b.IsInteger() || !a.IsNumeric() || !b.IsNumeric() {
			return a.Kind() == b.Kind() && a.Equal(b)
		}
	}
	if a.IsNumeric() && b.IsNumeric() {
		if a.Kind() == engine.KindInt && b.Kind() == engine.KindInt {
			x, _ := a.Int64()
			y, _ := b.Int64()
			return x == y
		}
		x, _ := a.Float64()
		y, _ := b.Float64()
		return x == y
	}
	return a.Kind() == b.Kind() && a.Equal(b)
}

func call(n *ast.CallNode) evalFn {
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok {
		return nil
	}
	if id.Value == "now" && len(n.Arguments) == 0 {
		return func(*engine.Point) (engine.Value, error) { return engine.Int(time.Now().UnixMilli()), nil }
	}
	f, ok := numFuncs[id.Value]
	if !ok || len(n.Arguments) > 5 {
		return nil
	}
	arity := len(n.Arguments)
	fits := false
	for _, a := range f.arity {
		fits = fits || a == arity
	}
	if !fits {
		return nil
	}
	var args [5]evalFn
	for i, a := range n.Arguments {
		if args[i] = compileNode(a); args[i] == nil {
			return nil
		}
	}
	name, fid := id.Value, f.id
	return func(p *engine.Point) (engine.Value, error) {
		var a [5]float64
		for i := 0; i < arity; i++ {
			v, err := args[i](p)
			if err != nil {
				return v, err
			}
			x, ok := v.Float64()
			if !ok || v.Kind() == engine.KindBool {
				return engine.Null(), fmt.Errorf("%s: argument %d is %s, not a number", name, i+1, v.Kind())
			}
			a[i] = x
		}
		return engine.Float(numCall(fid, arity, &a)), nil
	}
}

func builtin(n *ast.BuiltinNode) evalFn {
	if len(n.Arguments) != 1 {
		return nil
	}
	x := compileNode(n.Arguments[0])
	if x == nil {
		return nil
	}
	var f func(float64) float64
	switch n.Name {
	case "abs":
		return func(p *engine.Point) (engine.Value, error) {
			v, err := x(p)
			if err != nil {
				return v, err
			}
			switch v.Kind() {
			case engine.KindInt:
				i, _ := v.Int64()
				if i < 0 {
					i = -i
				}
				return engine.Int(i), nil
			case engine.KindFloat:
				f, _ := v.Float64()
				return engine.Float(math.Abs(f)), nil
			case engine.KindUint:
				return v, nil
			}
			return engine.Null(), fmt.Errorf("invalid argument for abs (type %s)", v.Kind())
		}
	case "ceil":
		f = math.Ceil
	case "floor":
		f = math.Floor
	default:
		return nil
	}
	name := n.Name
	return func(p *engine.Point) (engine.Value, error) {
		v, err := x(p)
		if err != nil {
			return v, err
		}
		if !v.IsNumeric() {
			return engine.Null(), fmt.Errorf("invalid argument for %s (type %s)", name, v.Kind())
		}
		g, _ := v.Float64()
		return engine.Float(f(g)), nil
	}
}
