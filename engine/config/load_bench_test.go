package config_test

import (
	"testing"

	"github.com/flowd/flowd/codecs"
	mqttsource "github.com/flowd/flowd/connectors/mqtt"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/config"
	mqttsink "github.com/flowd/flowd/sinks/mqtt"
)

// BenchmarkLoadMQTTPipeline decodes and builds a pipeline of an mqtt source
// and an mqtt sink (their connection attributes an embedded group), as
// validate and every reload do.
func BenchmarkLoadMQTTPipeline(b *testing.B) {
	src := []byte(`pipeline "p" {
  source "mqtt" "in" {
    broker         = "mqtt://127.0.0.1:1883"
    topics         = ["plant/+/telemetry"]
    client_id      = "edge-1"
    keepalive      = "20s"
    session_expiry = "2h"
    batch_size     = 500
    asset_expr     = "topic[1]"
  }
  sink "mqtt" "out" {
    inputs     = [source.in]
    broker     = "mqtt://127.0.0.1:1883"
    topic_expr = "'uns/' + asset + '/' + tag"
    backoff_max = "10s"
  }
}`)
	reg := engine.NewRegistry(mqttsource.Spec, mqttsink.Spec).WithCodecs(codecs.All())
	b.ReportAllocs()
	for b.Loop() {
		l := config.NewLoader(config.Options{Registry: reg, LookupEnv: func(string) (string, bool) { return "", false }})
		if _, diags := l.LoadSource("p.hcl", src); diags.HasErrors() {
			b.Fatal(diags)
		}
	}
}
