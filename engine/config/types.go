package config

import (
	"fmt"
	"math"
	"math/big"
	"reflect"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// TypeDecoder decodes the attributes of one Go type. A new attribute type is
// one RegisterType call; the kinds (strings, bools, numbers, lists and maps
// of them) need none.
type TypeDecoder struct {
	// Name is how the reference docs name the type ("duration").
	Name string
	// Value sets fv from an evaluated value: an attribute, an element of a
	// list or map, or a default tag (then always a string).
	Value func(val cty.Value, fv reflect.Value) error
	// Expr, when set, decodes from the attribute's expression instead (and
	// from each entry's in a map of the type), for a type that keeps where
	// it was written.
	Expr func(e hcl.Expression, ctx *hcl.EvalContext, fv reflect.Value) hcl.Diagnostics
}

// typeDecoders are looked up before the kinds. A type of the engine gets its
// line here; RegisterType adds others (from an init function).
var typeDecoders = map[reflect.Type]TypeDecoder{
	reflect.TypeFor[time.Duration](): {Name: "duration", Value: decodeDuration},
	reflect.TypeFor[engine.Size]():   {Name: "size", Value: decodeSize},
	reflect.TypeFor[engine.Expr]():   {Name: "expression", Expr: decodeExpr},
}

// RegisterType makes the decoder (and the docs) handle attributes of type t
// with d. Call it from an init function: the table is not locked.
func RegisterType(t reflect.Type, d TypeDecoder) {
	if _, dup := typeDecoders[t]; dup {
		panic("config: type " + t.String() + " registered twice")
	}
	if d.Value == nil && d.Expr == nil {
		panic("config: type " + t.String() + " registered without a decoder")
	}
	typeDecoders[t] = d
}

func decodeDuration(val cty.Value, fv reflect.Value) error {
	s, err := asString(val)
	if err != nil {
		return fmt.Errorf("a duration like \"500ms\", \"10s\" or \"1h\" is required")
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return fmt.Errorf("%q is not a duration; write it like \"500ms\", \"10s\" or \"1h\"", s)
	}
	fv.SetInt(int64(d))
	return nil
}

func decodeSize(val cty.Value, fv reflect.Value) error {
	if val.Type() == cty.Number {
		f, _ := val.AsBigFloat().Int64()
		fv.SetInt(f)
		return nil
	}
	s, err := asString(val)
	if err != nil {
		return fmt.Errorf("a size like \"512MiB\" or \"1GB\" is required")
	}
	n, err := ParseSize(s)
	if err != nil {
		return err
	}
	fv.SetInt(n)
	return nil
}

func decodeExpr(e hcl.Expression, ctx *hcl.EvalContext, fv reflect.Value) hcl.Diagnostics {
	x, diags := exprFrom(e, ctx)
	if !diags.HasErrors() {
		fv.Set(reflect.ValueOf(x))
	}
	return diags
}

// kindDecoders decode the types nobody registered, by kind (filled in by
// init: lists and maps decode their elements through assign).
var kindDecoders map[reflect.Kind]func(val cty.Value, fv reflect.Value) error

func init() {
	kindDecoders = map[reflect.Kind]func(val cty.Value, fv reflect.Value) error{
		reflect.String:  decodeString,
		reflect.Bool:    decodeBool,
		reflect.Int:     decodeInt,
		reflect.Int64:   decodeInt,
		reflect.Int32:   decodeInt,
		reflect.Uint16:  decodeInt,
		reflect.Uint32:  decodeInt,
		reflect.Uint64:  decodeInt,
		reflect.Float64: decodeFloat,
		reflect.Slice:   decodeList,
		reflect.Map:     decodeMap,
	}
}

// assign sets fv from val: a registered type's decoder, else its kind's.
func assign(fv reflect.Value, val cty.Value) error {
	if d := typeDecoders[fv.Type()]; d.Value != nil {
		return d.Value(val, fv)
	}
	if dec, ok := kindDecoders[fv.Kind()]; ok {
		return dec(val, fv)
	}
	return fmt.Errorf("unsupported field type %s", fv.Type())
}

func decodeString(val cty.Value, fv reflect.Value) error {
	s, err := asString(val)
	if err != nil {
		return fmt.Errorf("a string is required")
	}
	fv.SetString(s)
	return nil
}

func decodeBool(val cty.Value, fv reflect.Value) error {
	v, err := convert.Convert(val, cty.Bool)
	if err != nil {
		return fmt.Errorf("true or false is required")
	}
	fv.SetBool(v.True())
	return nil
}

func decodeInt(val cty.Value, fv reflect.Value) error {
	v, err := convert.Convert(val, cty.Number)
	if err != nil {
		return fmt.Errorf("a whole number is required")
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() {
		return fmt.Errorf("a whole number is required, not %s", bf.Text('g', 10))
	}
	i, acc := bf.Int64()
	if acc != big.Exact {
		return fmt.Errorf("number out of range")
	}
	if fv.Kind() >= reflect.Uint && fv.Kind() <= reflect.Uint64 {
		if i < 0 || fv.OverflowUint(uint64(i)) {
			return fmt.Errorf("number out of range")
		}
		fv.SetUint(uint64(i))
		return nil
	}
	if fv.OverflowInt(i) {
		return fmt.Errorf("number out of range")
	}
	fv.SetInt(i)
	return nil
}

func decodeFloat(val cty.Value, fv reflect.Value) error {
	v, err := convert.Convert(val, cty.Number)
	if err != nil {
		return fmt.Errorf("a number is required")
	}
	f, _ := v.AsBigFloat().Float64()
	if math.IsInf(f, 0) {
		return fmt.Errorf("number out of range")
	}
	fv.SetFloat(f)
	return nil
}

func decodeList(val cty.Value, fv reflect.Value) error {
	if !val.CanIterateElements() || val.Type().IsMapType() || val.Type().IsObjectType() {
		return fmt.Errorf("a list is required")
	}
	out := reflect.MakeSlice(fv.Type(), 0, val.LengthInt())
	i := 0
	for it := val.ElementIterator(); it.Next(); i++ {
		_, ev := it.Element()
		e := reflect.New(fv.Type().Elem()).Elem()
		if err := assign(e, ev); err != nil {
			return fmt.Errorf("element %d: %w", i, err)
		}
		out = reflect.Append(out, e)
	}
	fv.Set(out)
	return nil
}

func decodeMap(val cty.Value, fv reflect.Value) error {
	if !(val.Type().IsMapType() || val.Type().IsObjectType()) {
		return fmt.Errorf("a map like { name = value } is required")
	}
	out := reflect.MakeMapWithSize(fv.Type(), val.LengthInt())
	for it := val.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		e := reflect.New(fv.Type().Elem()).Elem()
		if err := assign(e, ev); err != nil {
			return fmt.Errorf("%s: %w", k.AsString(), err)
		}
		out.SetMapIndex(reflect.ValueOf(k.AsString()), e)
	}
	fv.Set(out)
	return nil
}
