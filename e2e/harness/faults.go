package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// FaultProxy is a toxiproxy TCP proxy run inside the test process on
// loopback: point flowd at Addr instead of the server, then inject latency,
// bandwidth limits, resets and timeouts, or take the "server" away.
type FaultProxy struct {
	t     testing.TB
	mu    sync.Mutex
	proxy *toxiproxy.Proxy
	n     int
}

var (
	faultServerOnce sync.Once
	faultServer     *toxiproxy.ApiServer
)

// NewFaultProxy starts a proxy from a free loopback port to upstream
// (host:port). It is stopped when the test ends.
func NewFaultProxy(t testing.TB, name, upstream string) *FaultProxy {
	t.Helper()
	faultServerOnce.Do(func() {
		faultServer = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	})
	p := toxiproxy.NewProxy(faultServer, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy %s: %v", name, err)
	}
	fp := &FaultProxy{t: t, proxy: p}
	t.Cleanup(fp.Stop)
	return fp
}

// Addr is the proxy's listen address (host:port).
func (f *FaultProxy) Addr() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.proxy.Listen
}

// Toxic adds a toxic ("latency", "bandwidth", "reset_peer", "timeout",
// "slow_close", "limit_data", "slicer") with its attributes to a stream
// ("downstream": server → client, "upstream": client → server) and returns
// a function that removes it.
func (f *FaultProxy) Toxic(kind, stream string, attrs map[string]any) (remove func()) {
	f.t.Helper()
	f.mu.Lock()
	f.n++
	name := fmt.Sprintf("%s_%s_%d", kind, stream, f.n)
	f.mu.Unlock()
	body, _ := json.Marshal(map[string]any{"name": name, "type": kind, "stream": stream, "toxicity": 1.0, "attributes": attrs})
	if _, err := f.proxy.Toxics.AddToxicJson(strings.NewReader(string(body))); err != nil {
		f.t.Fatalf("toxiproxy: add %s: %v", kind, err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f.proxy.Toxics.RemoveToxic(ctx, name)
	}
}

// Latency delays data in both directions by d (± jitter).
func (f *FaultProxy) Latency(d, jitter time.Duration) (remove func()) {
	a := map[string]any{"latency": d.Milliseconds(), "jitter": jitter.Milliseconds()}
	r1 := f.Toxic("latency", "downstream", a)
	r2 := f.Toxic("latency", "upstream", a)
	return func() { r1(); r2() }
}

// Bandwidth limits the server → client direction to kbps KB/s.
func (f *FaultProxy) Bandwidth(kbps int) (remove func()) {
	return f.Toxic("bandwidth", "downstream", map[string]any{"rate": kbps})
}

// ResetPeer resets every connection with a TCP RST after it has been open
// for after (0: at once), as long as the toxic is in place.
func (f *FaultProxy) ResetPeer(after time.Duration) (remove func()) {
	return f.Toxic("reset_peer", "upstream", map[string]any{"timeout": after.Milliseconds()})
}

// Timeout stops all data and closes connections after d (0: never closes,
// the data just stops flowing).
func (f *FaultProxy) Timeout(d time.Duration) (remove func()) {
	return f.Toxic("timeout", "upstream", map[string]any{"timeout": d.Milliseconds()})
}

// Down closes the listener and every connection, as if the server went away;
// Up brings it back on the same address.
func (f *FaultProxy) Down() { f.proxy.Stop() }

// Up restarts a proxy taken Down.
func (f *FaultProxy) Up() {
	f.t.Helper()
	if err := f.proxy.Start(); err != nil {
		f.t.Fatalf("toxiproxy: restart: %v", err)
	}
}

// Stop ends the proxy.
func (f *FaultProxy) Stop() { f.proxy.Stop() }

// NewFaultProxyAt is NewFaultProxy on a fixed listen address (host:port),
// for servers that tell clients where to connect next (a Kafka broker's
// advertised listener).
func NewFaultProxyAt(t testing.TB, name, listen, upstream string) *FaultProxy {
	t.Helper()
	faultServerOnce.Do(func() {
		faultServer = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	})
	p := toxiproxy.NewProxy(faultServer, name, listen, upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy %s on %s: %v", name, listen, err)
	}
	fp := &FaultProxy{t: t, proxy: p}
	t.Cleanup(fp.Stop)
	return fp
}

// CutSchedule cuts every connection through the proxy at each step of
// after (each measured from the end of the previous cut), keeping the
// upstream unreachable for down each time. The returned stop ends the
// schedule and reports how many cuts happened.
func (f *FaultProxy) CutSchedule(down time.Duration, after ...time.Duration) (stop func() int) {
	quit := make(chan struct{})
	done := make(chan int)
	go func() {
		cuts := 0
		for _, d := range after {
			select {
			case <-quit:
				done <- cuts
				return
			case <-time.After(d):
				f.Down()
				time.Sleep(down)
				f.Up()
				cuts++
			}
		}
		<-quit
		done <- cuts
	}()
	return func() int {
		close(quit)
		return <-done
	}
}
