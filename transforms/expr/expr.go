// Package expr is a transform that filters points with a `where` expression
// and rewrites their fields with `set` expressions (expr-lang/expr).
package expr

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
	"github.com/flowd/flowd/engine/pointexpr"
)

// Config is the expr transform's configuration.
type Config struct {
	Where       engine.Expr            `hcl:"where" doc:"keep the points for which this expression is true (all points when unset)"`
	Set         map[string]engine.Expr `hcl:"set" doc:"field = expression: asset, tag, value, quality, status, ts (Unix ms or an RFC 3339 string), attrs (a map) or attrs.NAME (an empty string removes it); all are evaluated against the incoming point"`
	DropOnError bool                   `hcl:"drop_on_error" doc:"drop a point whose expression fails (counted, reason expr) instead of rejecting it to the dead-letter sink"`
}

// Spec declares the expr transform.
var Spec = engine.TransformSpec(engine.Info{
	Type:    "expr",
	Summary: "Filters points with a where expression and rewrites fields with set expressions.",
	Description: "Expressions use expr-lang/expr over the variables asset, tag, value, quality, status, ts (Unix ms) and attrs, " +
		"with the functions c_to_f, f_to_c, c_to_k, k_to_c, bar_to_psi, psi_to_bar, kpa_to_psi, psi_to_kpa, " +
		"scale(v, in_lo, in_hi, out_lo, out_hi), clamp(v, lo, hi), round(v[, digits]), str, substr, field and now(). " +
		"The where and every set are evaluated against the incoming point, so their order does not matter. " +
		"A point whose expression fails at run time is counted (reason expr) and goes to the dead-letter sink, " +
		"unless drop_on_error.",
	Example: `transform "expr" "scale" {
  inputs = [source.plant]
  where  = "quality == 'good'"
  set = {
    value        = "tag == 'temperature' ? round(c_to_f(value), 2) : value"
    "attrs.unit" = "tag == 'temperature' ? 'F' : attrs.unit"
  }
}`,
}, New)

type field uint8

const (
	setAsset field = iota
	setTag
	setValue
	setQuality
	setStatus
	setTS
	setAttrs
	setAttr
)

type setter struct {
	field field
	name  string // attrs.NAME
	prog  *pointexpr.Program
}

// Transform evaluates where and set per point.
type Transform struct {
	env      *engine.Env
	where    *pointexpr.Program
	sets     []setter
	attrSet  bool // some setter writes attrs
	drop     bool
	vals     []engine.Value
	strs     []string
	attrsMap map[string]string
}

var fieldNames = map[string]field{
	"asset": setAsset, "tag": setTag, "value": setValue, "quality": setQuality,
	"status": setStatus, "ts": setTS, "attrs": setAttrs,
}

// New compiles the expressions; a compile error points inside the string.
func New(c *Config, env *engine.Env) (engine.Transform, error) {
	t := &Transform{env: env, drop: c.DropOnError}
	var bad engine.Problems
	if c.Where.Src != "" {
		p, err := pointexpr.Compile("where", c.Where, engine.KindBool)
		if err != nil {
			bad = append(bad, err)
		}
		t.where = p
	}
	keys := make([]string, 0, len(c.Set))
	for k := range c.Set {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic errors and evaluation order
	for _, k := range keys {
		x := c.Set[k]
		s := setter{}
		if name, ok := strings.CutPrefix(k, "attrs."); ok && name != "" {
			s.field, s.name = setAttr, name
		} else if f, ok := fieldNames[k]; ok {
			s.field = f
		} else {
			bad.Add("set", fmt.Errorf("cannot set %q: the fields are asset, tag, value, quality, status, ts, attrs and attrs.NAME", k))
			continue
		}
		want := engine.KindNull
		switch s.field {
		case setAsset, setTag, setQuality, setAttr:
			want = engine.KindString
		case setStatus:
			want = engine.KindInt
		}
		p, err := pointexpr.Compile("set."+k, x, want)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		s.prog = p
		t.attrSet = t.attrSet || s.field == setAttr || s.field == setAttrs
		t.sets = append(t.sets, s)
	}
	if c.Where.Src == "" && len(c.Set) == 0 {
		bad.Add("where", errors.New("an expr transform needs where, set or both"))
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	t.vals = make([]engine.Value, len(t.sets))
	t.strs = make([]string, len(t.sets))
	return t, nil
}

// Process filters in place and applies the sets.
func (t *Transform) Process(ctx context.Context, in []engine.Point) []engine.Point {
	out := in[:0]
	dropped := 0
	for i := range in {
		p := &in[i]
		if t.where != nil {
			keep, err := t.where.EvalBool(p)
			if err != nil {
				t.fail(p, err)
				dropped++
				continue
			}
			if !keep {
				continue
			}
		}
		if len(t.sets) > 0 {
			if err := t.eval(p); err != nil {
				t.fail(p, err)
				dropped++
				continue
			}
			t.commit(p)
		}
		out = append(out, *p) // len(out) <= i: in[i] has been read
	}
	if dropped > 0 && t.drop {
		t.env.Drop(dropped, "expr")
	}
	return out
}

func (t *Transform) fail(p *engine.Point, err error) {
	if t.drop {
		return
	}
	t.env.Reject([]engine.Point{*p}, "expr", err)
}

// eval evaluates every set against the incoming point and checks the
// results; the point is not changed, so a failing point is rejected as it came.
func (t *Transform) eval(p *engine.Point) error {
	t.attrsMap = nil
	for i, s := range t.sets {
		switch s.field {
		case setAttrs:
			out, err := s.prog.EvalAny(p)
			if err != nil {
				return err
			}
			m, err := toAttrs(out)
			if err != nil {
				return fmt.Errorf("set.attrs: %w", err)
			}
			t.attrsMap = m
		case setAsset, setTag, setQuality, setAttr:
			str, err := s.prog.EvalString(p)
			if err != nil {
				return err
			}
			t.strs[i] = str
			if s.field == setTag && str == "" {
				return errors.New("set.tag: the tag would be empty")
			}
			if s.field == setQuality {
				q, ok := engine.ParseQuality(str)
				if !ok {
					return fmt.Errorf("set.quality: %q is not good, uncertain or bad", str)
				}
				t.vals[i] = engine.Int(int64(q))
			}
		default:
			v, err := s.prog.Eval(p)
			if err != nil {
				return err
			}
			switch s.field {
			case setStatus:
				n, ok := v.Int64()
				if !ok || v.Kind() == engine.KindBool || n < 0 || n > math.MaxUint32 {
					return fmt.Errorf("set.status: %v is not a status code", v)
				}
				v = engine.Int(n)
			case setTS:
				ts, err := toTS(v)
				if err != nil {
					return fmt.Errorf("set.ts: %w", err)
				}
				v = engine.Int(ts)
			}
			t.vals[i] = v
		}
	}
	return nil
}

// commit assigns what eval computed.
func (t *Transform) commit(p *engine.Point) {
	var attrs map[string]string
	if t.attrSet {
		// Attrs are shared after fan-out: install a new map, never write the old one.
		base := p.Attrs
		if t.attrsMap != nil {
			base = t.attrsMap
		}
		attrs = make(map[string]string, len(base)+len(t.sets))
		for k, v := range base {
			attrs[k] = v
		}
	}
	for i, s := range t.sets {
		n, _ := t.vals[i].Int64()
		switch s.field {
		case setAsset:
			p.Asset = t.strs[i]
		case setTag:
			p.Tag = t.strs[i]
		case setValue:
			p.Value = t.vals[i]
		case setQuality:
			p.Quality = engine.Quality(n)
		case setStatus:
			p.Status = uint32(n)
		case setTS:
			p.TS = n
		case setAttr:
			if t.strs[i] == "" {
				delete(attrs, s.name)
			} else {
				attrs[s.name] = t.strs[i]
			}
		}
		t.strs[i] = ""
		t.vals[i] = engine.Null()
	}
	if t.attrSet {
		if len(attrs) == 0 {
			attrs = nil
		}
		p.Attrs = attrs
	}
	t.attrsMap = nil
}

// toTS accepts Unix milliseconds (int or float) or an RFC 3339 string; a
// time outside the range of Unix nanoseconds is an error, not wrapped.
func toTS(v engine.Value) (int64, error) {
	switch v.Kind() {
	case engine.KindInt:
		ms, _ := v.Int64()
		return codec.MillisToNanos(ms)
	case engine.KindFloat:
		f, _ := v.Float64()
		return codec.FloatMillisToNanos(f)
	case engine.KindString:
		s, _ := v.Str()
		return codec.ParseTime(s)
	}
	return 0, fmt.Errorf("%s is not a time (Unix ms or RFC 3339)", v.Kind())
}

func toAttrs(out any) (map[string]string, error) {
	switch m := out.(type) {
	case nil:
		return map[string]string{}, nil
	case map[string]string:
		return m, nil
	case map[string]any:
		r := make(map[string]string, len(m))
		for k, v := range m {
			if v == nil {
				continue
			}
			r[k] = engine.ValueOf(v).String()
		}
		return r, nil
	}
	return nil, fmt.Errorf("gives a %T, not a map", out)
}
