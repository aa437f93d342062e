// Package httpsource is the http source: an HTTP server that takes POSTed
// points and answers 2xx only once every sink has durably taken them, so a
// client that retries what was not confirmed gets at-least-once delivery.
package httpsource

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowd/flowd/common/payload"
	"github.com/flowd/flowd/common/tlsconf"
	"github.com/flowd/flowd/engine"
	"github.com/prometheus/client_golang/prometheus"
)

// Auth is the auth block: a bearer token or a user name and password.
type Auth struct {
	BearerToken string `hcl:"bearer_token" doc:"token clients send as Authorization: Bearer <token>; use env(\"…\") or file(\"…\")"`
	Username    string `hcl:"username" doc:"basic auth user name"`
	Password    string `hcl:"password" doc:"basic auth password; use env(\"…\") or file(\"…\")"`
}

// Config is the http source's configuration.
type Config struct {
	Listen      string                 `hcl:"listen" default:"127.0.0.1:9280" doc:"address to listen on; loopback unless you mean to expose it, and never the admin port (service.http_addr)"`
	Path        string                 `hcl:"path" default:"/" doc:"URL path prefix that takes POSTs; the rest of the path is the subject of asset_expr, tag_expr and the map block (path[0] is its first level)"`
	TLS         *tlsconf.Server        `hcl:"tls,block" doc:"serve HTTPS"`
	Auth        *Auth                  `hcl:"auth,block" doc:"require a bearer token or basic auth (compared in constant time, never logged)"`
	Format      string                 `hcl:"format" default:"json" doc:"a codec that decodes (docs/codecs) or map. json: a point object, an array of them, or a tag map; map: the map attribute picks fields out of any JSON object (webhooks); raw: the body as a string value"`
	Asset       string                 `hcl:"asset" doc:"asset of points that carry none (a literal)"`
	AssetExpr   engine.Expr            `hcl:"asset_expr" doc:"asset of points that carry none: an expression over path (the request path's levels after the prefix), e.g. path[0]"`
	TagExpr     engine.Expr            `hcl:"tag_expr" doc:"tag of points that carry none (raw: of every point): an expression over path; default for raw: the path after the prefix"`
	Map         map[string]engine.Expr `hcl:"map" doc:"format map: asset, tag, value (or values: an object whose entries become one point each), quality and ts, each an expression over payload (the decoded JSON body) and path, e.g. values = \"payload.object\""`
	MaxBody     engine.Size            `hcl:"max_body" default:"1MiB" doc:"larger request bodies are refused with 413 (at most 256MiB)"`
	MaxPending  int                    `hcl:"max_pending" default:"10000" doc:"points taken from requests and not yet acknowledged by every sink; past it requests get 429 with Retry-After (backpressure; at most 10,000,000)"`
	RetryAfter  time.Duration          `hcl:"retry_after" default:"1s" doc:"Retry-After sent with 429 and 503"`
	AckTimeout  time.Duration          `hcl:"ack_timeout" default:"30s" doc:"longest a request waits for its points to be acknowledged; then 503 (the points may still be delivered: a client that retries gets them at least once)"`
	ReadTimeout time.Duration          `hcl:"read_timeout" default:"10s" doc:"time allowed to read a request's headers and body"`
}

// Spec declares the http source.
var Spec = engine.SourceSpec(engine.Info{
	Type:    "http",
	Summary: "Takes points POSTed over HTTP(S) (webhooks, LoRaWAN network servers); answers 200 only once every sink has durably taken them.",
	Description: "Each POST to path is decoded with format (the same decoder as the mqtt source: canonical JSON points, arrays, " +
		"tag maps, or a map block of expressions over any JSON body, such as a ChirpStack or The Things Stack uplink) and handed " +
		"to the pipeline; the response is 200 {\"points\": n} once every sink has delivered the points or written them to its " +
		"disk buffer. Under backpressure (max_pending points unacknowledged) the answer is 429 with Retry-After; when the " +
		"pipeline gives up on points, or shuts down, 503 with Retry-After. A body that does not decode gets 400 with the " +
		"reason (counted in flowd_points_dropped_total{reason=\"decode\"} and sent to the dead-letter sink when there is one), " +
		"a body above max_body 413, a missing or wrong credential 401. flowd_http_requests_total{code} counts the answers. " +
		"The source is ready (/readyz) while it listens. Add auth { bearer_token = env(\"UPLINK_TOKEN\") } (or username and " +
		"password) to require a credential.",
	Example: `source "http" "uplinks" {
  listen = "127.0.0.1:9280"
  path   = "/uplink"
  format = "map"
  map = {
    asset  = "payload.deviceInfo.deviceName"
    values = "payload.object"
    ts     = "payload.time"
  }
}`,
}, New)

// Source is the HTTP server.
type Source struct {
	cfg     Config
	env     *engine.Env
	prefix  string
	tls     *tls.Config
	token   [32]byte // sha256 of the bearer token
	user    [32]byte
	pass    [32]byte
	decs    sync.Pool
	pending atomic.Int64 // points emitted and not yet acknowledged
	closing atomic.Bool
	out     engine.Output
	ctx     context.Context // the Run context, for Emit

	requests  *prometheus.CounterVec
	codes     map[int]prometheus.Counter
	retryHdr  string
	rejectLog engine.LogLimiter
	addr      atomic.Pointer[string]
}

// New validates the config and builds the source.
func New(c *Config, env *engine.Env) (engine.Source, error) {
	var bad engine.Problems
	s := &Source{cfg: *c, env: env, rejectLog: engine.LogLimiter{Every: 10 * time.Second, Burst: 20}}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad.Addf("listen", "%v (want host:port)", err)
	} else if env != nil && env.AdminAddr != "" && samePort(c.Listen, env.AdminAddr) {
		bad.Addf("listen", "%s is the admin address (service.http_addr %s): the ingestion port must be its own, so /metrics and /api/status are never exposed with it", c.Listen, env.AdminAddr)
	}
	if !strings.HasPrefix(c.Path, "/") {
		bad.Addf("path", "must start with /")
	}
	s.prefix = strings.TrimSuffix(c.Path, "/") + "/"
	if c.MaxBody < 1 || c.MaxBody > engine.MaxMessageSize {
		bad.Addf("max_body", "must be between 1 byte and 256MiB")
	}
	bad.Between("max_pending", int64(c.MaxPending), 1, engine.MaxPendingPoints)
	if c.RetryAfter < 0 {
		bad.Addf("retry_after", "must not be negative")
	}
	if c.AckTimeout <= 0 {
		bad.Addf("ack_timeout", "must be positive")
	}
	if c.ReadTimeout <= 0 {
		bad.Addf("read_timeout", "must be positive")
	}
	if a := c.Auth; a != nil {
		basic := a.Username != "" || a.Password != ""
		switch {
		case a.BearerToken == "" && !basic:
			bad.Addf("auth", "set bearer_token, or username and password")
		case a.BearerToken != "" && basic:
			bad.Addf("auth", "set bearer_token or username and password, not both")
		case basic && (a.Username == "" || a.Password == ""):
			bad.Addf("auth", "basic auth needs both username and password")
		}
		s.token, s.user, s.pass = sha256.Sum256([]byte(a.BearerToken)), sha256.Sum256([]byte(a.Username)), sha256.Sum256([]byte(a.Password))
	}
	if c.TLS != nil {
		tc, err := c.TLS.Config()
		if err != nil {
			var te *tlsconf.Error
			if errors.As(err, &te) {
				bad.Addf("tls", "%s: %v", te.Field, te.Err)
			} else {
				bad.Addf("tls", "%v", err)
			}
		}
		s.tls = tc
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	dec, err := payload.New(payload.Options{
		Format: c.Format, Codecs: env.Codecs, MaxPayload: int(c.MaxBody), Subject: "path", Values: true,
		Asset: c.Asset, AssetExpr: c.AssetExpr, TagExpr: c.TagExpr, Map: c.Map,
	})
	if err != nil {
		return nil, err
	}
	s.decs.New = func() any { return dec.Clone() }
	s.retryHdr = strconv.Itoa(int(math.Ceil(c.RetryAfter.Seconds())))
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flowd_http_requests_total", Help: "Requests answered by the http source, by status code (200 taken, 400 bad payload, 401 auth, 413 too large, 429 backpressure, 503 not taken).",
	}, []string{"code"})
	s.codes = map[int]prometheus.Counter{}
	for _, code := range []int{200, 400, 401, 404, 405, 413, 429, 503} {
		s.codes[code] = s.requests.WithLabelValues(strconv.Itoa(code))
	}
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "flowd_http_pending_points", Help: "Points the http source handed to the pipeline and not yet acknowledged (bounded by max_pending).",
	}, func() float64 { return float64(s.pending.Load()) })
	env.MustRegister(s.requests, pending)
	return s, nil
}

// samePort reports whether two listen addresses would collide: the same
// port on the same host, or on a wildcard host.
func samePort(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb {
		return false
	}
	norm := func(h string) string {
		switch h {
		case "", "0.0.0.0", "::", "[::]":
			return ""
		case "localhost", "::1":
			return "127.0.0.1"
		}
		return h
	}
	ha, hb = norm(ha), norm(hb)
	return ha == "" || hb == "" || ha == hb
}

// Addr is the bound address while running (tests listen on port 0).
func (s *Source) Addr() string {
	if p := s.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// Run listens until ctx ends, then stops taking requests and waits for the
// ones in flight to get their answer.
func (s *Source) Run(ctx context.Context, out engine.Output) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		s.env.SetState(engine.StateFailing, err)
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	addr := ln.Addr().String()
	s.addr.Store(&addr)
	s.out, s.ctx = out, ctx
	s.closing.Store(false)
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.cfg.ReadTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		MaxHeaderBytes:    64 << 10,
	}
	if s.env.Logger != nil {
		// Handshake and protocol errors of clients are theirs: debug level.
		srv.ErrorLog = slog.NewLogLogger(s.env.Logger.Handler(), slog.LevelDebug)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.env.SetState(engine.StateConnected, nil)
	if s.env.Logger != nil {
		s.env.Logger.Info("http source listening", "addr", addr, "path", s.prefix, "tls", s.tls != nil)
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
		s.env.SetState(engine.StateFailing, err)
		return err
	}
	// Requests already emitted wait for their acks while the pipeline drains.
	s.closing.Store(true)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.AckTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-errc
	s.env.SetState(engine.StateStopped, nil)
	return nil
}

func (s *Source) answer(w http.ResponseWriter, code int, msg string) {
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", s.retryHdr)
	}
	if code == http.StatusUnauthorized {
		if s.cfg.Auth != nil && s.cfg.Auth.BearerToken == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="flowd"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="flowd"`)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if code == http.StatusOK {
		fmt.Fprintf(w, "{\"points\":%s}\n", msg)
	} else {
		fmt.Fprintf(w, "{\"error\":%q}\n", msg)
	}
	if c := s.codes[code]; c != nil {
		c.Inc()
	} else {
		s.requests.WithLabelValues(strconv.Itoa(code)).Inc()
	}
}

// authorized compares the credential's hash with the configured one's in
// constant time (hashing first hides the length too).
func (s *Source) authorized(r *http.Request) bool {
	a := s.cfg.Auth
	if a == nil {
		return true
	}
	if a.BearerToken != "" {
		h := r.Header.Get("Authorization")
		const scheme = "Bearer "
		if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
			return false
		}
		got := sha256.Sum256([]byte(h[len(scheme):]))
		return subtle.ConstantTimeCompare(got[:], s.token[:]) == 1
	}
	u, p, ok := r.BasicAuth()
	if !ok {
		return false
	}
	gu, gp := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
	return subtle.ConstantTimeCompare(gu[:], s.user[:])&subtle.ConstantTimeCompare(gp[:], s.pass[:]) == 1
}

// ServeHTTP takes one POST.
func (s *Source) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	subject, ok := strings.CutPrefix(r.URL.Path, s.prefix)
	if !ok && r.URL.Path+"/" != s.prefix {
		s.answer(w, http.StatusNotFound, "no such path") // the prefix is not told to strangers
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.answer(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	if !s.authorized(r) {
		s.answer(w, http.StatusUnauthorized, "missing or wrong credentials")
		return
	}
	if s.closing.Load() {
		s.answer(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	max := int64(s.cfg.MaxBody)
	if r.ContentLength > max {
		s.answer(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes is above max_body (%d)", r.ContentLength, max))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.answer(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is above max_body (%d bytes)", max))
			return
		}
		s.answer(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	dec := s.decs.Get().(*payload.Decoder)
	pts, err := dec.Decode(engine.GetPoints(4), strings.TrimSuffix(subject, "/"), body, time.Now().UnixNano())
	s.decs.Put(dec)
	if err != nil {
		engine.PutPoints(pts)
		// The client drops a body answered 400: answer once the dead-letter
		// sink has it.
		if s.settled(w, r, s.reject(r, body, err)) {
			s.answer(w, http.StatusBadRequest, err.Error())
		}
		return
	}
	n := int64(len(pts))
	if n > int64(s.cfg.MaxPending) {
		engine.PutPoints(pts)
		s.answer(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%d points in one request, max_pending is %d", n, s.cfg.MaxPending))
		return
	}
	// Admission: the pending count bounds what waits in the pipeline, so a
	// request beyond it is refused before anything is handed over (429 means
	// nothing of it was taken).
	for {
		cur := s.pending.Load()
		if cur+n > int64(s.cfg.MaxPending) {
			engine.PutPoints(pts)
			s.answer(w, http.StatusTooManyRequests, "pipeline is full, retry later")
			return
		}
		if s.pending.CompareAndSwap(cur, cur+n) {
			break
		}
	}
	done := make(chan error, 1)
	err = s.out.Emit(s.ctx, pts, func(err error) {
		s.pending.Add(-n)
		done <- err
	})
	if err != nil {
		s.answer(w, http.StatusServiceUnavailable, "not taken: "+err.Error())
		return
	}
	if s.settled(w, r, done) {
		s.answer(w, http.StatusOK, strconv.FormatInt(n, 10))
	}
}

// settled waits up to ack_timeout for done. It reports true when the points
// were settled for good: taken, or rejected by a sink (dead-lettered, or
// dropped and counted), which the client must not send again. Otherwise it
// has answered 503, or the client left (it retries what it has no answer
// for).
func (s *Source) settled(w http.ResponseWriter, r *http.Request, done <-chan error) bool {
	t := time.NewTimer(s.cfg.AckTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, engine.ErrRejected) {
			s.answer(w, http.StatusServiceUnavailable, "not taken: "+err.Error())
			return false
		}
		return true
	case <-t.C:
		s.answer(w, http.StatusServiceUnavailable, "not acknowledged within ack_timeout; the points may still be delivered")
	case <-r.Context().Done():
	}
	return false
}

// reject counts a body that does not decode and hands it to the dead-letter
// sink as a raw point, straight away: requests run concurrently, so the
// next Emit (which carries Env.Reject's dead letters) may be another
// request's, or never come. The returned channel gets the dead-letter
// sink's outcome.
func (s *Source) reject(r *http.Request, body []byte, err error) <-chan error {
	p := engine.RawPoint(r.URL.Path, body, map[string]string{"http_path": r.URL.Path})
	if ok, suppressed := s.rejectLog.Allow(engine.Now()); ok && s.env.Logger != nil {
		s.env.Logger.Warn("http body rejected", "path", r.URL.Path, "bytes", len(body), "err", err.Error(), "suppressed_before", suppressed)
	}
	done := make(chan error, 1)
	s.env.RejectAck([]engine.Point{p}, "decode", fmt.Errorf("path %s: %w", r.URL.Path, err), func(err error) { done <- err })
	return done
}
