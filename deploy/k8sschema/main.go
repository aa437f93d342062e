// Command k8sschema turns Kubernetes' OpenAPI v2 document (api/openapi-spec/
// swagger.json, shipped in the k8s.io/kubernetes module) into standalone,
// strict JSON schemas, one file per kind, in the layout kubeconform reads:
//
//	DIR/v1.33.13-standalone-strict/statefulset-apps-v1.json
//
// so rendered manifests can be validated with no network at test time.
//
//	go run ./deploy/k8sschema -version 1.33.13 -out DIR SWAGGER.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	version := flag.String("version", "", "Kubernetes version the document is from, like 1.33.13")
	out := flag.String("out", "", "directory to write the schemas under")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "Usage: k8sschema -version X.Y.Z -out DIR swagger.json")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *version == "" || *out == "" || flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	n, err := generate(flag.Arg(0), *version, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8sschema:", err)
		os.Exit(1)
	}
	fmt.Printf("%d schemas written to %s\n", n, filepath.Join(*out, "v"+*version+"-standalone-strict"))
}

type gvk struct {
	Group   string `json:"group"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
}

func generate(swaggerPath, version, outDir string) (int, error) {
	b, err := os.ReadFile(swaggerPath)
	if err != nil {
		return 0, err
	}
	var doc struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return 0, fmt.Errorf("%s: %w", swaggerPath, err)
	}
	if len(doc.Definitions) == 0 {
		return 0, fmt.Errorf("%s: no definitions", swaggerPath)
	}
	dir := filepath.Join(outDir, "v"+version+"-standalone-strict")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	names := make([]string, 0, len(doc.Definitions))
	for name := range doc.Definitions {
		names = append(names, name)
	}
	sort.Strings(names)
	r := &resolver{defs: doc.Definitions, onStack: map[string]bool{}}
	n := 0
	for _, name := range names {
		def := doc.Definitions[name]
		raw, ok := def["x-kubernetes-group-version-kind"]
		if !ok {
			continue
		}
		var kinds []gvk
		if err := remarshal(raw, &kinds); err != nil {
			return n, fmt.Errorf("%s: %w", name, err)
		}
		schema := r.definition(name)
		out, err := json.Marshal(schema)
		if err != nil {
			return n, err
		}
		for _, k := range kinds {
			if err := os.WriteFile(filepath.Join(dir, FileName(k)), out, 0o644); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// FileName is where kubeconform looks for a kind's schema:
// {kind}-{first part of the group}-{version}.json, or {kind}-{version}.json
// for the core group.
func FileName(k gvk) string {
	suffix := "-" + strings.ToLower(k.Version)
	if k.Group != "" {
		suffix = "-" + strings.ToLower(strings.Split(k.Group, ".")[0]) + suffix
	}
	return strings.ToLower(k.Kind) + suffix + ".json"
}

func remarshal(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// resolver inlines $refs. A reference back into a definition being inlined
// (only the recursive apiextensions JSONSchemaProps) becomes {}: anything.
type resolver struct {
	defs    map[string]map[string]any
	onStack map[string]bool
}

const refPrefix = "#/definitions/"

func (r *resolver) definition(name string) any {
	switch name {
	case "io.k8s.apimachinery.pkg.api.resource.Quantity":
		// Written as "500m", "1Gi" or a plain number.
		return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}
	}
	def, ok := r.defs[name]
	if !ok || r.onStack[name] {
		return map[string]any{}
	}
	r.onStack[name] = true
	defer delete(r.onStack, name)
	return r.node(def)
}

// node converts one schema node: $refs inlined, int-or-string as a oneOf,
// objects with properties closed (additionalProperties false, as kubectl's
// own validation), descriptions and extensions dropped.
func (r *resolver) node(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if ref, ok := x["$ref"].(string); ok && strings.HasPrefix(ref, refPrefix) {
			return r.definition(strings.TrimPrefix(ref, refPrefix))
		}
		if x["format"] == "int-or-string" {
			return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
		}
		out := make(map[string]any, len(x)+1)
		for k, val := range x {
			switch {
			case k == "description" || strings.HasPrefix(k, "x-"):
				continue
			case k == "properties":
				props := map[string]any{}
				for pk, pv := range val.(map[string]any) {
					props[pk] = r.node(pv)
				}
				out[k] = props
			default:
				out[k] = r.node(val)
			}
		}
		if _, ok := out["properties"]; ok {
			if _, set := out["additionalProperties"]; !set {
				out["additionalProperties"] = false
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = r.node(e)
		}
		return out
	}
	return v
}
