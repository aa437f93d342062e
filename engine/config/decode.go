package config

import (
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/flowd/flowd/engine"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Field describes one attribute or block of a config struct, read from its tags.
type Field struct {
	Name string
	// Index is the field's index sequence (reflect.Value.FieldByIndex): more
	// than one number for a field of an embedded group.
	Index    []int
	Type     reflect.Type
	Block    bool
	Label    bool
	Required bool
	Default  string
	Doc      string
	Enum     []string
	// Schemes are the URL schemes a string (or each string of a list) may
	// have (tag scheme:"mqtt|mqtts"); "none" means host[:port] without one.
	Schemes []string
}

// TypeName is how the reference docs name a field's type.
func (f Field) TypeName() string {
	return typeName(f.Type)
}

func typeName(t reflect.Type) string {
	if d, ok := typeDecoders[t]; ok {
		return d.Name
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint32, reflect.Uint16, reflect.Uint64:
		return "number"
	case reflect.Float64:
		return "number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return "block, repeatable"
		}
		return "list(" + typeName(t.Elem()) + ")"
	case reflect.Map:
		return "map(" + typeName(t.Elem()) + ")"
	case reflect.Pointer, reflect.Struct:
		return "block"
	}
	return t.String()
}

var (
	blockPosType = reflect.TypeFor[engine.BlockPos]()
	fieldCache   sync.Map // reflect.Type → []Field
)

// Fields lists a config struct's fields, in declaration order. The fields of
// an embedded struct without an hcl name (a shared group such as the MQTT
// connection settings) take its place in the list, as if written in the
// embedding struct: the HCL stays flat. The embedding field may override the
// group's defaults and docs per component with tags default.NAME:"…" and
// doc.NAME:"…". A name given twice, or an override of a name the group does
// not have, is a programming error and panics.
func Fields(t reflect.Type) []Field {
	if v, ok := fieldCache.Load(t); ok {
		return v.([]Field)
	}
	out := fields(t, nil)
	seen := make(map[string]bool, len(out))
	for _, f := range out {
		if seen[f.Name] && !f.Label {
			panic(fmt.Sprintf("config: %s: attribute %q declared twice", t, f.Name))
		}
		seen[f.Name] = true
	}
	fieldCache.Store(t, out)
	return out
}

func fields(t reflect.Type, index []int) []Field {
	var out []Field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag, tagged := sf.Tag.Lookup("hcl")
		if tag == "-" {
			continue
		}
		idx := append(slices.Clip(index), i)
		name, opts, _ := strings.Cut(tag, ",")
		if sf.Anonymous && sf.Type.Kind() == reflect.Struct && name == "" {
			group := fields(sf.Type, idx)
			overrideGroup(t, sf, group)
			out = append(out, group...)
			continue
		}
		if !tagged {
			continue
		}
		f := Field{Name: name, Index: idx, Type: sf.Type, Default: sf.Tag.Get("default"), Doc: sf.Tag.Get("doc")}
		for _, o := range strings.Split(opts, ",") {
			switch o {
			case "required":
				f.Required = true
			case "block":
				f.Block = true
			case "label":
				f.Label = true
			}
		}
		if e := sf.Tag.Get("enum"); e != "" {
			f.Enum = strings.Split(e, "|")
		}
		if e := sf.Tag.Get("scheme"); e != "" {
			f.Schemes = strings.Split(e, "|")
		}
		out = append(out, f)
	}
	return out
}

// overrideGroup applies the default.NAME and doc.NAME tags of the field that
// embeds a group to the group's fields.
func overrideGroup(t reflect.Type, sf reflect.StructField, group []Field) {
	for _, kv := range tagPairs(sf.Tag) {
		what, name, ok := strings.Cut(kv[0], ".")
		if !ok || (what != "default" && what != "doc") {
			continue
		}
		i := slices.IndexFunc(group, func(f Field) bool { return f.Name == name })
		if i < 0 {
			panic(fmt.Sprintf("config: %s.%s: tag %s names no attribute of %s", t, sf.Name, kv[0], sf.Type))
		}
		if what == "default" {
			group[i].Default = kv[1]
		} else {
			group[i].Doc = kv[1]
		}
	}
}

// tagPairs lists the key:"value" pairs of a struct tag, in order.
func tagPairs(tag reflect.StructTag) [][2]string {
	var out [][2]string
	s := strings.TrimSpace(string(tag))
	for s != "" {
		key, rest, ok := strings.Cut(s, ":")
		if !ok || !strings.HasPrefix(rest, `"`) {
			panic(fmt.Sprintf("config: malformed struct tag %q", tag))
		}
		end := 1
		for end < len(rest) && rest[end] != '"' {
			if rest[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(rest) {
			panic(fmt.Sprintf("config: malformed struct tag %q", tag))
		}
		val, err := strconv.Unquote(rest[:end+1])
		if err != nil {
			panic(fmt.Sprintf("config: malformed struct tag %q", tag))
		}
		out = append(out, [2]string{key, val})
		s = strings.TrimSpace(rest[end+1:])
	}
	return out
}

func blockElem(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	return t
}

// Schema builds the HCL schema of a config struct.
func Schema(t reflect.Type) *hcl.BodySchema {
	s := &hcl.BodySchema{}
	for _, f := range Fields(t) {
		switch {
		case f.Label:
		case f.Block:
			var labels []string
			for _, lf := range Fields(blockElem(f.Type)) {
				if lf.Label {
					labels = append(labels, lf.Name)
				}
			}
			s.Blocks = append(s.Blocks, hcl.BlockHeaderSchema{Type: f.Name, LabelNames: labels})
		default:
			s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: f.Name, Required: f.Required})
		}
	}
	return s
}

// ApplyDefaults sets every field that has a default tag; a nested struct
// value (not pointer) gets its own defaults.
func ApplyDefaults(v reflect.Value) error {
	for _, f := range Fields(v.Type()) {
		fv := v.FieldByIndex(f.Index)
		if f.Block && f.Type.Kind() == reflect.Struct {
			if err := ApplyDefaults(fv); err != nil {
				return err
			}
			continue
		}
		if f.Default == "" {
			continue
		}
		if err := setFromString(fv, f.Default); err != nil {
			return fmt.Errorf("default of %s: %w", f.Name, err)
		}
	}
	return nil
}

func setFromString(fv reflect.Value, s string) error {
	var val cty.Value
	switch {
	case typeDecoders[fv.Type()].Value != nil || fv.Kind() == reflect.String:
		val = cty.StringVal(s)
	case fv.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		val = cty.BoolVal(b)
	case fv.Kind() == reflect.Slice || fv.Kind() == reflect.Map:
		return fmt.Errorf("no defaults for lists or maps")
	default:
		f, _, err := big.ParseFloat(s, 10, 512, big.ToNearestEven)
		if err != nil {
			return err
		}
		val = cty.NumberVal(f)
	}
	return assign(fv, val)
}

// DecodeContent decodes content (already checked against Schema(t)) into v.
func DecodeContent(content *hcl.BodyContent, v reflect.Value, ctx *hcl.EvalContext) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, f := range Fields(v.Type()) {
		fv := v.FieldByIndex(f.Index)
		if f.Block {
			diags = append(diags, decodeBlocks(content, f, fv, ctx)...)
			continue
		}
		if f.Label {
			continue
		}
		attr, ok := content.Attributes[f.Name]
		if !ok {
			continue
		}
		diags = append(diags, decodeAttr(attr, f, fv, ctx)...)
	}
	return diags
}

func decodeBlocks(content *hcl.BodyContent, f Field, fv reflect.Value, ctx *hcl.EvalContext) hcl.Diagnostics {
	var diags hcl.Diagnostics
	var blocks []*hcl.Block
	for _, b := range content.Blocks {
		if b.Type == f.Name {
			blocks = append(blocks, b)
		}
	}
	elem := blockElem(f.Type)
	isSlice := f.Type.Kind() == reflect.Slice
	if !isSlice && len(blocks) > 1 {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Duplicate " + f.Name + " block",
			Detail:  fmt.Sprintf("Only one %q block is allowed here; the first is at %s.", f.Name, blocks[0].DefRange),
			Subject: blocks[1].DefRange.Ptr(),
		})
		blocks = blocks[:1]
	}
	for _, b := range blocks {
		ev := reflect.New(elem).Elem()
		if err := ApplyDefaults(ev); err != nil {
			panic(err) // a bad default tag is a programming error, caught by tests
		}
		li := 0
		for _, lf := range Fields(elem) {
			if lf.Label && li < len(b.Labels) {
				ev.FieldByIndex(lf.Index).SetString(b.Labels[li])
				li++
			}
		}
		c, d := b.Body.Content(Schema(elem))
		diags = append(diags, d...)
		diags = append(diags, DecodeContent(c, ev, ctx)...)
		if pf := ev.FieldByName("Pos"); pf.IsValid() && pf.Type() == blockPosType {
			pos := engine.BlockPos{Block: toRange(b.DefRange), Attrs: make(map[string]engine.Range, len(c.Attributes))}
			for n, a := range c.Attributes {
				pos.Attrs[n] = toRange(a.Expr.Range())
			}
			pf.Set(reflect.ValueOf(pos))
		}
		switch {
		case isSlice && f.Type.Elem().Kind() == reflect.Pointer:
			p := reflect.New(elem)
			p.Elem().Set(ev)
			fv.Set(reflect.Append(fv, p))
		case isSlice:
			fv.Set(reflect.Append(fv, ev))
		case f.Type.Kind() == reflect.Pointer:
			p := reflect.New(elem)
			p.Elem().Set(ev)
			fv.Set(p)
		default:
			fv.Set(ev)
		}
	}
	return diags
}

func attrDiag(attr *hcl.Attribute, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError, Summary: summary, Detail: detail,
		Subject: attr.Expr.Range().Ptr(), Context: attr.Range.Ptr(),
	}
}

func decodeAttr(attr *hcl.Attribute, f Field, fv reflect.Value, ctx *hcl.EvalContext) hcl.Diagnostics {
	// A type decoded from its expression (an expression keeps its range)
	// gets the expression; in a map, each entry's, so errors point inside it.
	if d := typeDecoders[fv.Type()]; d.Expr != nil {
		return d.Expr(attr.Expr, ctx, fv)
	}
	if fv.Kind() == reflect.Map {
		if d := typeDecoders[fv.Type().Elem()]; d.Expr != nil {
			return decodeExprMap(attr, d, fv, ctx)
		}
	}
	val, diags := attr.Expr.Value(ctx)
	if diags.HasErrors() {
		return diags
	}
	if val.IsNull() {
		return nil
	}
	if !val.IsWhollyKnown() {
		return hcl.Diagnostics{attrDiag(attr, "Unknown value", "The value of "+f.Name+" cannot be known before running.")}
	}
	if err := assign(fv, val); err != nil {
		return hcl.Diagnostics{attrDiag(attr, "Invalid value for "+strconv.Quote(f.Name), err.Error())}
	}
	if len(f.Enum) > 0 && fv.Kind() == reflect.String {
		s := fv.String()
		found := false
		for _, e := range f.Enum {
			found = found || e == s
		}
		if !found {
			detail := fmt.Sprintf("%q is not one of %s.", s, strings.Join(f.Enum, ", "))
			if sug := Suggest(s, f.Enum); sug != "" {
				detail += fmt.Sprintf(" Did you mean %q?", sug)
			}
			return hcl.Diagnostics{attrDiag(attr, "Invalid value for "+strconv.Quote(f.Name), detail)}
		}
	}
	if len(f.Schemes) > 0 {
		var list []string
		switch {
		case fv.Kind() == reflect.String:
			list = []string{fv.String()}
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
			list = fv.Interface().([]string)
		}
		for _, u := range list {
			if err := checkScheme(u, f.Schemes); err != nil {
				return hcl.Diagnostics{attrDiag(attr, "Invalid value for "+strconv.Quote(f.Name), err.Error())}
			}
		}
	}
	return nil
}

// checkScheme tells whether u is a URL with one of schemes and a host (or,
// for "none", a host[:port] without a scheme), so a missing opc.tcp:// is a
// validation error instead of a connection that fails forever at run time.
// Credentials in u are never repeated.
func checkScheme(u string, schemes []string) error {
	shown := strconv.Quote(redactURL(u))
	if schemes[0] == "none" {
		if scheme, _, ok := strings.Cut(u, "://"); ok {
			return fmt.Errorf("%s: want host or host:port, without a scheme (drop %s://)", shown, scheme)
		}
		return nil
	}
	want := strings.Join(schemes, "://, ") + "://"
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return fmt.Errorf("%s has no scheme: want %s followed by host:port, e.g. %s://%s", shown, want, schemes[0], redactURL(u))
	}
	if !slices.Contains(schemes, strings.ToLower(scheme)) {
		detail := fmt.Sprintf("scheme %q of %s is not one of %s", scheme, shown, want)
		if sug := Suggest(strings.ToLower(scheme), schemes); sug != "" {
			detail += fmt.Sprintf(". Did you mean %q?", sug+"://")
		}
		return errors.New(detail)
	}
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("%s is not a valid URL", shown)
	}
	if p.Hostname() == "" || strings.HasPrefix(rest, "/") {
		return fmt.Errorf("%s has no host: want %s://host:port", shown, scheme)
	}
	return nil
}

// redactURL hides the user information of a URL (user:password@).
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		rest = u
	}
	at := strings.LastIndex(rest, "@")
	if slash := strings.Index(rest, "/"); slash >= 0 && slash < at {
		at = -1
	}
	if at < 0 {
		return u
	}
	if !ok {
		return "xxxxx@" + rest[at+1:]
	}
	return scheme + "://xxxxx@" + rest[at+1:]
}

// decodeExprMap decodes a map whose values are decoded from their
// expressions, keeping each entry's range.
func decodeExprMap(attr *hcl.Attribute, d TypeDecoder, fv reflect.Value, ctx *hcl.EvalContext) hcl.Diagnostics {
	pairs, diags := hcl.ExprMap(attr.Expr)
	if diags.HasErrors() {
		return diags
	}
	m := reflect.MakeMapWithSize(fv.Type(), len(pairs))
	for _, kv := range pairs {
		k, dg := kv.Key.Value(ctx)
		diags = append(diags, dg...)
		if dg.HasErrors() {
			continue
		}
		if k.IsNull() || !k.Type().Equals(cty.String) {
			diags = append(diags, attrDiag(attr, "Invalid key", "Map keys must be names or strings."))
			continue
		}
		e := reflect.New(fv.Type().Elem()).Elem()
		diags = append(diags, d.Expr(kv.Value, ctx, e)...)
		m.SetMapIndex(reflect.ValueOf(k.AsString()), e)
	}
	fv.Set(m)
	return diags
}

// exprFrom evaluates an attribute as a string expression and keeps where the
// string's text starts, so a compile error can point at a column inside it.
func exprFrom(e hcl.Expression, ctx *hcl.EvalContext) (engine.Expr, hcl.Diagnostics) {
	val, diags := e.Value(ctx)
	if diags.HasErrors() {
		return engine.Expr{}, diags
	}
	val, err := convert.Convert(val, cty.String)
	if err != nil || val.IsNull() {
		return engine.Expr{}, hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "Invalid expression", Detail: "An expression is written as a string.",
			Subject: e.Range().Ptr(),
		}}
	}
	r := e.Range()
	if t, ok := e.(*hclsyntax.TemplateExpr); ok && t.IsStringLiteral() && r.Start.Line == r.End.Line {
		// Skip the opening quote: Start now addresses the string's first byte.
		r.Start.Column++
		r.Start.Byte++
	}
	return engine.Expr{Src: val.AsString(), Range: toRange(r)}, nil
}

func asString(val cty.Value) (string, error) {
	v, err := convert.Convert(val, cty.String)
	if err != nil || v.IsNull() {
		return "", fmt.Errorf("a string is required")
	}
	return v.AsString(), nil
}

// ParseSize reads "512", "64KiB", "1.5GB", "100MB" (SI or binary units).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%q is not a size; write it like \"512MiB\" or \"1GB\"", s)
	}
	mult := map[string]float64{
		"": 1, "B": 1, "KB": 1e3, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%q has an unknown unit %q; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB", s, unit)
	}
	return int64(f * mult), nil
}
