package config_test

import (
	"strings"
	"testing"

	"github.com/flowd/flowd/connectors/sim"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/config"
	"github.com/flowd/flowd/sinks/discard"
)

func loadSrc(t *testing.T, env map[string]string, src string) (*config.Config, string) {
	t.Helper()
	l := config.NewLoader(config.Options{
		Registry:  engine.NewRegistry(sim.Spec, discard.Spec),
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	})
	cfg, diags := l.LoadSource("shard.hcl", []byte(src))
	var msgs []string
	for _, d := range diags {
		if d.Subject != nil {
			msgs = append(msgs, d.Subject.String()+": "+d.Summary+": "+d.Detail)
		} else {
			msgs = append(msgs, d.Summary+": "+d.Detail)
		}
	}
	return cfg, strings.Join(msgs, "\n")
}

const pipelineHCL = `
pipeline "p" {
  source "sim" "s" {}
  sink "discard" "d" {
    inputs = [source.s]
  }
}
`

func TestShardFromEnvReachesComponents(t *testing.T) {
	for _, c := range []struct {
		name, index string
		env         map[string]string
		want        int
	}{
		{"env", `env("POD_ORDINAL")`, map[string]string{"POD_ORDINAL": "1"}, 1},
		{"hostname", `ordinal(env("HOSTNAME"))`, map[string]string{"HOSTNAME": "flowd-2"}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := "service {\n  shard {\n    index = " + c.index + "\n    count = 3\n  }\n}\n" + pipelineHCL
			cfg, msgs := loadSrc(t, c.env, src)
			if cfg == nil {
				t.Fatal(msgs)
			}
			for _, n := range cfg.Pipelines[0].Nodes {
				if got := n.Env.Shard; got != (engine.Shard{Index: c.want, Count: 3}) {
					t.Fatalf("%s: shard %+v, want %d/3", n.ID(), got, c.want)
				}
			}
		})
	}
}

func TestShardInvalid(t *testing.T) {
	for _, c := range []struct {
		name, block, want string
	}{
		{"out of range", "shard {\n    index = 2\n    count = 2\n  }", "shard.hcl:2,3-8: Invalid shard: index 2 is outside 0 … 1."},
		{"not an ordinal", "shard {\n    index = ordinal(\"flowd\")\n    count = 2\n  }", "shard.hcl:3,22-27: Invalid function argument"},
		{"missing count", "shard {\n    index = 0\n  }", "Missing required argument"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, msgs := loadSrc(t, nil, "service {\n  "+c.block+"\n}\n"+pipelineHCL)
			if cfg != nil {
				t.Fatal("loaded an invalid shard")
			}
			if !strings.Contains(msgs, c.want) {
				t.Fatalf("diagnostics %q do not contain %q", msgs, c.want)
			}
		})
	}
}
