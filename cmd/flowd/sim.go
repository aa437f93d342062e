package main

import (
	"fmt"
	"io"
)

// simulators are the `flowd sim` subcommands: test peers that stand in for
// plant equipment, one per file (sim_*.go) that parses the flags and calls
// the simulator's package under sim/.
func simulators() map[string]command {
	return map[string]command{
		"mqtt":   cmdSimMQTT,
		"modbus": cmdSimModbus,
		"plc":    cmdSimPLC,
		"http":   cmdSimHTTP,
	}
}

const simUsage = `Usage: flowd sim KIND [flags]

Kinds:
  plc    an OPC UA server with N assets × M tags changing at an interval (flowd sim plc -h)
  mqtt   MQTT clients publishing JSON values, or Sparkplug B edge nodes (--format sparkplug), at a rate (flowd sim mqtt -h)
  http   LoRaWAN uplinks POSTed at a rate, as a network server's HTTP integration (flowd sim http -h)
  modbus Modbus TCP devices with registers of every type changing at an interval (flowd sim modbus -h)
`

func cmdSim(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, simUsage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := simulators()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "flowd sim: unknown kind %q\n\n%s", args[0], simUsage)
		return exitUsage
	}
	return cmd(args[1:], stdout, stderr)
}
