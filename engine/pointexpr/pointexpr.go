// Package pointexpr compiles expressions over a point (expr-lang/expr) once,
// at load time, and evaluates them per point without allocating.
//
// Variables: asset, tag (string), value (float, int, bool, string or nil; a
// uint above math.MaxInt64 is exact natively and a float on the VM),
// quality ("good", "uncertain" or "bad"), status (int: the source's status
// code, 0 when none), ts (int: the source timestamp in Unix milliseconds) and
// attrs (map of strings; a missing key reads as "").
//
// Functions beyond expr's built-ins: c_to_f, f_to_c, c_to_k, k_to_c,
// bar_to_psi, psi_to_bar, kpa_to_psi, psi_to_kpa, scale(v, in_lo, in_hi,
// out_lo, out_hi), clamp(v, lo, hi), round(v) and round(v, digits), str(v),
// substr(s, start, length), field(s, sep, i) and now() (Unix milliseconds).
//
// Expressions made of variables, literals, arithmetic, comparisons, logic,
// the conditional operator, attrs lookups and the numeric functions run as
// native closures over the typed point (no boxing, no allocation); anything
// else runs on expr's VM with a reused environment.
package pointexpr

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"github.com/flowd/flowd/engine"
)

// Env is the environment expressions are checked against and, on the VM
// path, evaluated with.
type Env struct {
	Asset   string            `expr:"asset"`
	Tag     string            `expr:"tag"`
	Value   any               `expr:"value"`
	Quality string            `expr:"quality"`
	Status  int               `expr:"status"`
	TS      int               `expr:"ts"`
	Attrs   map[string]string `expr:"attrs"`
}

func (e *Env) fill(p *engine.Point) {
	e.Asset = p.Asset
	e.Tag = p.Tag
	if p.Value.Kind() == engine.KindUint {
		// expr's VM converts uint64 operands to int (wrapping above
		// math.MaxInt64); as a float the value compares and computes sanely.
		f, _ := p.Value.Float64()
		e.Value = f
	} else {
		e.Value = p.Value.Any()
	}
	e.Quality = p.Quality.String()
	e.Status = int(p.Status)
	e.TS = int(tsMillis(p.TS))
	e.Attrs = p.Attrs
}

func tsMillis(ns int64) int64 { return ns / 1e6 }

// Program is a compiled expression. It is not safe for concurrent use; Clone
// gives another goroutine its own.
type Program struct {
	field string
	src   string
	want  engine.Kind
	prog  *vm.Program
	fast  evalFn
	vm    vm.VM
	env   Env
}

// Compile checks and compiles x for the attribute field. want is the kind of
// result the caller needs: KindBool (a condition), KindString (a topic, a
// key), KindFloat or KindInt (a number), or KindNull for any value. A compile
// error is an *engine.FieldError that points at the line and column inside
// the expression.
func Compile(field string, x engine.Expr, want engine.Kind) (*Program, error) {
	r := AnyResult
	switch want {
	case engine.KindBool:
		r = BoolResult
	case engine.KindString:
		r = StringResult
	case engine.KindFloat, engine.KindInt:
		r = NumberResult
	}
	prog, err := compile(field, x, Env{}, r, names)
	if err != nil {
		return nil, err
	}
	p := &Program{field: field, src: x.Src, want: want, prog: prog}
	p.fast = compileNode(prog.Node())
	return p, nil
}

// Result is the kind of result an attribute needs. When the expression's
// type is known before it runs, the compiler checks it.
type Result int

const (
	AnyResult    Result = iota // any value (checked when evaluated)
	BoolResult                 // a condition
	StringResult               // a name, a topic, a key
	NumberResult               // an int or a float
	ScalarResult               // a string, a bool or a number
	TimeResult                 // an RFC 3339 string or a number (Unix milliseconds)
	ObjectResult               // a map of values
)

func (r Result) String() string {
	return [...]string{"a value", "a bool", "a string", "a number", "a value", "a timestamp", "an object of values"}[r]
}

func (r Result) accepts(k reflect.Kind) bool {
	switch r {
	case StringResult:
		return k == reflect.String
	case NumberResult:
		return isNumberKind(k)
	case ScalarResult:
		return k == reflect.String || k == reflect.Bool || isNumberKind(k)
	case TimeResult:
		return k == reflect.String || isNumberKind(k)
	case ObjectResult:
		return k == reflect.Map
	}
	return true // AnyResult; BoolResult is enforced by expr.AsBool
}

// CompileEnv is the expression front end for components whose expressions
// see an environment of their own instead of a point (env: a struct whose
// expr tags name the variables), with the same functions as Compile. A
// compile error, or a result of a known type that want does not accept, is
// an *engine.FieldError pointing at the column inside the expression.
func CompileEnv(field string, x engine.Expr, env any, want Result) (*vm.Program, error) {
	return compile(field, x, env, want, nil) // their names are not the point's
}

// compile is the front end both share; known are the variable names that
// hints suggest for a misspelled one.
func compile(field string, x engine.Expr, env any, want Result, known []string) (*vm.Program, error) {
	if strings.TrimSpace(x.Src) == "" {
		return nil, engine.ExprError(field, &x, -1, errors.New("empty expression"))
	}
	opts := append(options(), expr.Env(env))
	if want == BoolResult {
		opts = append(opts, expr.AsBool())
	}
	prog, err := expr.Compile(x.Src, opts...)
	if err != nil {
		return nil, compileError(field, &x, err, known)
	}
	if t := prog.Node().Type(); t != nil && t.Kind() != reflect.Interface && !want.accepts(t.Kind()) {
		return nil, engine.ExprError(field, &x, 0, fmt.Errorf("the expression gives a %s, not %s", t, want))
	}
	return prog, nil
}

func isNumberKind(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// compileError converts expr's error (which carries a rune offset) into a
// FieldError with a byte offset into the expression source.
func compileError(field string, x *engine.Expr, err error, known []string) error {
	var fe *file.Error
	if !errors.As(err, &fe) {
		return engine.ExprError(field, x, -1, err)
	}
	off := runeToByte(x.Src, fe.From)
	return engine.ExprError(field, x, off, errors.New(hint(x.Src, off, fe.Message, known)))
}

func runeToByte(s string, runes int) int {
	i := 0
	for n := 0; n < runes && i < len(s); n++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	if i >= len(s) {
		i = max(0, len(s)-1)
	}
	return i
}

// Source is the expression as written.
func (p *Program) Source() string { return p.src }

// Native reports whether the program runs as native closures (no VM, no
// allocation).
func (p *Program) Native() bool { return p.fast != nil }

// Clone returns a program sharing the compiled code, with its own VM state.
func (p *Program) Clone() *Program {
	return &Program{field: p.field, src: p.src, want: p.want, prog: p.prog, fast: p.fast}
}

// Eval evaluates the program against a point.
func (p *Program) Eval(pt *engine.Point) (engine.Value, error) {
	if p.fast != nil {
		v, err := p.fast(pt)
		if err != nil {
			return engine.Null(), fmt.Errorf("%s: %w", p.src, err)
		}
		return v, nil
	}
	out, err := p.EvalAny(pt)
	if err != nil {
		return engine.Null(), err
	}
	switch out.(type) {
	case map[string]any, []any, map[string]string:
		return engine.Null(), fmt.Errorf("%s: gives a %T, not a value", p.src, out)
	}
	return engine.ValueOf(out), nil
}

// EvalAny evaluates on the VM and returns the raw result (a map for attrs).
func (p *Program) EvalAny(pt *engine.Point) (any, error) {
	p.env.fill(pt)
	out, err := p.vm.Run(p.prog, &p.env)
	p.env.Attrs = nil
	p.env.Value = nil
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EvalString evaluates and renders the result as a string (null is "").
func (p *Program) EvalString(pt *engine.Point) (string, error) {
	v, err := p.Eval(pt)
	if err != nil {
		return "", err
	}
	if s, ok := v.Str(); ok {
		return s, nil
	}
	if v.IsNull() {
		return "", nil
	}
	return v.String(), nil
}

// EvalBool evaluates a condition; a non-bool result is an error.
func (p *Program) EvalBool(pt *engine.Point) (bool, error) {
	v, err := p.Eval(pt)
	if err != nil {
		return false, err
	}
	b, ok := v.AsBool()
	if !ok {
		return false, fmt.Errorf("%s: gives %s, not a bool", p.src, v.Kind())
	}
	return b, nil
}
