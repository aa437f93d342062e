package engine

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

//go:embed web
var webFS embed.FS

// Handler serves /metrics, /healthz, /readyz, /api/status, /api/history
// (the last ten minutes of rates and latency per pipeline) and the status page.
func (rt *Runtime) Handler() http.Handler {
	return NewHandler(func() *Runtime { return rt })
}

// NewHandler is Handler for whichever runtime current returns at each
// request, so one listener keeps serving while a reload swaps runtimes.
// /metrics gathers the process's own metrics, extra (metrics that outlive
// runtimes, like reload counts) and the current runtime's (engine counters
// and its components' metrics).
func NewHandler(current func() *Runtime, extra ...prometheus.Gatherer) http.Handler {
	base := prometheus.NewRegistry()
	base.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gather := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		g := append(prometheus.Gatherers{base, current().gatherer()}, extra...)
		return g.Gather()
	})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gather, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		rt := current()
		st := rt.Status()
		if !st.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			for _, p := range st.Pipelines {
				for _, pr := range p.Problems {
					w.Write([]byte(p.Name + ": " + pr + "\n"))
				}
			}
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(current().Status())
	})
	mux.HandleFunc("GET /api/history", func(w http.ResponseWriter, r *http.Request) {
		var since int64
		if v := r.URL.Query().Get("since"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				http.Error(w, "since: want Unix milliseconds", http.StatusBadRequest)
				return
			}
			since = n
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(current().History(since))
	})
	mux.HandleFunc("GET /api/events", func(w http.ResponseWriter, r *http.Request) {
		serveEvents(w, r, current)
	})
	static, _ := fs.Sub(webFS, "web")
	mux.Handle("GET /", http.FileServerFS(static))
	return mux
}

// gatherer is the runtime's metrics: the engine's counters and the
// components' own metrics. After a reload, pipelines may come from different
// loads, each load's components in a registry of their own (which also holds
// the series of that load's pipelines that did not replace running ones):
// each registry contributes only the series of the pipelines built from it.
func (rt *Runtime) gatherer() prometheus.Gatherer {
	rt.regOnce.Do(func() {
		r := prometheus.NewRegistry()
		r.MustRegister(rt.Collector())
		rt.reg = r
	})
	g := prometheus.Gatherers{rt.reg}
	owners := map[*prometheus.Registry]map[string]bool{}
	var order []*prometheus.Registry
	for _, p := range rt.list() {
		if p.metrics == nil {
			continue
		}
		if owners[p.metrics] == nil {
			owners[p.metrics] = map[string]bool{}
			order = append(order, p.metrics)
		}
		owners[p.metrics][p.cfg.Name] = true
	}
	for _, reg := range order {
		g = append(g, pipelineFilter{reg, owners[reg]})
	}
	return g
}

// pipelineFilter gathers g's series whose pipeline label is in keep.
type pipelineFilter struct {
	g    prometheus.Gatherer
	keep map[string]bool
}

func (f pipelineFilter) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := f.g.Gather()
	out := mfs[:0]
	for _, mf := range mfs {
		ms := mf.Metric[:0]
		for _, m := range mf.Metric {
			if f.owns(m) {
				ms = append(ms, m)
			}
		}
		if len(ms) > 0 {
			mf.Metric = ms
			out = append(out, mf)
		}
	}
	return out, err
}

func (f pipelineFilter) owns(m *dto.Metric) bool {
	for _, l := range m.Label {
		if l.GetName() == "pipeline" {
			return f.keep[l.GetValue()]
		}
	}
	return true
}

// Serve listens on addr until ctx is done. It returns once the listener is
// bound (or failed to bind); the server stops when ctx is cancelled.
func (rt *Runtime) Serve(ctx context.Context, addr string) (net.Addr, <-chan error, error) {
	return Serve(ctx, addr, rt.Handler())
}

// Serve serves h on addr until ctx is done, as Runtime.Serve.
func Serve(ctx context.Context, addr string, h http.Handler) (net.Addr, <-chan error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	// Requests end with ctx, so streams (taps, server-sent events) do not
	// hold up the shutdown.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	return ln.Addr(), errc, nil
}
