package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	simhttp "github.com/flowd/flowd/sim/http"
)

// cmdSimHTTP posts LoRaWAN uplinks as a network server's HTTP integration
// does (sim/http). On exit it prints "published N values": the points flowd
// answered 200 for, the ground truth of `flowd bench`.
func cmdSimHTTP(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sim http", flag.ContinueOnError)
	var o simhttp.Options
	fs.StringVar(&o.URL, "url", "http://127.0.0.1:9280/uplink", "where to POST")
	fs.Float64Var(&o.Rate, "rate", 280, "requests per second in total (0: as fast as answered)")
	fs.IntVar(&o.Clients, "clients", 16, "concurrent connections")
	fs.IntVar(&o.Meters, "meters", 1_000_000, "meters (device names meter-0000000 …), each uplink from a random one")
	fs.StringVar(&o.Token, "token", os.Getenv("FLOWD_HTTP_TOKEN"), "bearer token (default $FLOWD_HTTP_TOKEN)")
	duration := fs.Duration("duration", 0, "stop after this long (0: until SIGINT/SIGTERM)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: flowd sim http [flags]\n\nPosts ChirpStack uplinks with three decoded readings each, retrying 429/503 after Retry-After.")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if err := o.Check(); err != nil {
		fmt.Fprintf(stderr, "flowd sim http: %v\n", err)
		return exitUsage
	}
	ctx, stop := untilInterrupted(*duration)
	defer stop()
	n := simhttp.Run(ctx, o, stderr)
	fmt.Fprintf(stdout, "published %d values\nrequests: %d ok, %d answered 429, %d answered 503, %d failed\n",
		n.Published, n.OK, n.Full, n.Unavailable, n.Failed)
	return exitOK
}
