package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// cmdSimHTTP posts LoRaWAN uplinks (ChirpStack v4 "up" events with a decoded
// object of three readings) the way a network server's HTTP integration
// does, retrying what gets no 200. On exit it prints "published N values":
// the points flowd answered 200 for, the ground truth of `flowd bench`.
func cmdSimHTTP(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sim http", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:9280/uplink", "where to POST")
	rate := fs.Float64("rate", 280, "requests per second in total (0: as fast as answered)")
	clients := fs.Int("clients", 16, "concurrent connections")
	meters := fs.Int("meters", 1_000_000, "meters (device names meter-0000000 …), each uplink from a random one")
	token := fs.String("token", os.Getenv("FLOWD_HTTP_TOKEN"), "bearer token (default $FLOWD_HTTP_TOKEN)")
	duration := fs.Duration("duration", 0, "stop after this long (0: until SIGINT/SIGTERM)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: flowd sim http [flags]\n\nPosts ChirpStack uplinks with three decoded readings each, retrying 429/503 after Retry-After.")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if *clients < 1 || *meters < 1 || *rate < 0 {
		fmt.Fprintln(stderr, "flowd sim http: clients and meters must be ≥ 1, rate ≥ 0")
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	sim := &httpSim{url: *url, token: *token, meters: *meters, stderr: stderr,
		client: &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: *clients}}}
	// The schedule queues requests, so answers that come slowly show as
	// latency rather than lowering the rate (up to clients in flight).
	jobs := make(chan struct{}, 1<<16)
	var wg sync.WaitGroup
	for i := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for {
				if *rate > 0 {
					select {
					case <-jobs:
					case <-ctx.Done():
						return
					}
				}
				if ctx.Err() != nil {
					return
				}
				sim.post(ctx, rng)
			}
		}()
	}
	if *rate > 0 {
		start := time.Now()
		for n := int64(0); ; n++ {
			at := start.Add(time.Duration(float64(n) / *rate * float64(time.Second)))
			if !sleepCtx(ctx, time.Until(at)) {
				break
			}
			select {
			case jobs <- struct{}{}:
			case <-ctx.Done():
			}
		}
	}
	wg.Wait()
	fmt.Fprintf(stdout, "published %d values\nrequests: %d ok, %d answered 429, %d answered 503, %d failed\n",
		sim.published.Load(), sim.ok.Load(), sim.full.Load(), sim.unavailable.Load(), sim.failed.Load())
	return exitOK
}

// httpSim posts uplinks and counts how they were answered.
type httpSim struct {
	client     *http.Client
	url, token string
	meters     int
	stderr     io.Writer

	published, ok, full, unavailable, failed atomic.Int64
}

// post sends one uplink until it is answered 200 or ctx ends; a request
// already sent is always waited for, so the count is exact.
func (s *httpSim) post(ctx context.Context, rng *rand.Rand) {
	body := uplink(rng, s.meters, time.Now())
	for {
		req, _ := http.NewRequest("POST", s.url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if s.token != "" {
			req.Header.Set("Authorization", "Bearer "+s.token)
		}
		resp, err := s.client.Do(req)
		wait := time.Second
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case 200:
				var r struct{ Points int64 }
				json.Unmarshal(b, &r)
				s.published.Add(r.Points)
				s.ok.Add(1)
				return
			case 429:
				s.full.Add(1)
			case 503:
				s.unavailable.Add(1)
			default:
				s.failed.Add(1)
				fmt.Fprintf(s.stderr, "flowd sim http: %d %s\n", resp.StatusCode, bytes.TrimSpace(b))
				return
			}
			if sec, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
				wait = time.Duration(sec) * time.Second
			}
		} else {
			s.failed.Add(1)
		}
		if !sleepCtx(ctx, wait) {
			return
		}
	}
}

// uplink is a ChirpStack v4 uplink event for a random meter, stamped t.
func uplink(rng *rand.Rand, meters int, t time.Time) []byte {
	m := rng.IntN(meters)
	b := make([]byte, 0, 400)
	b = fmt.Appendf(b, `{"deduplicationId":"%016x","time":%q,`, rng.Uint64(), t.UTC().Format(time.RFC3339Nano))
	b = fmt.Appendf(b, `"deviceInfo":{"tenantName":"utility","applicationName":"meters","deviceProfileName":"em-class-a","deviceName":"meter-%07d","devEui":"%016x"},`, m, m)
	b = fmt.Appendf(b, `"devAddr":"%08x","fCnt":%d,"fPort":1,"data":"AQIDBA==",`, m, rng.IntN(65536))
	b = fmt.Appendf(b, `"object":{"energy_kwh":%.3f,"voltage":%d,"power_w":%d}}`, float64(m%10000)+rng.Float64(), 225+rng.IntN(11), rng.IntN(5000))
	return b
}
