package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	mqttc "github.com/flowd/flowd/common/mqtt"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
)

type simMQTTOptions struct {
	broker, username, password, caFile, topic, prefix string
	format, group                                     string
	clients, assets, tags, size, qos, inflight        int
	rate, change                                      float64
	count                                             int64
	duration                                          time.Duration
}

func cmdSimMQTT(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sim mqtt", flag.ContinueOnError)
	var o simMQTTOptions
	fs.StringVar(&o.broker, "broker", "mqtt://127.0.0.1:1883", "broker URL (mqtt://, mqtts://, ws://, wss://)")
	fs.IntVar(&o.clients, "clients", 2, "publishing clients (connections)")
	fs.Float64Var(&o.rate, "rate", 10000, "values per second per client (0: as fast as the broker takes them)")
	fs.Float64Var(&o.change, "change", 1.0/3, "fraction of values that change each cycle (0–1); the others repeat")
	fs.IntVar(&o.size, "size", 180, "approximate payload size in bytes (padded with an attribute)")
	fs.IntVar(&o.assets, "assets", 10, "assets per client")
	fs.IntVar(&o.tags, "tags", 100, "tags per asset")
	fs.IntVar(&o.qos, "qos", 1, "QoS 0, 1 or 2")
	fs.IntVar(&o.inflight, "inflight", 256, "publishes awaiting their acknowledgement per client")
	fs.StringVar(&o.topic, "topic", "sim/{client}/{asset}", "topic; {client}, {asset} and {tag} are replaced")
	fs.StringVar(&o.prefix, "client-prefix", "flowd-sim", "client ids are this prefix and a number")
	fs.StringVar(&o.format, "format", "json", "json (a canonical point per message), json_batch (one message per asset and cycle: a JSON array of its -tags points, as a tracker reports its readings together; -rate still counts values) or sparkplug (each client is a Sparkplug B edge node: NBIRTH/DBIRTH, DDATA, NDEATH; assets are devices, tags metrics; answers rebirth requests)")
	fs.StringVar(&o.group, "group", "flowd-sim", "format sparkplug: the Sparkplug group id; edge node ids are -client-prefix and a number")
	fs.Int64Var(&o.count, "count", 0, "values per client, then exit (0: until stopped)")
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (0: until stopped or count)")
	fs.StringVar(&o.username, "username", os.Getenv("FLOWD_MQTT_USERNAME"), "user name (default $FLOWD_MQTT_USERNAME)")
	fs.StringVar(&o.password, "password", os.Getenv("FLOWD_MQTT_PASSWORD"), "password (default $FLOWD_MQTT_PASSWORD)")
	fs.StringVar(&o.caFile, "ca-file", "", "CA of the broker certificate (mqtts://)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: flowd sim mqtt [flags]\n\nPublishes canonical JSON points; values are sine, ramp and noise signals,\nof which -change change each cycle over assets × tags.")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if o.format != "json" && o.format != "json_batch" && o.format != "sparkplug" {
		fmt.Fprintln(stderr, "flowd sim mqtt: -format must be json, json_batch or sparkplug")
		return exitUsage
	}
	if o.clients < 1 || o.qos < 0 || o.qos > 2 || o.change < 0 || o.change > 1 || o.assets < 1 || o.tags < 1 || o.rate < 0 {
		fmt.Fprintln(stderr, "flowd sim mqtt: clients, assets and tags must be ≥ 1, qos 0–2, change 0–1, rate ≥ 0")
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	log := slog.New(engine.RedactHandler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	settings := mqttc.Settings{
		Brokers: []string{o.broker}, Username: o.username, Password: o.password, CleanStart: true,
		KeepAlive: 30 * time.Second, ConnectTimeout: 10 * time.Second, BackoffMin: 200 * time.Millisecond, BackoffMax: 5 * time.Second,
	}
	if o.caFile != "" {
		settings.TLS = &mqttc.TLS{CAFile: o.caFile}
	}
	settings.ClientID = o.prefix
	if err := settings.Validate(); err != nil {
		fmt.Fprintf(stderr, "flowd sim mqtt: %v\n", err)
		return exitUsage
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, o.clients)
	sent := make([]int64, o.clients)
	for c := range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if o.format == "sparkplug" {
				sent[c], errs[c] = simSparkplug(ctx, &o, &settings, c+1, log)
				return
			}
			if o.format == "json_batch" {
				sent[c], errs[c] = simBatchClient(ctx, &o, &settings, c+1, log)
				return
			}
			sent[c], errs[c] = simClient(ctx, &o, &settings, c+1, log)
		}()
	}
	wg.Wait()
	var total int64
	code := exitOK
	for c := range o.clients {
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

// simPublish runs client n: it connects a publisher, calls step for each
// message -rate allows (rate messages per second; see pace) until ctx ends,
// limit messages were queued (0: no limit) or a publish fails, then waits for
// the broker's acknowledgements. It returns how many publishes the broker
// accepted.
func simPublish(ctx context.Context, o *simMQTTOptions, s *mqttc.Settings, n int, log *slog.Logger,
	rate float64, limit int64, step func(pub *mqttc.Publisher) error) (int64, error) {
	pub, err := mqttc.NewPublisher(ctx, s, fmt.Sprintf("%s-%d", o.prefix, n), o.inflight, log)
	if err != nil {
		return 0, err
	}
	pace(ctx, rate, limit, func() error { return step(pub) })
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err = pub.Close(cctx)
	return pub.Sent(), err
}

// pace calls step rate times per second, spread over 10 ms ticks (rate 0:
// back to back), until ctx ends, step made limit calls (0: no limit) or fails.
func pace(ctx context.Context, rate float64, limit int64, step func() error) {
	var tick *time.Ticker
	if rate > 0 {
		tick = time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
	}
	carry := 0.0
	var made int64
	for ctx.Err() == nil {
		budget := math.MaxInt
		if tick != nil {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			carry += rate / 100
			budget = int(carry)
			carry -= float64(budget)
		}
		for ; budget > 0; budget-- {
			if limit > 0 && made >= limit {
				return
			}
			if step() != nil {
				return
			}
			made++
		}
	}
}

// simValue is tag i's next value in the given cycle: a sine with noise.
func simValue(rng *rand.Rand, cycle, i int) float64 {
	return math.Round((50+20*math.Sin(float64(cycle)*0.1+float64(i))+rng.NormFloat64())*1000) / 1000
}

// simClient publishes a point per message; it returns how many publishes
// the broker accepted.
func simClient(ctx context.Context, o *simMQTTOptions, s *mqttc.Settings, n int, log *slog.Logger) (int64, error) {
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	per := o.assets * o.tags
	last := make([]float64, per)
	topics := make([]string, per)
	assets := make([]string, o.assets)
	for a := range o.assets {
		assets[a] = fmt.Sprintf("c%d-asset%d", n, a+1)
	}
	for i := range per {
		a := i / o.tags
		r := strings.NewReplacer("{client}", fmt.Sprint(n), "{asset}", assets[a], "{tag}", fmt.Sprintf("tag%d", i%o.tags+1))
		topics[i] = r.Replace(o.topic)
		last[i] = math.NaN()
	}
	cycle, i := 0, 0
	return simPublish(ctx, o, s, n, log, o.rate, o.count, func(pub *mqttc.Publisher) error {
		if i == per {
			i = 0
			cycle++
		}
		if math.IsNaN(last[i]) || rng.Float64() < o.change {
			last[i] = simValue(rng, cycle, i)
		}
		p := engine.Point{Asset: assets[i/o.tags], Tag: fmt.Sprintf("tag%d", i%o.tags+1), Value: engine.Float(last[i]), TS: time.Now().UnixNano()}
		payload := codec.AppendPoint(nil, &p)
		if pad := o.size - len(payload) - len(`,"attrs":{"pad":""}`); pad > 0 {
			p.Attrs = map[string]string{"pad": strings.Repeat("x", pad)}
			payload = codec.AppendPoint(payload[:0], &p)
		}
		if err := pub.Publish(ctx, topics[i], payload, byte(o.qos)); err != nil {
			return err
		}
		i++
		return nil
	})
}

// simBatchClient publishes one message per asset and cycle holding all of
// the asset's tags (a JSON array of canonical points), -rate values per
// second in -rate/-tags messages; it returns the values of the publishes the
// broker accepted.
func simBatchClient(ctx context.Context, o *simMQTTOptions, s *mqttc.Settings, n int, log *slog.Logger) (int64, error) {
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	assets := make([]string, o.assets)
	topics := make([]string, o.assets)
	for a := range o.assets {
		assets[a] = fmt.Sprintf("c%d-asset%d", n, a+1)
		r := strings.NewReplacer("{client}", fmt.Sprint(n), "{asset}", assets[a], "{tag}", "all")
		topics[a] = r.Replace(o.topic)
	}
	tags := make([]string, o.tags)
	for t := range o.tags {
		tags[t] = fmt.Sprintf("tag%d", t+1)
	}
	last := make([]float64, o.assets*o.tags)
	for i := range last {
		last[i] = math.NaN()
	}
	points := make([]engine.Point, o.tags)
	var payload []byte
	// -count is values: the messages that hold at least that many.
	msgs := (o.count + int64(o.tags) - 1) / int64(o.tags)
	cycle, a := 0, 0
	sent, err := simPublish(ctx, o, s, n, log, o.rate/float64(o.tags), msgs, func(pub *mqttc.Publisher) error {
		if a == o.assets {
			a = 0
			cycle++
		}
		now := time.Now().UnixNano()
		for t := range o.tags {
			i := a*o.tags + t
			if math.IsNaN(last[i]) || rng.Float64() < o.change {
				last[i] = simValue(rng, cycle, i)
			}
			points[t] = engine.Point{Asset: assets[a], Tag: tags[t], Value: engine.Float(last[i]), TS: now}
		}
		payload = codec.AppendBatch(payload[:0], points)
		// The publisher may hold the payload until it is acknowledged.
		if err := pub.Publish(ctx, topics[a], slices.Clone(payload), byte(o.qos)); err != nil {
			return err
		}
		a++
		return nil
	})
	return sent * int64(o.tags), err
}
