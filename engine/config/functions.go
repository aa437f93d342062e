package config

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// stringFuncs are cty's standard string functions, for composing endpoints
// and lists from variables: split(",", var.brokers), lower(…), format(…).
var stringFuncs = map[string]function.Function{
	"split":     stdlib.SplitFunc,
	"join":      stdlib.JoinFunc,
	"lower":     stdlib.LowerFunc,
	"upper":     stdlib.UpperFunc,
	"trimspace": stdlib.TrimSpaceFunc,
	"replace":   stdlib.ReplaceFunc,
	"format":    stdlib.FormatFunc,
	"coalesce":  stdlib.CoalesceFunc,
}

// functions are the functions a config file can call; file() resolves
// relative paths against the file's own directory.
func (l *Loader) functions(dir string) map[string]function.Function {
	fns := maps.Clone(stringFuncs)
	fns["env"] = envFunc(l.opts.LookupEnv)
	fns["file"] = fileFunc(dir)
	fns["ordinal"] = ordinalFunc
	return fns
}

// envFunc is env("NAME") or env("NAME", "default"): an unset variable with no
// default is an error, so a missing secret stops the load instead of
// connecting with an empty password.
func envFunc(lookup func(string) (string, bool)) function.Function {
	return function.New(&function.Spec{
		Params:   []function.Parameter{{Name: "name", Type: cty.String}},
		VarParam: &function.Parameter{Name: "default", Type: cty.String},
		Type:     function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			name := args[0].AsString()
			if v, ok := lookup(name); ok {
				return cty.StringVal(v), nil
			}
			if len(args) > 1 {
				return args[1], nil
			}
			return cty.NilVal, function.NewArgErrorf(0, "environment variable %s is not set, and env(%q) has no default: set it, or give a default as env(%q, \"…\")", name, name, name)
		},
	})
}

// fileFunc is file("path"): the file's contents with one trailing newline
// removed (secret files usually end with one). A relative path is relative to
// the directory of the config file that uses it.
func fileFunc(baseDir string) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p := args[0].AsString()
			if !filepath.IsAbs(p) {
				p = filepath.Join(baseDir, p)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return cty.NilVal, function.NewArgError(0, err)
			}
			s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
			return cty.StringVal(s), nil
		},
	})
}

// ordinalFunc is ordinal("flowd-2"): the number after the last '-' of a name,
// as a StatefulSet pod's hostname carries its ordinal, for a shard index.
var ordinalFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "name", Type: cty.String}},
	Type:   function.StaticReturnType(cty.Number),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		name := args[0].AsString()
		i := strings.LastIndexByte(name, '-')
		n, err := strconv.Atoi(name[i+1:])
		if err != nil || n < 0 {
			return cty.NilVal, function.NewArgError(0, fmt.Errorf("%q does not end in -N (a StatefulSet pod name like flowd-0)", name))
		}
		return cty.NumberIntVal(int64(n)), nil
	},
})
