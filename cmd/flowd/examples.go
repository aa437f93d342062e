package main

import (
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/config"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// examplePipeline wraps a component's documented example block in the
// smallest pipeline `flowd validate` accepts: every source and transform the
// example reads from is declared (with a component of that kind that needs no
// attributes), and a source or transform example gets a sink to feed.
func examplePipeline(reg *engine.Registry, s *engine.Spec) (string, error) {
	src := strings.TrimSpace(s.Example)
	if src == "" {
		return "", fmt.Errorf("%s %q has no example", s.Kind, s.Type)
	}
	f, diags := hclsyntax.ParseConfig([]byte(src), "example.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		return "", fmt.Errorf("example does not parse: %s", diags.Error())
	}
	body := f.Body.(*hclsyntax.Body)
	if len(body.Blocks) != 1 || len(body.Attributes) != 0 {
		return "", fmt.Errorf("example must be exactly one %s block", s.Kind)
	}
	blk := body.Blocks[0]
	if blk.Type != string(s.Kind) || len(blk.Labels) != 2 || blk.Labels[0] != s.Type {
		return "", fmt.Errorf("example must be a block %s %q \"NAME\", not %s %q", s.Kind, s.Type, blk.Type, blk.Labels)
	}
	name := blk.Labels[1]

	var refs []string
	if attr, ok := blk.Body.Attributes["inputs"]; ok {
		exprs, diags := hcl.ExprList(attr.Expr)
		if diags.HasErrors() {
			return "", fmt.Errorf("example inputs: %s", diags.Error())
		}
		for _, e := range exprs {
			tr, diags := hcl.AbsTraversalForExpr(e)
			if diags.HasErrors() || len(tr) != 2 {
				return "", fmt.Errorf("example inputs: want references like source.NAME")
			}
			step, ok := tr[1].(hcl.TraverseAttr)
			if !ok {
				return "", fmt.Errorf("example inputs: want references like source.NAME")
			}
			refs = append(refs, tr.RootName()+"."+step.Name)
		}
	}

	var b strings.Builder
	b.WriteString("pipeline \"example\" {\n")
	const feed = "example_feed"
	needFeed := false
	for _, ref := range refs {
		kind, refName := engine.SplitID(ref)
		typ, err := plainType(reg, kind, s.Type)
		if err != nil {
			return "", fmt.Errorf("example reads from %s: %w", ref, err)
		}
		if kind == engine.KindTransform {
			fmt.Fprintf(&b, "  %s %q %q {\n    inputs = [source.%s]\n  }\n\n", kind, typ, refName, feed)
			needFeed = true
		} else {
			fmt.Fprintf(&b, "  %s %q %q {}\n\n", kind, typ, refName)
		}
	}
	if needFeed {
		typ, err := plainType(reg, engine.KindSource, s.Type)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "  source %q %q {}\n\n", typ, feed)
	}
	for _, line := range strings.Split(src, "\n") {
		if line == "" {
			b.WriteString("\n") // no trailing whitespace on blank lines
			continue
		}
		b.WriteString("  " + line + "\n")
	}
	if s.Kind != engine.KindSink {
		typ, err := plainType(reg, engine.KindSink, s.Type)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "\n  sink %q \"example_out\" {\n    inputs = [%s.%s]\n  }\n", typ, s.Kind, name)
	}
	b.WriteString("}\n")
	return b.String(), nil
}

// plainType is the first registered type of kind whose config has no
// required attribute, other than the example's own type (a cov example fed
// by another cov would read as if that were part of the example).
func plainType(reg *engine.Registry, kind engine.ComponentKind, not string) (string, error) {
	for _, t := range reg.Types(kind) {
		if t == not {
			continue
		}
		spec, _ := reg.Lookup(kind, t)
		required := false
		for _, f := range config.Fields(spec.ConfigType()) {
			required = required || f.Required
		}
		if required {
			continue
		}
		// Defaults alone must make a valid component (an MQTT source, say,
		// has no required attribute but needs a broker).
		cfg := reflect.New(spec.ConfigType())
		if config.ApplyDefaults(cfg.Elem()) != nil {
			continue
		}
		if _, err := spec.Build(cfg.Interface(), &engine.Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Codecs: reg.Codecs}); err == nil {
			return t, nil
		}
	}
	return "", fmt.Errorf("no %s type builds from its defaults alone", kind)
}
