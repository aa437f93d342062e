package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/flowd/flowd/engine"
	simmqtt "github.com/flowd/flowd/sim/mqtt"
)

func cmdSimMQTT(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sim mqtt", flag.ContinueOnError)
	var o simmqtt.Options
	var duration time.Duration
	fs.StringVar(&o.Broker, "broker", "mqtt://127.0.0.1:1883", "broker URL (mqtt://, mqtts://, ws://, wss://)")
	fs.IntVar(&o.Clients, "clients", 2, "publishing clients (connections)")
	fs.Float64Var(&o.Rate, "rate", 10000, "values per second per client (0: as fast as the broker takes them)")
	fs.Float64Var(&o.Change, "change", 1.0/3, "fraction of values that change each cycle (0–1); the others repeat")
	fs.IntVar(&o.Size, "size", 180, "approximate payload size in bytes (padded with an attribute)")
	fs.IntVar(&o.Assets, "assets", 10, "assets per client")
	fs.IntVar(&o.Tags, "tags", 100, "tags per asset")
	fs.IntVar(&o.QoS, "qos", 1, "QoS 0, 1 or 2")
	fs.IntVar(&o.Inflight, "inflight", 256, "publishes awaiting their acknowledgement per client")
	fs.StringVar(&o.Topic, "topic", "sim/{client}/{asset}", "topic; {client}, {asset} and {tag} are replaced")
	fs.StringVar(&o.ClientPrefix, "client-prefix", "flowd-sim", "client ids are this prefix and a number")
	fs.StringVar(&o.Format, "format", "json", "json (a canonical point per message), json_batch (one message per asset and cycle: a JSON array of its -tags points, as a tracker reports its readings together; -rate still counts values) or sparkplug (each client is a Sparkplug B edge node: NBIRTH/DBIRTH, DDATA, NDEATH; assets are devices, tags metrics; answers rebirth requests)")
	fs.StringVar(&o.Group, "group", "flowd-sim", "format sparkplug: the Sparkplug group id; edge node ids are -client-prefix and a number")
	fs.Int64Var(&o.Count, "count", 0, "values per client, then exit (0: until stopped)")
	fs.DurationVar(&duration, "duration", 0, "stop after this long (0: until stopped or count)")
	fs.StringVar(&o.Username, "username", os.Getenv("FLOWD_MQTT_USERNAME"), "user name (default $FLOWD_MQTT_USERNAME)")
	fs.StringVar(&o.Password, "password", os.Getenv("FLOWD_MQTT_PASSWORD"), "password (default $FLOWD_MQTT_PASSWORD)")
	fs.StringVar(&o.CAFile, "ca-file", "", "CA of the broker certificate (mqtts://)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: flowd sim mqtt [flags]\n\nPublishes canonical JSON points; values are sine, ramp and noise signals,\nof which -change change each cycle over assets × tags.")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if err := o.Check(); err != nil {
		fmt.Fprintf(stderr, "flowd sim mqtt: %v\n", err)
		return exitUsage
	}
	ctx, stop := untilInterrupted(duration)
	defer stop()
	log := slog.New(engine.RedactHandler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	start := time.Now()
	sent, errs, err := simmqtt.Run(ctx, o, log)
	if err != nil {
		fmt.Fprintf(stderr, "flowd sim mqtt: %v\n", err)
		return exitUsage
	}
	var total int64
	code := exitOK
	for c := range sent {
		total += sent[c]
		if errs[c] != nil {
			fmt.Fprintf(stderr, "flowd sim mqtt: client %d: %v\n", c+1, errs[c])
			code = exitInvalid
		}
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(stdout, "published %d values in %.1fs (%.0f/s)\n", total, secs, float64(total)/secs)
	return code
}
