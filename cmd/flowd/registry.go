package main

import (
	"github.com/flowd/flowd/codecs"
	"github.com/flowd/flowd/connectors/file"
	httpsource "github.com/flowd/flowd/connectors/http"
	kafkasource "github.com/flowd/flowd/connectors/kafka"
	"github.com/flowd/flowd/connectors/modbus"
	mqttsource "github.com/flowd/flowd/connectors/mqtt"
	"github.com/flowd/flowd/connectors/opcua"
	"github.com/flowd/flowd/connectors/sim"
	"github.com/flowd/flowd/connectors/udp"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/sinks/cassandra"
	"github.com/flowd/flowd/sinks/discard"
	"github.com/flowd/flowd/sinks/eventhubs"
	filesink "github.com/flowd/flowd/sinks/file"
	"github.com/flowd/flowd/sinks/kafka"
	mqttsink "github.com/flowd/flowd/sinks/mqtt"
	"github.com/flowd/flowd/sinks/stdout"
	"github.com/flowd/flowd/transforms/cov"
	"github.com/flowd/flowd/transforms/expr"
	"github.com/flowd/flowd/transforms/lookup"
	"github.com/flowd/flowd/transforms/window"
)

// registry lists every component this build has, with the codecs of
// codecs.All. Adding a component means adding its spec here, a codec adding
// it to codecs.All; nothing registers itself.
func registry() *engine.Registry {
	return engine.NewRegistry(
		// sources
		sim.Spec,
		file.Spec,
		mqttsource.Spec,
		opcua.Spec,
		httpsource.Spec,
		udp.Spec,
		modbus.Spec,
		kafkasource.Spec,
		// transforms
		expr.Spec,
		cov.Spec,
		window.Spec,
		lookup.Spec,
		// sinks
		filesink.Spec,
		stdout.Spec,
		discard.Spec,
		mqttsink.Spec,
		cassandra.Spec,
		eventhubs.Spec,
		kafka.Spec,
	).WithCodecs(codecs.All())
}
