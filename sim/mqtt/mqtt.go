// Package mqtt is `flowd sim mqtt`: MQTT clients publishing plant values at
// a rate, as canonical JSON points (one per message, or one message per asset
// and cycle) or as Sparkplug B edge nodes. Every client counts what its broker
// accepted, the ground truth `flowd bench` checks flowd's counts against.
package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	mqttc "github.com/flowd/flowd/common/mqtt"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
)

// Options are the publishers' settings (the flags of `flowd sim mqtt`).
type Options struct {
	// Broker is the broker URL (mqtt://, mqtts://, ws://, wss://).
	Broker             string
	Username, Password string
	// CAFile is the CA of the broker certificate (mqtts://).
	CAFile string
	// Topic is the topic; {client}, {asset} and {tag} are replaced.
	Topic string
	// ClientPrefix and a number are the client ids (and Sparkplug edge
	// node ids).
	ClientPrefix string
	// Format is json, json_batch or sparkplug.
	Format string
	// Group is the Sparkplug group id (Format sparkplug).
	Group string
	// Clients is the number of publishing connections, each with Assets
	// assets of Tags tags.
	Clients, Assets, Tags int
	// Size is the approximate payload size in bytes of a json point.
	Size int
	QoS  int
	// Inflight is the publishes awaiting their acknowledgement per client.
	Inflight int
	// Rate is values per second per client (0: as fast as the broker
	// takes them); Change the fraction of values that change each cycle.
	Rate, Change float64
	// Count is values per client, then the client stops (0: until ctx ends).
	Count int64
}

// Check reports options the publishers cannot run with.
func (o *Options) Check() error {
	if o.Format != "json" && o.Format != "json_batch" && o.Format != "sparkplug" {
		return errors.New("-format must be json, json_batch or sparkplug")
	}
	if o.Clients < 1 || o.QoS < 0 || o.QoS > 2 || o.Change < 0 || o.Change > 1 || o.Assets < 1 || o.Tags < 1 || o.Rate < 0 {
		return errors.New("clients, assets and tags must be ≥ 1, qos 0–2, change 0–1, rate ≥ 0")
	}
	_, err := o.settings()
	return err
}

// settings are the connection settings every client shares.
func (o *Options) settings() (mqttc.Settings, error) {
	s := mqttc.Settings{
		Brokers: []string{o.Broker}, Username: o.Username, Password: o.Password, CleanStart: true,
		KeepAlive: 30 * time.Second, ConnectTimeout: 10 * time.Second, BackoffMin: 200 * time.Millisecond, BackoffMax: 5 * time.Second,
	}
	if o.CAFile != "" {
		s.TLS = &mqttc.TLS{CAFile: o.CAFile}
	}
	s.ClientID = o.ClientPrefix
	return s, s.Validate()
}

// Run publishes from o.Clients clients until ctx ends or each client sent
// o.Count values. It returns, per client, how many values its broker
// accepted and the error that ended it early (nil: none); err is an option
// Check refuses.
func Run(ctx context.Context, o Options, log *slog.Logger) (sent []int64, errs []error, err error) {
	if err := o.Check(); err != nil {
		return nil, nil, err
	}
	s, _ := o.settings()
	var wg sync.WaitGroup
	errs = make([]error, o.Clients)
	sent = make([]int64, o.Clients)
	for c := range o.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch o.Format {
			case "sparkplug":
				sent[c], errs[c] = runEdgeNode(ctx, &o, &s, c+1, log)
			case "json_batch":
				sent[c], errs[c] = runBatchClient(ctx, &o, &s, c+1, log)
			default:
				sent[c], errs[c] = runClient(ctx, &o, &s, c+1, log)
			}
		}()
	}
	wg.Wait()
	return sent, errs, nil
}

// publish runs client n: it connects a publisher, calls step for each
// message rate allows (rate messages per second; see pace) until ctx ends,
// limit messages were queued (0: no limit) or a publish fails, then waits for
// the broker's acknowledgements. It returns how many publishes the broker
// accepted.
func publish(ctx context.Context, o *Options, s *mqttc.Settings, n int, log *slog.Logger,
	rate float64, limit int64, step func(pub *mqttc.Publisher) error) (int64, error) {
	pub, err := mqttc.NewPublisher(ctx, s, fmt.Sprintf("%s-%d", o.ClientPrefix, n), o.Inflight, log)
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

// value is tag i's next value in the given cycle: a sine with noise.
func value(rng *rand.Rand, cycle, i int) float64 {
	return math.Round((50+20*math.Sin(float64(cycle)*0.1+float64(i))+rng.NormFloat64())*1000) / 1000
}

// runClient publishes a point per message; it returns how many publishes
// the broker accepted.
func runClient(ctx context.Context, o *Options, s *mqttc.Settings, n int, log *slog.Logger) (int64, error) {
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	per := o.Assets * o.Tags
	last := make([]float64, per)
	topics := make([]string, per)
	assets := make([]string, o.Assets)
	for a := range o.Assets {
		assets[a] = fmt.Sprintf("c%d-asset%d", n, a+1)
	}
	for i := range per {
		a := i / o.Tags
		r := strings.NewReplacer("{client}", fmt.Sprint(n), "{asset}", assets[a], "{tag}", fmt.Sprintf("tag%d", i%o.Tags+1))
		topics[i] = r.Replace(o.Topic)
		last[i] = math.NaN()
	}
	cycle, i := 0, 0
	return publish(ctx, o, s, n, log, o.Rate, o.Count, func(pub *mqttc.Publisher) error {
		if i == per {
			i = 0
			cycle++
		}
		if math.IsNaN(last[i]) || rng.Float64() < o.Change {
			last[i] = value(rng, cycle, i)
		}
		p := engine.Point{Asset: assets[i/o.Tags], Tag: fmt.Sprintf("tag%d", i%o.Tags+1), Value: engine.Float(last[i]), TS: time.Now().UnixNano()}
		payload := codec.AppendPoint(nil, &p)
		if pad := o.Size - len(payload) - len(`,"attrs":{"pad":""}`); pad > 0 {
			p.Attrs = map[string]string{"pad": strings.Repeat("x", pad)}
			payload = codec.AppendPoint(payload[:0], &p)
		}
		if err := pub.Publish(ctx, topics[i], payload, byte(o.QoS)); err != nil {
			return err
		}
		i++
		return nil
	})
}

// runBatchClient publishes one message per asset and cycle holding all of
// the asset's tags (a JSON array of canonical points), Rate values per
// second in Rate/Tags messages; it returns the values of the publishes the
// broker accepted.
func runBatchClient(ctx context.Context, o *Options, s *mqttc.Settings, n int, log *slog.Logger) (int64, error) {
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	assets := make([]string, o.Assets)
	topics := make([]string, o.Assets)
	for a := range o.Assets {
		assets[a] = fmt.Sprintf("c%d-asset%d", n, a+1)
		r := strings.NewReplacer("{client}", fmt.Sprint(n), "{asset}", assets[a], "{tag}", "all")
		topics[a] = r.Replace(o.Topic)
	}
	tags := make([]string, o.Tags)
	for t := range o.Tags {
		tags[t] = fmt.Sprintf("tag%d", t+1)
	}
	last := make([]float64, o.Assets*o.Tags)
	for i := range last {
		last[i] = math.NaN()
	}
	points := make([]engine.Point, o.Tags)
	var payload []byte
	// Count is values: the messages that hold at least that many.
	msgs := (o.Count + int64(o.Tags) - 1) / int64(o.Tags)
	cycle, a := 0, 0
	sent, err := publish(ctx, o, s, n, log, o.Rate/float64(o.Tags), msgs, func(pub *mqttc.Publisher) error {
		if a == o.Assets {
			a = 0
			cycle++
		}
		now := time.Now().UnixNano()
		for t := range o.Tags {
			i := a*o.Tags + t
			if math.IsNaN(last[i]) || rng.Float64() < o.Change {
				last[i] = value(rng, cycle, i)
			}
			points[t] = engine.Point{Asset: assets[a], Tag: tags[t], Value: engine.Float(last[i]), TS: now}
		}
		payload = codec.AppendBatch(payload[:0], points)
		// The publisher may hold the payload until it is acknowledged.
		if err := pub.Publish(ctx, topics[a], slices.Clone(payload), byte(o.QoS)); err != nil {
			return err
		}
		a++
		return nil
	})
	return sent * int64(o.Tags), err
}
