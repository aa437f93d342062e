// Command flowd runs edge-to-cloud dataflow pipelines for industrial telemetry.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

// Exit codes.
const (
	exitOK      = 0
	exitInvalid = 1 // invalid configuration, or a run that failed
	exitUsage   = 2
)

// Set at build time by the Makefile (-ldflags -X) from git; a plain
// `go build` or `go run` falls back to what the Go toolchain recorded.
var (
	version = "dev"
	commit  = ""
	date    = ""
)

const usage = `flowd: edge-to-cloud dataflow for industrial telemetry

Usage:
  flowd COMMAND [flags] [ARGS]     flags may come before or after ARGS

Commands:
  run FILE|DIR...            run pipelines until their sources end or SIGINT/SIGTERM
  validate FILE|DIR...       check pipeline files; exit 1 with file:line:col diagnostics
  fmt FILE...                format pipeline files canonically
  components [NAME]          list components, or show one's reference or example
  codecs [NAME]              list payload formats (format = …), or show one's reference
  sim plc|mqtt|modbus|http   run a simulator (an OPC UA server, MQTT devices, Modbus devices, HTTP uplinks)
  tap [COMPONENT...]         print the points leaving components of a running flowd
  bench SCENARIO             run a benchmark scenario
  completion bash|zsh|fish   print a shell completion script
  version                    print the version, commit and build date (also --version)

Examples:
  flowd run pipelines/demo.hcl                          the demo, no external services
  flowd run --dry-run pipelines/plant.hcl               every sink replaced by stdout, 100 points, then exit
  flowd tap transform.changes --sample 10               points leaving a component of a running flowd
  flowd run pipelines/plant.hcl --http 0.0.0.0:9180 --var plc_endpoint=opc.tcp://10.1.2.3:4840
  flowd validate --strict pipelines/                    warnings fail too
  flowd fmt -w pipelines/plant.hcl
  flowd components opcua                                an OPC UA source's reference
  flowd components --example cov > cov.hcl              a runnable pipeline to start from
  flowd codecs json_batch                               a payload format's reference
  flowd sim plc --assets 3 --tags 5                     an OPC UA server on opc.tcp://127.0.0.1:4840
  flowd bench aio-single --duration 60s --json
  source <(flowd completion bash)                       completion in bash (zsh, fish alike)
  flowd version                                         version, commit and build date

Run 'flowd COMMAND -h' (or 'flowd help COMMAND') for a command's flags.
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
		"codecs":     cmdCodecs,
		"bench":      cmdBench,
		"sim":        cmdSim,
		"version":    cmdVersion,
		"tap":        cmdTap,
		"completion": cmdCompletion,
	}
}

func cli(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version" || args[0] == "-v") {
		return cmdVersion(args[1:], stdout, stderr)
	}
	if len(args) > 1 && args[0] == "help" {
		return cli(append(args[1:], "-h"), stdout, stderr) // flowd help run = flowd run -h
	}
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

// parseFlags parses a command's flags wherever they stand among its
// positional arguments (flowd run FILE --http ADDR), as modern CLIs do; a
// "--" ends the flags. It returns the exit code to use when parsing ends the
// command (help or a usage error), or -1 to go on; fs.Args() then holds the
// positional arguments in order.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) int {
	fs.SetOutput(stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			return exitUsage
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			pos = append(pos, rest...) // everything after "--" is positional
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	// Leave the positional arguments where fs.Args() finds them.
	_ = fs.Parse(append([]string{"--"}, pos...))
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

// buildInfo is the version, commit and date of this binary: what the
// Makefile set, else what the Go toolchain recorded from git.
func buildInfo() (v, rev, when, goVersion string) {
	v, rev, when = version, commit, date
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value
				}
			case "vcs.time":
				if when == "" {
					when = s.Value
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if v == "dev" && rev != "" && commit == "" {
			v = "dev-" + short(rev)
			if dirty {
				v += "-dirty"
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	if when == "" {
		when = "unknown"
	}
	return v, rev, when, goVersion
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(stderr, "Usage: flowd version (or flowd --version)") }
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	v, rev, when, gov := buildInfo()
	fmt.Fprintf(stdout, "flowd %s\ncommit: %s\nbuilt: %s\ngo: %s %s/%s\n", v, rev, when, gov, runtime.GOOS, runtime.GOARCH)
	return exitOK
}

// untilInterrupted is a context that ends on SIGINT or SIGTERM, or after d
// when d > 0: how every command that runs until stopped ends.
func untilInterrupted(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if d <= 0 {
		return ctx, stop
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	return ctx, func() { cancel(); stop() }
}
