package main

import (
	"strings"
	"testing"

	"github.com/flowd/flowd/e2e/harness"
)

// The MQTT components' expressions (the source's asset_expr and map block
// over topic and payload, the sink's topic_expr over the point) are checked
// by validate, which points at the column inside the string.
func TestValidatePointsIntoMQTTExpressions(t *testing.T) {
	dir := t.TempDir()
	bad := harness.WriteFile(t, dir, "bad.hcl", `pipeline "p" {
  source "mqtt" "a" {
    broker     = "mqtt://127.0.0.1:1883"
    topics     = ["plant/#"]
    asset_expr = "'site-' + topc[1]"
  }
  source "mqtt" "m" {
    broker = "mqtt://127.0.0.1:1883"
    topics = ["dev/#"]
    format = "map"
    map = {
      value = "payload.reading *"
    }
  }
  sink "mqtt" "out" {
    inputs     = [source.a, source.m]
    broker     = "mqtt://127.0.0.1:1883"
    topic_expr = "'plant/' + asset + '/' + tga"
  }
}
`)
	code, _, stderr := runCLI("validate", bad)
	if code != exitInvalid {
		t.Fatalf("exit %d, want 1\n%s", code, stderr)
	}
	for _, want := range []string{
		bad + `:5:29: error: Invalid source "a"`, "asset_expr: unknown name topc",
		bad + `:12:32: error: Invalid source "m"`, "map.value: unexpected token EOF",
		bad + `:18:44: error: Invalid sink "out"`, "topic_expr: unknown name tga",
		"3 error(s)",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("missing %q in:\n%s", want, stderr)
		}
	}
}
