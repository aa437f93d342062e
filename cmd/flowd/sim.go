package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// simCommands lists the simulators of `flowd sim`, one per file (sim_*.go).
func simCommands() map[string]command {
	return map[string]command{
		"plc": cmdSimPLC,
	}
}

func cmdSim(args []string, stdout, stderr io.Writer) int {
	cmds := simCommands()
	var names []string
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(stderr, "Usage: flowd sim %s [flags]\n", strings.Join(names, "|"))
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "flowd sim: unknown simulator %q (have %s)\n", args[0], strings.Join(names, ", "))
		return exitUsage
	}
	return cmd(args[1:], stdout, stderr)
}
