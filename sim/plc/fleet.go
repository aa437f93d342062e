package plc

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// Endpoints lists n endpoint URLs on consecutive ports from listen's
// (opc.tcp://host:port[/path]), one for each PLC of a fleet.
func Endpoints(listen string, n int) ([]string, error) {
	u, err := url.Parse(listen)
	if err != nil || u.Port() == "" {
		return nil, errors.New("want opc.tcp://host:port")
	}
	port, _ := strconv.Atoi(u.Port())
	eps := make([]string, n)
	for i := range eps {
		eps[i] = fmt.Sprintf("opc.tcp://%s:%d%s", u.Hostname(), port+i, u.Path)
	}
	return eps, nil
}

// StartAll starts a PLC of cfg on each endpoint: PLC i with seed cfg.Seed+i
// and, when there are several, its certificate under cfg.CertDir/plc<i+1>.
// ready is called with each PLC and its endpoint once it runs. On an error it returns the
// PLCs started so far and the error, naming the endpoint.
func StartAll(ctx context.Context, cfg Config, endpoints []string, ready func(endpoint string, p *PLC)) ([]*PLC, error) {
	var running []*PLC
	for i, ep := range endpoints {
		c := cfg
		c.Listen, c.Seed = ep, cfg.Seed+uint64(i)
		if c.CertDir != "" && len(endpoints) > 1 {
			c.CertDir = fmt.Sprintf("%s/plc%d", cfg.CertDir, i+1)
		}
		p, err := New(c)
		if err == nil {
			err = p.Start(ctx)
		}
		if err != nil {
			return running, fmt.Errorf("%s: %w", ep, err)
		}
		running = append(running, p)
		if ready != nil {
			ready(ep, p)
		}
	}
	return running, nil
}

// CloseAll stops the PLCs, waiting up to wait: gopcua's server waits up to
// 10 s for the channels of connected clients to end, which they only do when
// the clients go. It reports whether they all stopped in time; a process
// that exits anyway closes the remaining connections.
func CloseAll(plcs []*PLC, wait time.Duration) bool {
	if len(plcs) == 0 {
		return true
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, p := range plcs {
			p.Close()
		}
	}()
	select {
	case <-done:
		return true
	case <-time.After(wait):
		return false
	}
}
