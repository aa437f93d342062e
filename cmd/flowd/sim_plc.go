package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	uacommon "github.com/flowd/flowd/common/opcua"
	"github.com/flowd/flowd/common/opcua/simplc"
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
	users := userFlags{}
	fs.Var(users, "user", "accept username:password (repeatable)")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	u, err := url.Parse(*listen)
	if err != nil || u.Port() == "" {
		fmt.Fprintf(stderr, "flowd sim plc: --listen: want opc.tcp://host:port, got %q\n", *listen)
		return exitUsage
	}
	port, _ := strconv.Atoi(u.Port())
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var running []*simplc.PLC
	defer func() {
		for _, p := range running {
			p.Close()
		}
	}()
	for i := 0; i < *plcs; i++ {
		ep := fmt.Sprintf("opc.tcp://%s:%d%s", u.Hostname(), port+i, u.Path)
		dir := *pki
		if dir != "" && *plcs > 1 {
			dir = fmt.Sprintf("%s/plc%d", dir, i+1)
		}
		p, err := simplc.New(simplc.Config{
			Listen: ep, Assets: *assets, Tags: *tags, Interval: *interval, Change: *change, Seed: *seed + uint64(i),
			MaxNodesPerRead: *maxRead, Policies: strings.Split(*policies, ","), Users: users, NoAnonymous: *noAnon,
			CertDir: dir, Logger: log,
		})
		if err == nil {
			err = p.Start(ctx)
		}
		if err != nil {
			fmt.Fprintf(stderr, "flowd sim plc: %s: %v\n", ep, err)
			return exitInvalid
		}
		running = append(running, p)
		fmt.Fprintf(stdout, "%s ready: %d assets × %d tags, certificate sha1 %s\n", ep, *assets, *tags, uacommon.Thumbprint(p.Certificate()))
	}
	<-ctx.Done()
	return exitOK
}
