package httpsource

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/flowd/flowd/codecs"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/common/tlsconf"
	"github.com/flowd/flowd/engine"
)

// output is an in-process pipeline end: it records points and acks them at
// once, or holds them while blocked.
type output struct {
	mu      sync.Mutex
	points  []engine.Point
	held    []func(error)
	blocked bool
	fail    error
}

func (o *output) Emit(_ context.Context, pts []engine.Point, done func(error)) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.points = append(o.points, pts...)
	if o.blocked {
		o.held = append(o.held, done)
		return nil
	}
	done(o.fail)
	return nil
}

func (o *output) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.points)
}

func (o *output) release() {
	o.mu.Lock()
	held := o.held
	o.held, o.blocked = nil, false
	o.mu.Unlock()
	for _, d := range held {
		d(nil)
	}
}

func config(mod func(*Config)) *Config {
	c := &Config{Listen: "127.0.0.1:0", Path: "/", Format: "json", MaxBody: 1 << 20, MaxPending: 100,
		RetryAfter: time.Second, AckTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second}
	if mod != nil {
		mod(c)
	}
	return c
}

func newSource(t testing.TB, c *Config, out engine.Output) *Source {
	t.Helper()
	src, err := New(c, &engine.Env{Pipeline: "p", Name: "h", Codecs: codecs.All()})
	if err != nil {
		t.Fatal(err)
	}
	s := src.(*Source)
	s.out, s.ctx = out, context.Background()
	return s
}

func post(h http.Handler, path, body string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestStatusCodes(t *testing.T) {
	out := &output{}
	s := newSource(t, config(func(c *Config) {
		c.Path = "/ingest"
		c.MaxBody = 200
		c.Auth = &Auth{BearerToken: "s3cret"}
	}), out)
	auth := []string{"Authorization", "Bearer s3cret"}
	for _, c := range []struct {
		name, path, body string
		hdr              []string
		code             int
		contains         string
	}{
		{"point", "/ingest", `{"tag":"a","value":1}`, auth, 200, `{"points":1}`},
		{"array", "/ingest/x", `[{"tag":"a","value":1},{"tag":"b","value":true}]`, auth, 200, `{"points":2}`},
		{"bearer scheme any case", "/ingest", `{"tag":"a","value":1}`, []string{"Authorization", "bearer s3cret"}, 200, ""},
		{"no token", "/ingest", `{"tag":"a","value":1}`, nil, 401, "credentials"},
		{"wrong token", "/ingest", `{"tag":"a","value":1}`, []string{"Authorization", "Bearer s3cret2"}, 401, ""},
		{"basic instead", "/ingest", `{"tag":"a","value":1}`, []string{"Authorization", "Basic czNjcmV0Og=="}, 401, ""},
		{"malformed", "/ingest", `{"tag":"a","value":`, auth, 400, "invalid JSON"},
		{"no tag", "/ingest", `{"value":1}`, auth, 400, ""},
		{"empty", "/ingest", ``, auth, 400, "empty payload"},
		{"huge", "/ingest", `[` + strings.Repeat(`{"tag":"a","value":1},`, 20) + `{"tag":"a","value":1}]`, auth, 413, "max_body"},
		{"other path", "/other", `{"tag":"a","value":1}`, auth, 404, ""},
	} {
		w := post(s, c.path, c.body, c.hdr...)
		if w.Code != c.code || !strings.Contains(w.Body.String(), c.contains) {
			t.Errorf("%s: got %d %s, want %d containing %q", c.name, w.Code, w.Body, c.code, c.contains)
		}
		if w.Code == 401 && w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", c.name)
		}
		if strings.Contains(w.Body.String(), "s3cret") {
			t.Errorf("%s: the token is in the answer", c.name)
		}
	}
	r := httptest.NewRequest("GET", "/ingest", nil)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != 405 {
		t.Errorf("GET: %d", w.Code)
	}
	if len(out.points) != 4 {
		t.Errorf("points emitted: %d, want 4", len(out.points))
	}
}

func TestBasicAuth(t *testing.T) {
	s := newSource(t, config(func(c *Config) { c.Auth = &Auth{Username: "meter", Password: "pw"} }), &output{})
	for _, c := range []struct {
		user, pass string
		code       int
	}{{"meter", "pw", 200}, {"meter", "px", 401}, {"metre", "pw", 401}, {"", "", 401}} {
		r := httptest.NewRequest("POST", "/", strings.NewReader(`{"tag":"a","value":1}`))
		if c.user != "" {
			r.SetBasicAuth(c.user, c.pass)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != c.code {
			t.Errorf("%s/%s: %d, want %d", c.user, c.pass, w.Code, c.code)
		}
	}
}

// The answer waits for the ack; past max_pending requests get 429 with
// Retry-After and nothing of them is handed over; a failed ack is 503.
func TestBackpressure(t *testing.T) {
	out := &output{blocked: true}
	s := newSource(t, config(func(c *Config) { c.MaxPending = 4 }), out)
	body := `[{"tag":"a","value":1},{"tag":"b","value":2}]`
	codes := make(chan int, 2)
	for range 2 {
		go func() { codes <- post(s, "/", body).Code }()
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.pending.Load() != 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	select {
	case c := <-codes:
		t.Fatalf("answered %d before the ack", c)
	default:
	}
	w := post(s, "/", body)
	if w.Code != 429 || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("full: %d Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	if out.count() != 4 {
		t.Fatalf("a refused request reached the pipeline: %d points", len(out.points))
	}
	if w := post(s, "/", `[`+strings.Repeat(`{"tag":"a","value":1},`, 4)+`{"tag":"a","value":1}]`); w.Code != 413 {
		t.Errorf("more points than max_pending: %d", w.Code)
	}
	out.release()
	for range 2 {
		if c := <-codes; c != 200 {
			t.Errorf("released: %d", c)
		}
	}
	if s.pending.Load() != 0 {
		t.Errorf("pending %d after the acks", s.pending.Load())
	}
	out.mu.Lock()
	out.fail = errors.New("sink gave up")
	out.mu.Unlock()
	if w := post(s, "/", body); w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Errorf("failed ack: %d", w.Code)
	}
}

func TestAckTimeout(t *testing.T) {
	out := &output{blocked: true}
	s := newSource(t, config(func(c *Config) { c.AckTimeout = 20 * time.Millisecond }), out)
	if w := post(s, "/", `{"tag":"a","value":1}`); w.Code != 503 {
		t.Errorf("no ack in time: %d", w.Code)
	}
	out.release()
}

func TestMapUplink(t *testing.T) {
	out := &output{}
	s := newSource(t, config(func(c *Config) {
		c.Path = "/uplink"
		c.Format = "map"
		c.Map = map[string]engine.Expr{
			"asset":  {Src: "payload.end_device_ids.device_id"},
			"values": {Src: "payload.uplink_message.decoded_payload"},
			"ts":     {Src: "payload.received_at"},
		}
	}), out)
	// The Things Stack v3 uplink webhook.
	tts := `{"end_device_ids":{"device_id":"meter-7","application_ids":{"application_id":"meters"}},
	  "received_at":"2026-11-22T10:00:01.5Z",
	  "uplink_message":{"f_port":1,"frm_payload":"AQI=","decoded_payload":{"energy_kwh":10.25,"voltage":230,"power_w":500}}}`
	if w := post(s, "/uplink/tts", tts); w.Code != 200 || w.Body.String() != "{\"points\":3}\n" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	want := "meter-7 energy_kwh 10.25|meter-7 power_w 500|meter-7 voltage 230|"
	got := ""
	for _, p := range out.points {
		got += fmt.Sprintf("%s %s %v|", p.Asset, p.Tag, p.Value)
		if p.TS != time.Date(2026, 11, 22, 10, 0, 1, 5e8, time.UTC).UnixNano() {
			t.Errorf("ts %d", p.TS)
		}
	}
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if w := post(s, "/uplink/tts", `{"end_device_ids":{}}`); w.Code != 400 || !strings.Contains(w.Body.String(), "map.values") {
		t.Errorf("uplink without a decoded payload: %d %s", w.Code, w.Body)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		mod   func(*Config)
		admin string
		field string
	}{
		{func(c *Config) { c.Listen = "127.0.0.1:9180" }, "127.0.0.1:9180", "listen"},
		{func(c *Config) { c.Listen = "0.0.0.0:9180" }, "127.0.0.1:9180", "listen"},
		{func(c *Config) { c.Listen = "localhost:9180" }, "127.0.0.1:9180", "listen"},
		{func(c *Config) { c.Listen = "9280" }, "", "listen"},
		{func(c *Config) { c.Path = "x" }, "", "path"},
		{func(c *Config) { c.Auth = &Auth{} }, "", "auth"},
		{func(c *Config) { c.Auth = &Auth{BearerToken: "t", Username: "u"} }, "", "auth"},
		{func(c *Config) { c.Auth = &Auth{Username: "u"} }, "", "auth"},
		{func(c *Config) { c.MaxPending = 0 }, "", "max_pending"},
		{func(c *Config) { c.Format = "map" }, "", "map"},
		{func(c *Config) { c.TagExpr = engine.Expr{Src: "topic[0]"} }, "", "tag_expr"},
	} {
		_, err := New(config(c.mod), &engine.Env{AdminAddr: c.admin, Codecs: codecs.All()})
		var fe *engine.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("want an error on %s, got %v", c.field, err)
		}
	}
	if _, err := New(config(func(c *Config) { c.Listen = "127.0.0.1:9280" }), &engine.Env{AdminAddr: "127.0.0.1:9180", Codecs: codecs.All()}); err != nil {
		t.Errorf("own port: %v", err)
	}
}

// The source listens, answers over a real socket and stops with its context.
func TestRunListens(t *testing.T) {
	out := &output{}
	src, err := New(config(nil), &engine.Env{Codecs: codecs.All()})
	if err != nil {
		t.Fatal(err)
	}
	s := src.(*Source)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx, out) }()
	for s.Addr() == "" {
		time.Sleep(time.Millisecond)
	}
	resp, err := http.Post("http://"+s.Addr()+"/", "application/json", bytes.NewReader([]byte(`{"tag":"a","value":1}`)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("%d %s", resp.StatusCode, b)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// FuzzHandler: whatever the body, path and headers, the handler answers with
// one of its codes, and a 200 means every point it counted was emitted.
func FuzzHandler(f *testing.F) {
	for _, s := range []string{
		`{"tag":"a","value":1.5,"ts":"2026-11-22T10:00:00Z"}`, `[{"tag":"a","value":1},{"tag":"b","value":"x"}]`,
		`{"Temp":{"Value":21.5,"StatusCode":0}}`, `42`, `{`, `[{]`, `{"o":{"a":1,"b":2}}`, `{"o":{"a":{}}}`, "",
	} {
		f.Add("/in/x", s, "Bearer t")
	}
	out := &output{}
	sj := newSource(f, config(func(c *Config) {
		c.Path = "/in"
		c.MaxBody = 4096
		c.Auth = &Auth{BearerToken: "t"}
		c.AssetExpr = engine.Expr{Src: "path[0]"}
	}), out)
	sm := newSource(f, config(func(c *Config) {
		c.Path = "/in"
		c.Format = "map"
		c.MaxBody = 4096
		c.Map = map[string]engine.Expr{"values": {Src: "payload.o"}, "asset": {Src: "path[-1]"}}
	}), out)
	f.Fuzz(func(t *testing.T, path, body, auth string) {
		if u, err := url.ParseRequestURI(path); err != nil || !strings.HasPrefix(path, "/") || u.RawQuery != "" || strings.ContainsAny(path, " #") {
			path = "/in"
		}
		for _, s := range []*Source{sj, sm} {
			out.mu.Lock()
			before := len(out.points)
			out.mu.Unlock()
			r := httptest.NewRequest("POST", "http://x"+path, strings.NewReader(body))
			r.Header.Set("Authorization", auth)
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			out.mu.Lock()
			emitted := len(out.points) - before
			out.mu.Unlock()
			switch w.Code {
			case 200:
				if want := fmt.Sprintf("{\"points\":%d}\n", emitted); w.Body.String() != want || emitted == 0 {
					t.Fatalf("200 %q but %d points emitted", w.Body, emitted)
				}
			case 400, 401, 404, 413:
				if emitted != 0 {
					t.Fatalf("%d with %d points emitted", w.Code, emitted)
				}
			default:
				t.Fatalf("unexpected %d %s", w.Code, w.Body)
			}
		}
	})
}

func BenchmarkHandlerPoints(b *testing.B) {
	s := newSource(b, config(func(c *Config) { c.Auth = &Auth{BearerToken: "t"} }), discardOut{})
	body := []byte(`[{"asset":"meter-1","tag":"energy_kwh","value":1234.5,"ts":"2026-11-22T10:00:00Z"},{"asset":"meter-1","tag":"voltage","value":231,"ts":"2026-11-22T10:00:00Z"},{"asset":"meter-1","tag":"power_w","value":880,"ts":"2026-11-22T10:00:00Z"}]`)
	benchHandler(b, s, "/", body)
}

func BenchmarkHandlerUplinkMap(b *testing.B) {
	s := newSource(b, config(func(c *Config) {
		c.Format = "map"
		c.Map = map[string]engine.Expr{"asset": {Src: "payload.deviceInfo.deviceName"}, "values": {Src: "payload.object"}, "ts": {Src: "payload.time"}}
	}), discardOut{})
	body := []byte(`{"deduplicationId":"3ac7e3c4","time":"2026-11-22T09:59:58.5Z","deviceInfo":{"deviceName":"meter-000042","devEui":"0101010101010101"},"fCnt":10,"fPort":1,"data":"AQID","object":{"energy_kwh":1234.5,"voltage":231,"power_w":880}}`)
	benchHandler(b, s, "/", body)
}

type discardOut struct{}

func (discardOut) Emit(_ context.Context, pts []engine.Point, done func(error)) error {
	engine.PutPoints(pts)
	done(nil)
	return nil
}

func benchHandler(b *testing.B, s *Source, path string, body []byte) {
	rd := bytes.NewReader(body)
	r := httptest.NewRequest("POST", path, rd)
	r.Header.Set("Authorization", "Bearer t")
	w := httptest.NewRecorder()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		rd.Reset(body)
		r.Body = io.NopCloser(rd)
		r.ContentLength = int64(len(body))
		w.Body.Reset()
		s.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body)
		}
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "flowd test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// With a tls block the source serves HTTPS only.
func TestTLS(t *testing.T) {
	certFile, keyFile, pool := writeCert(t, t.TempDir())
	out := &output{}
	src, err := New(config(func(c *Config) { c.TLS = &tlsconf.Server{CertFile: certFile, KeyFile: keyFile} }), &engine.Env{Codecs: codecs.All()})
	if err != nil {
		t.Fatal(err)
	}
	s := src.(*Source)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx, out) }()
	defer func() {
		cancel()
		<-errc
	}()
	for s.Addr() == "" {
		time.Sleep(time.Millisecond)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Post("https://"+s.Addr()+"/", "application/json", strings.NewReader(`{"tag":"a","value":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || out.count() != 1 {
		t.Errorf("https: %d, %d points", resp.StatusCode, out.count())
	}
	if resp, err := http.Post("http://"+s.Addr()+"/", "application/json", strings.NewReader(`{"tag":"a","value":1}`)); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP accepted on a TLS listener")
		}
	}
	if _, err := New(config(func(c *Config) { c.TLS = &tlsconf.Server{CertFile: keyFile, KeyFile: keyFile} }), &engine.Env{Codecs: codecs.All()}); err == nil {
		t.Error("a key as certificate accepted")
	}
}
