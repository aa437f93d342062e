package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/flowd/flowd/engine"
)

// servePprof serves Go's runtime profiles (/debug/pprof/) on addr until ctx
// ends. Profiles expose internals, so only loopback addresses are accepted.
func servePprof(ctx context.Context, addr string) (net.Addr, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, errors.New("--pprof: only a loopback address (127.0.0.1:PORT, [::1]:PORT, localhost:PORT) is allowed")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: engine.AllowHosts(mux, nil), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	return ln.Addr(), nil
}

// profileRun fetches one CPU profile from a flowd serving --pprof.
type profileRun struct{ done chan error }

// startProfile records d of CPU profile from the pprof server at addr into
// file, in the background; wait returns when it is written.
func startProfile(addr string, d time.Duration, file string) *profileRun {
	p := &profileRun{done: make(chan error, 1)}
	go func() {
		secs := max(1, int(d.Seconds()))
		cl := http.Client{Timeout: d + time.Minute}
		resp, err := cl.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs))
		if err != nil {
			p.done <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			p.done <- fmt.Errorf("profile: %s", resp.Status)
			return
		}
		f, err := os.Create(file)
		if err != nil {
			p.done <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		p.done <- errors.Join(err, f.Close())
	}()
	return p
}

func (p *profileRun) wait() error { return <-p.done }
