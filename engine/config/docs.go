package config

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/flowd/flowd/engine"
)

// Markdown renders a component's reference from its spec.
func Markdown(s *engine.Spec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s `%s`\n\n%s\n\n", s.Kind, s.Type, s.Summary)
	if s.Description != "" {
		fmt.Fprintf(&b, "%s\n\n", s.Description)
	}
	b.WriteString("## Example\n\n```hcl\n")
	b.WriteString(ExampleHCL(s))
	b.WriteString("\n```\n\n## Attributes\n\n")
	var extra []Field
	switch s.Kind {
	case engine.KindTransform, engine.KindSink:
		extra = append(extra, Field{Name: "inputs", Type: reflect.TypeFor[[]string](), Required: true,
			Doc: "references to the sources and transforms this reads from, like [source.plc, transform.scale]"})
	}
	writeFields(&b, "", append(extra, Fields(s.ConfigType())...))
	if s.Kind == engine.KindSink {
		b.WriteString("\n### Block `buffer`\n\nEvery sink has one buffer between its input and its writer.\n\n")
		writeFields(&b, "buffer.", Fields(reflect.TypeFor[engine.BufferConfig]()))
	}
	return b.String()
}

func writeFields(b *strings.Builder, prefix string, fields []Field) {
	b.WriteString("| name | type | default | description |\n|---|---|---|---|\n")
	var blocks []Field
	for _, f := range fields {
		if f.Label {
			continue
		}
		if f.Block {
			blocks = append(blocks, f)
		}
		def := f.Default
		if f.Required {
			def = "required"
		} else if def != "" {
			def = "`" + def + "`"
		}
		doc := f.Doc
		if len(f.Schemes) > 0 && f.Schemes[0] != "none" {
			doc += " (URL schemes: " + strings.Join(f.Schemes, "://, ") + "://; checked by validate)"
		}
		if len(f.Enum) > 0 {
			doc += " (one of: " + strings.Join(f.Enum, ", ") + ")"
		}
		fmt.Fprintf(b, "| `%s%s` | %s | %s | %s |\n", prefix, f.Name, f.TypeName(), def, strings.ReplaceAll(doc, "|", "\\|"))
	}
	for _, f := range blocks {
		elem := blockElem(f.Type)
		var labels []string
		for _, lf := range Fields(elem) {
			if lf.Label {
				labels = append(labels, "\""+lf.Name+"\"")
			}
		}
		fmt.Fprintf(b, "\n### Block `%s %s`\n\n%s\n\n", f.Name, strings.Join(labels, " "), f.Doc)
		writeFields(b, prefix+f.Name+".", Fields(elem))
	}
}

// ExampleHCL wraps a component's example in a pipeline so it can be validated.
func ExampleHCL(s *engine.Spec) string { return strings.TrimSpace(s.Example) }
