package config_test

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/flowd/flowd/codecs"
	"github.com/flowd/flowd/connectors/sim"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/config"
	filesink "github.com/flowd/flowd/sinks/file"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// celsius is a type of the test's own, written "21.5C", known to the
// decoder by one registration.
type celsius float64

func init() {
	config.RegisterType(reflect.TypeFor[celsius](), config.TypeDecoder{Name: "temperature", Value: func(val cty.Value, fv reflect.Value) error {
		v, err := convert.Convert(val, cty.String)
		if err != nil || v.IsNull() {
			return fmt.Errorf("a temperature like \"21.5C\" is required")
		}
		s, ok := strings.CutSuffix(v.AsString(), "C")
		f, err := strconv.ParseFloat(s, 64)
		if !ok || err != nil {
			return fmt.Errorf("%q is not a temperature; write it like \"21.5C\"", v.AsString())
		}
		fv.SetFloat(f)
		return nil
	}})
}

type tempConf struct {
	Max    celsius            `hcl:"max" default:"80C" doc:"alarm above"`
	Steps  []celsius          `hcl:"steps" doc:"set points"`
	ByZone map[string]celsius `hcl:"by_zone" doc:"per zone"`
}

var gotTemp *tempConf

var tempSpec = engine.TransformSpec(engine.Info{Type: "temp", Summary: "test"}, func(c *tempConf, _ *engine.Env) (engine.Transform, error) {
	gotTemp = c
	return nopTransform{}, nil
})

// TestRegisteredTypeDecoder checks that a registered type decodes as an
// attribute, inside lists and maps and from its default tag, is named in
// the docs, and that a bad value is blamed at its position.
func TestRegisteredTypeDecoder(t *testing.T) {
	load := func(body string) []string {
		gotTemp = nil
		l := config.NewLoader(config.Options{Registry: engine.NewRegistry(sim.Spec, filesink.Spec, tempSpec).WithCodecs(codecs.All()),
			LookupEnv: func(string) (string, bool) { return "", false }})
		_, diags := l.LoadSource("p.hcl", []byte(`pipeline "p" {
  source "sim" "s" {}
  transform "temp" "t" {
    inputs = [source.s]
`+body+`
  }
  sink "file" "out" {
    inputs = [transform.t]
    path   = "x.jsonl"
  }
}`))
		return errorsAt(diags)
	}
	if errs := load(`    steps   = ["20C", "22.5C"]
    by_zone = { hall = "18C" }`); len(errs) > 0 {
		t.Fatal(errs)
	}
	if gotTemp.Max != 80 || !reflect.DeepEqual(gotTemp.Steps, []celsius{20, 22.5}) || gotTemp.ByZone["hall"] != 18 {
		t.Errorf("decoded %+v", *gotTemp)
	}
	got := load(`    max   = "hot"
    steps = ["20C", "warm"]`)
	want := []string{`5:13 Invalid value for "max"`, `6:13 Invalid value for "steps"`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
	md := config.Markdown(tempSpec)
	for _, w := range []string{
		"| `max` | temperature | `80C` | alarm above |",
		"| `steps` | list(temperature) |  | set points |",
		"| `by_zone` | map(temperature) |  | per zone |",
	} {
		if !strings.Contains(md, w) {
			t.Errorf("docs lack %q:\n%s", w, md)
		}
	}
}

// TestRegisterTypeTwicePanics: two decoders for one type would make the
// outcome depend on init order.
func TestRegisterTypeTwicePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	config.RegisterType(reflect.TypeFor[celsius](), config.TypeDecoder{Name: "x", Value: func(cty.Value, reflect.Value) error { return nil }})
}
