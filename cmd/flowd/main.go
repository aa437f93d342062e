// Command flowd runs edge-to-cloud dataflow pipelines for industrial telemetry.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// Exit codes.
const (
	exitOK      = 0
	exitInvalid = 1 // invalid configuration, or a run that failed
	exitUsage   = 2
)

var version = "dev"

const usage = `flowd: edge-to-cloud dataflow for industrial telemetry

Usage:
  flowd run [flags] FILE|DIR...       run pipelines until their sources end or SIGINT/SIGTERM
  flowd validate [flags] FILE|DIR...  check pipeline files; exit 1 with file:line:col diagnostics
  flowd fmt [-w] [-check] FILE...     format pipeline files canonically
  flowd sim plc|… [flags]             run a simulator (plc: an OPC UA server with changing tags)
  flowd components [NAME]             list components, or show one's reference
  flowd bench [--duration D] [--json] SCENARIO   run a benchmark scenario
  flowd sim mqtt [flags]              simulated devices publishing to an MQTT broker
  flowd tap [flags] [COMPONENT...]    print the points leaving components of a running flowd
  flowd version                       print the version

Run 'flowd COMMAND -h' for a command's flags.
`

func main() {
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

type command func(args []string, stdout, stderr io.Writer) int

func commands() map[string]command {
	return map[string]command{
		"run":        cmdRun,
		"validate":   cmdValidate,
		"fmt":        cmdFmt,
		"components": cmdComponents,
		"bench":      cmdBench,
		"sim":        cmdSim,
		"version":    cmdVersion,
		"tap":        cmdTap,
	}
}

func cli(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "flowd: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	return cmd(args[1:], stdout, stderr)
}

// parseFlags parses a command's flags; it returns the exit code to use when
// parsing ends the command (help or a usage error), or -1 to go on.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) int {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	return -1
}

// varFlags collects repeated --var name=value flags.
type varFlags map[string]string

func (v varFlags) String() string { return "" }
func (v varFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("want name=value, got %q", s)
	}
	v[name] = value
	return nil
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		fmt.Fprintf(stdout, "flowd %s %s\n", v, bi.GoVersion)
		return exitOK
	}
	fmt.Fprintf(stdout, "flowd %s\n", v)
	return exitOK
}
