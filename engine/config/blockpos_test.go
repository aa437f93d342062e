package config_test

import (
	"errors"
	"github.com/flowd/flowd/codecs"
	"testing"

	"github.com/flowd/flowd/connectors/sim"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/config"
	filesink "github.com/flowd/flowd/sinks/file"
)

// nestedConf has blocks two deep that record where they were written.
type nestedConf struct {
	Outer []struct {
		Name  string `hcl:"name,label"`
		Inner []struct {
			Name  string `hcl:"name,label"`
			Limit int    `hcl:"limit"`
			Pos   engine.BlockPos
		} `hcl:"inner,block"`
		Pos engine.BlockPos
	} `hcl:"outer,block"`
}

var nestedSpec = engine.TransformSpec(engine.Info{Type: "nested", Summary: "test"}, func(c *nestedConf, env *engine.Env) (engine.Transform, error) {
	for _, o := range c.Outer {
		for _, in := range o.Inner {
			if in.Limit < 0 {
				return nil, &engine.FieldError{Field: "limit", Offset: -1, Err: errors.New("must not be negative"), Range: in.Pos.At("limit")}
			}
			if in.Limit == 0 {
				return nil, &engine.FieldError{Field: "limit", Offset: -1, Err: errors.New("is required"), Range: in.Pos.At("limit")}
			}
		}
	}
	return nopTransform{}, nil
})

// TestNestedBlockPositions checks that a constructor can blame an
// attribute two blocks deep (or the block, when the attribute is absent)
// with its line and column.
func TestNestedBlockPositions(t *testing.T) {
	for _, c := range []struct{ inner, want string }{
		{`inner "i" {
        limit = -1
      }`, "7:17 Invalid transform \"n\""},
		{`inner "i" {}`, "6:7 Invalid transform \"n\""},
	} {
		l := config.NewLoader(config.Options{Registry: engine.NewRegistry(sim.Spec, filesink.Spec, nestedSpec).WithCodecs(codecs.All()), LookupEnv: func(string) (string, bool) { return "", false }})
		_, diags := l.LoadSource("p.hcl", []byte(`pipeline "p" {
  source "sim" "a" {}
  transform "nested" "n" {
    inputs = [source.a]
    outer "o" {
      `+c.inner+`
    }
  }
  sink "file" "out" {
    inputs = [transform.n]
    path   = "x.jsonl"
  }
}`))
		got := errorsAt(diags)
		if len(got) != 1 || got[0] != c.want {
			t.Fatalf("got %q, want %q", got, c.want)
		}
	}
}
