package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"sort"

	"github.com/flowd/flowd/engine"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// fingerprint hashes everything a pipeline is built from, so a reload can
// keep a running pipeline whose inputs did not change: the text of its block
// and the directory of its file (relative paths), the values of the
// variables it refers to, what env() and file() returned while it was
// decoded, and the service settings handed to its components.
type fingerprint struct {
	h  hash.Hash
	ok bool
}

func newFingerprint(src []byte, b *hcl.Block, dir string, vars map[string]cty.Value, dataDir string, shard engine.Shard, adminAddr string) *fingerprint {
	f := &fingerprint{h: sha256.New()}
	body, ok := b.Body.(*hclsyntax.Body)
	if !ok || body.SrcRange.End.Byte > len(src) {
		return f // not native syntax: never equal, always rebuilt
	}
	f.ok = true
	fmt.Fprintf(f.h, "dir\x00%s\x00data\x00%s\x00shard\x00%s\x00admin\x00%s\x00", dir, dataDir, shard, adminAddr)
	f.h.Write(src[body.SrcRange.Start.Byte:body.SrcRange.End.Byte])
	whole := false
	names := map[string]bool{}
	hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
		e, ok := n.(*hclsyntax.ScopeTraversalExpr)
		if !ok || e.Traversal.RootName() != "var" {
			return nil
		}
		if len(e.Traversal) > 1 {
			if a, ok := e.Traversal[1].(hcl.TraverseAttr); ok {
				names[a.Name] = true
				return nil
			}
		}
		whole = true // var itself, or var["name"]: all of them
		return nil
	})
	if whole {
		for n := range vars {
			names[n] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		f.value("var."+n, vars[n])
	}
	return f
}

// value adds a named value; a value that cannot be serialised makes the
// fingerprint unusable (the pipeline is then always rebuilt).
func (f *fingerprint) value(name string, v cty.Value) {
	if v == cty.NilVal {
		fmt.Fprintf(f.h, "%s\x00unset\x00", name)
		return
	}
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		f.ok = false
		return
	}
	fmt.Fprintf(f.h, "%s\x00%d\x00", name, len(b))
	f.h.Write(b)
}

// record wraps fn so each call's arguments and result join the fingerprint.
func (f *fingerprint) record(name string, fn function.Function) function.Function {
	spec := &function.Spec{
		Params:   fn.Params(),
		VarParam: fn.VarParam(),
		Type:     function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			v, err := fn.Call(args)
			call := name
			for _, a := range args {
				if a.IsKnown() && !a.IsNull() && a.Type() == cty.String {
					call += "\x00" + a.AsString()
				}
			}
			if err != nil {
				f.ok = false
			} else {
				f.value(call, v)
			}
			return v, err
		},
	}
	return function.New(spec)
}

// functions are the file's functions with env() and file() recorded.
func (f *fingerprint) functions(fns map[string]function.Function) map[string]function.Function {
	for _, name := range []string{"env", "file"} {
		if fn, ok := fns[name]; ok {
			fns[name] = f.record(name, fn)
		}
	}
	return fns
}

func (f *fingerprint) sum() string {
	if !f.ok {
		return ""
	}
	return hex.EncodeToString(f.h.Sum(nil))
}
