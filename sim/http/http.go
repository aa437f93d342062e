// Package http is `flowd sim http`: LoRaWAN uplinks (ChirpStack v4 "up"
// events with a decoded object of three readings) POSTed the way a network
// server's HTTP integration does, retrying what gets no 200. Published counts
// the points flowd answered 200 for, the ground truth of `flowd bench`.
package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Options are the posters' settings (the flags of `flowd sim http`).
type Options struct {
	// URL is where to POST; Token, when set, a bearer token.
	URL, Token string
	// Rate is requests per second in total (0: as fast as answered).
	Rate float64
	// Clients is the concurrent connections.
	Clients int
	// Meters is the number of meters (device names meter-0000000 …); each
	// uplink is from a random one.
	Meters int
}

// Check reports options the posters cannot run with.
func (o *Options) Check() error {
	if o.Clients < 1 || o.Meters < 1 || o.Rate < 0 {
		return errors.New("clients and meters must be ≥ 1, rate ≥ 0")
	}
	return nil
}

// Counts are how the uplinks were answered.
type Counts struct {
	// Published is the points of the uplinks answered 200.
	Published int64
	// OK, Full (429), Unavailable (503) and Failed (another status or no
	// answer) count requests.
	OK, Full, Unavailable, Failed int64
}

// Run posts uplinks until ctx ends; unexpected answers are logged to logw.
func Run(ctx context.Context, o Options, logw io.Writer) Counts {
	s := &poster{url: o.URL, token: o.Token, meters: o.Meters, logw: logw,
		client: &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: o.Clients}}}
	// The schedule queues requests, so answers that come slowly show as
	// latency rather than lowering the rate (up to clients in flight).
	jobs := make(chan struct{}, 1<<16)
	var wg sync.WaitGroup
	for i := range o.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for {
				if o.Rate > 0 {
					select {
					case <-jobs:
					case <-ctx.Done():
						return
					}
				}
				if ctx.Err() != nil {
					return
				}
				s.post(ctx, rng)
			}
		}()
	}
	if o.Rate > 0 {
		schedule(ctx, o.Rate, jobs)
	}
	wg.Wait()
	return Counts{Published: s.published.Load(), OK: s.ok.Load(), Full: s.full.Load(),
		Unavailable: s.unavailable.Load(), Failed: s.failed.Load()}
}

// schedule hands out rate jobs per second until ctx ends.
func schedule(ctx context.Context, rate float64, jobs chan<- struct{}) {
	start := time.Now()
	for n := int64(0); ; n++ {
		at := start.Add(time.Duration(float64(n) / rate * float64(time.Second)))
		if !sleepCtx(ctx, time.Until(at)) {
			return
		}
		select {
		case jobs <- struct{}{}:
		case <-ctx.Done():
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// poster posts uplinks and counts how they were answered.
type poster struct {
	client     *http.Client
	url, token string
	meters     int
	logw       io.Writer

	published, ok, full, unavailable, failed atomic.Int64
}

// post sends one uplink until it is answered 200 or ctx ends; a request
// already sent is always waited for, so the count is exact.
func (s *poster) post(ctx context.Context, rng *rand.Rand) {
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
				fmt.Fprintf(s.logw, "flowd sim http: %d %s\n", resp.StatusCode, bytes.TrimSpace(b))
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
