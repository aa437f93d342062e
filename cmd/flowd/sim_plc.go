package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"time"

	uacommon "github.com/flowd/flowd/common/opcua"
	simplc "github.com/flowd/flowd/sim/plc"
)

// userFlags collects repeated --user name:password flags.
type userFlags map[string]string

func (u userFlags) String() string { return "" }
func (u userFlags) Set(s string) error {
	name, pw, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return fmt.Errorf("want name:password, got %q", s)
	}
	u[name] = pw
	return nil
}

func cmdSimPLC(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("flowd sim plc", flag.ContinueOnError)
	listen := fs.String("listen", "opc.tcp://127.0.0.1:4840", "endpoint URL to listen on")
	plcs := fs.Int("plcs", 1, "number of PLCs, on consecutive ports from --listen's")
	assets := fs.Int("assets", 5, "assets per PLC (Objects/Asset1 …)")
	tags := fs.Int("tags", 10, "tags per asset; types cycle double, float, int32, bool, string")
	interval := fs.Duration("interval", time.Second, "time between value changes")
	change := fs.Float64("change", 1, "fraction of tags that change each interval (0–1)")
	seed := fs.Uint64("seed", 1, "random seed")
	maxRead := fs.Int("max-nodes-per-read", simplc.DefaultMaxNodesPerRead, "MaxNodesPerRead advertised (keeps Read answers under 64 KiB)")
	pki := fs.String("pki", "", "directory keeping the server certificate across restarts (default: a new one each start)")
	policies := fs.String("policies", "None", "security policies offered, comma-separated (gopcua v0.8.0's server opens channels with None only)")
	noAnon := fs.Bool("no-anonymous", false, "refuse anonymous sessions")
	serverLog := fs.Bool("server-log", false, "also print the OPC UA server library's own log lines")
	users := userFlags{}
	fs.Var(users, "user", "accept username:password (repeatable)")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: flowd sim plc [flags]

An OPC UA server (namespace urn:flowd:simplc, index 2) with --assets objects
under Objects, each holding --tags variables whose values change every
--interval. Node ids, for asset a and tag t counted from 1:

  ns=2;s=Asset<a>.Tag<t>    a variable by string id: ns=2;s=Asset1.Tag1
  ns=2;i=<1000000+k>        the same by number, k = (a-1)*tags + (t-1): ns=2;i=1000000
  ns=2;i=<a>                the asset's folder, Objects/Asset<a>

Browse paths are Objects/Asset1/Tag1 (an opcua source's browse {} block
finds them all). Types cycle by tag: Tag1 double, Tag2 float, Tag3 int32, Tag4 bool,
Tag5 string, Tag6 double, … Ctrl-C stops it at once, clients connected or not.

Example:
  flowd sim plc --assets 3 --tags 5 --interval 500ms
  flowd components --example opcua   (a pipeline that reads it)

Flags:
`)
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	endpoints, err := simplc.Endpoints(*listen, *plcs)
	if err != nil {
		fmt.Fprintf(stderr, "flowd sim plc: --listen: %v, got %q\n", err, *listen)
		return exitUsage
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	if !*serverLog {
		// gopcua's server writes progress lines ("doing objects.") through
		// the standard logger whatever its configuration.
		log.SetOutput(io.Discard)
	}
	ctx, stop := untilInterrupted(0)
	defer stop()
	cfg := simplc.Config{
		Assets: *assets, Tags: *tags, Interval: *interval, Change: *change, Seed: *seed,
		MaxNodesPerRead: *maxRead, Policies: strings.Split(*policies, ","), Users: users, NoAnonymous: *noAnon,
		CertDir: *pki, Logger: logger, ServerLog: *serverLog,
	}
	running, err := simplc.StartAll(ctx, cfg, endpoints, func(ep string, p *simplc.PLC) {
		fmt.Fprintf(stdout, "%s ready: %d assets × %d tags (%s … %s), certificate sha1 %s\n", ep, *assets, *tags,
			p.NodeID(0, 0), p.NodeID(*assets-1, *tags-1), uacommon.Thumbprint(p.Certificate()))
	})
	// Closing waits a moment at most: the process exit closes the sockets
	// of clients still connected anyway.
	defer func() {
		if !simplc.CloseAll(running, time.Second) {
			fmt.Fprintln(stderr, "flowd sim plc: clients still connected; closing their connections")
		}
	}()
	if err != nil {
		fmt.Fprintf(stderr, "flowd sim plc: %v\n", err)
		return exitInvalid
	}
	<-ctx.Done()
	stop() // a second Ctrl-C ends the process at once
	return exitOK
}
