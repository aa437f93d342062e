package pointexpr

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/flowd/flowd/engine"
)

// numeric functions, by name: arity and implementation. The native path
// calls them through numCall so arguments stay on the stack.
type numFunc struct {
	id    int
	arity []int // accepted argument counts
}

const (
	fnCtoF = iota
	fnFtoC
	fnCtoK
	fnKtoC
	fnBarToPsi
	fnPsiToBar
	fnKpaToPsi
	fnPsiToKpa
	fnScale
	fnClamp
	fnRound
)

var numFuncs = map[string]numFunc{
	"c_to_f":     {fnCtoF, []int{1}},
	"f_to_c":     {fnFtoC, []int{1}},
	"c_to_k":     {fnCtoK, []int{1}},
	"k_to_c":     {fnKtoC, []int{1}},
	"bar_to_psi": {fnBarToPsi, []int{1}},
	"psi_to_bar": {fnPsiToBar, []int{1}},
	"kpa_to_psi": {fnKpaToPsi, []int{1}},
	"psi_to_kpa": {fnPsiToKpa, []int{1}},
	"scale":      {fnScale, []int{5}},
	"clamp":      {fnClamp, []int{3}},
	"round":      {fnRound, []int{1, 2}},
}

const psiPerBar = 14.503773773020923

func numCall(id, n int, a *[5]float64) float64 {
	switch id {
	case fnCtoF:
		return a[0]*9/5 + 32
	case fnFtoC:
		return (a[0] - 32) * 5 / 9
	case fnCtoK:
		return a[0] + 273.15
	case fnKtoC:
		return a[0] - 273.15
	case fnBarToPsi:
		return a[0] * psiPerBar
	case fnPsiToBar:
		return a[0] / psiPerBar
	case fnKpaToPsi:
		return a[0] * psiPerBar / 100
	case fnPsiToKpa:
		return a[0] / psiPerBar * 100
	case fnScale:
		v, inLo, inHi, outLo, outHi := a[0], a[1], a[2], a[3], a[4]
		if inHi == inLo {
			return outLo
		}
		return outLo + (v-inLo)*(outHi-outLo)/(inHi-inLo)
	case fnClamp:
		return math.Max(a[1], math.Min(a[2], a[0]))
	case fnRound:
		if n < 2 {
			return math.Round(a[0])
		}
		d := math.Min(math.Max(a[1], -15), 15)
		p := math.Pow(10, math.Trunc(d))
		return math.Round(a[0]*p) / p
	}
	return math.NaN()
}

func toFloat(x any) (float64, bool) {
	switch t := x.(type) {
	case float64:
		return t, true
	case int:
		return float64(t), true
	case int64:
		return float64(t), true
	case float32:
		return float64(t), true
	case int32:
		return float64(t), true
	case uint32:
		return float64(t), true
	case uint64:
		return float64(t), true
	case uint:
		return float64(t), true
	case int8:
		return float64(t), true
	case int16:
		return float64(t), true
	case uint8:
		return float64(t), true
	case uint16:
		return float64(t), true
	}
	return 0, false
}

func vmNum(name string, f numFunc) func(params ...any) (any, error) {
	return func(params ...any) (any, error) {
		var a [5]float64
		if len(params) > len(a) {
			return nil, fmt.Errorf("%s: too many arguments", name)
		}
		for i, p := range params {
			v, ok := toFloat(p)
			if !ok {
				return nil, fmt.Errorf("%s: argument %d is %s, not a number", name, i+1, kindOfAny(p))
			}
			a[i] = v
		}
		return numCall(f.id, len(params), &a), nil
	}
}

func kindOfAny(x any) string { return engine.ValueOf(x).Kind().String() }

var numTypes = map[int][]any{
	1: {new(func(float64) float64)},
	2: {new(func(float64, float64) float64)},
	3: {new(func(float64, float64, float64) float64)},
	5: {new(func(float64, float64, float64, float64, float64) float64)},
}

// options are the expr options that declare the plant functions; compile
// adds the environment.
func options() []expr.Option {
	var opts []expr.Option
	for name, f := range numFuncs {
		var types []any
		for _, n := range f.arity {
			types = append(types, numTypes[n]...)
		}
		opts = append(opts, expr.Function(name, vmNum(name, f), types...))
	}
	opts = append(opts,
		expr.Function("now", func(...any) (any, error) { return int(time.Now().UnixMilli()), nil }, new(func() int)),
		expr.Function("str", func(p ...any) (any, error) {
			if p[0] == nil {
				return "", nil
			}
			return engine.ValueOf(p[0]).String(), nil
		}, new(func(any) string)),
		expr.Function("substr", func(p ...any) (any, error) {
			s, err1 := argString("substr", p, 0)
			start, err2 := argInt("substr", p, 1)
			n, err3 := argInt("substr", p, 2)
			if err := errors.Join(err1, err2, err3); err != nil {
				return nil, err
			}
			return substr(s, start, n), nil
		}, new(func(string, int, int) string)),
		expr.Function("field", func(p ...any) (any, error) {
			s, err1 := argString("field", p, 0)
			sep, err2 := argString("field", p, 1)
			i, err3 := argInt("field", p, 2)
			if err := errors.Join(err1, err2, err3); err != nil {
				return nil, err
			}
			return field(s, sep, i), nil
		}, new(func(string, string, int) string)),
	)
	return opts
}

func argString(fn string, p []any, i int) (string, error) {
	if s, ok := p[i].(string); ok {
		return s, nil
	}
	return "", fmt.Errorf("%s: argument %d is %s, not a string", fn, i+1, kindOfAny(p[i]))
}

func argInt(fn string, p []any, i int) (int, error) {
	f, ok := toFloat(p[i])
	if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("%s: argument %d is not a whole number", fn, i+1)
	}
	return int(f), nil
}

// substr returns up to n bytes of s from start; a negative start counts from
// the end. Out-of-range bounds are clipped, never an error.
func substr(s string, start, n int) string {
	if start < 0 {
		start += len(s)
	}
	start = max(0, min(start, len(s)))
	end := len(s)
	if n >= 0 {
		end = min(len(s), start+n)
	}
	return s[start:end]
}

// field returns the i-th part of s split by sep (negative i counts from the
// end), or "" when there is none: field("plant/line1/temp", "/", 1) is "line1".
func field(s, sep string, i int) string {
	if sep == "" {
		return ""
	}
	parts := strings.Split(s, sep)
	if i < 0 {
		i += len(parts)
	}
	if i < 0 || i >= len(parts) {
		return ""
	}
	return parts[i]
}
