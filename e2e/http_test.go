package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
)

// httpPipeline is an http source on port into a file sink at out; buffer is
// the sink's buffer block (empty: memory).
func httpPipeline(port int, maxPending int, out, buffer string) string {
	return fmt.Sprintf(`pipeline "ingest" {
  latency_slo   = "48h"
  stall_timeout = "1h"
  dead_letter   = sink.dead
  source "http" "in" {
    listen      = "127.0.0.1:%d"
    path        = "/points"
    max_pending = %d
    max_body    = "64KiB"
    retry_after = "1s"
    auth {
      bearer_token = env("E2E_HTTP_TOKEN")
    }
  }
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
    %s
  }
  sink "file" "dead" {
    path = %q
  }
}
`, port, maxPending, out, buffer, out+".dead")
}

const httpToken = "e2e-token-7f3a"

// poster sends batches of sequence-numbered points (asset "a", value = seq)
// and records which sequence numbers got a 200.
type poster struct {
	url      string
	client   *http.Client
	mu       sync.Mutex
	accepted map[int]bool
	codes    map[int]int
}

func newPoster(port int) *poster {
	return &poster{
		url:      fmt.Sprintf("http://127.0.0.1:%d/points/e2e", port),
		client:   &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		accepted: map[int]bool{},
		codes:    map[int]int{},
	}
}

func batchBody(first, n int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	ts := time.Now().UTC().Format(time.RFC3339Nano)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"asset":"a","tag":"t%d","value":%d,"ts":%q}`, (first+i)%50, first+i, ts)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// send posts one batch and returns the status code (0: no answer).
func (p *poster) send(first, n int) int {
	req, _ := http.NewRequest("POST", p.url, bytes.NewReader(batchBody(first, n)))
	req.Header.Set("Authorization", "Bearer "+httpToken)
	resp, err := p.client.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode == 429 || resp.StatusCode == 503 {
		if resp.Header.Get("Retry-After") == "" {
			return -resp.StatusCode // marks a missing Retry-After
		}
	}
	p.mu.Lock()
	p.codes[resp.StatusCode]++
	if resp.StatusCode == 200 {
		for i := first; i < first+n; i++ {
			p.accepted[i] = true
		}
	}
	p.mu.Unlock()
	return resp.StatusCode
}

func (p *poster) code(c int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.codes[c]
}

// run sends total points in batches of batch from clients goroutines; a
// batch not answered 200 is retried after pause until it is, or stop closes.
func (p *poster) run(t *testing.T, clients, total, batch int, pause time.Duration, stop <-chan struct{}) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				first := int(next.Add(int64(batch))) - batch
				if first >= total {
					return
				}
				for {
					c := p.send(first, min(batch, total-first))
					if c < 0 {
						t.Errorf("%d without Retry-After", -c)
						return
					}
					if c == 200 {
						break
					}
					if c != 429 && c != 503 && c != 0 {
						t.Errorf("unexpected status %d", c)
						return
					}
					select {
					case <-stop:
						return
					case <-time.After(pause):
					}
				}
			}
		}()
	}
	wg.Wait()
}

// 100,000 points POSTed by 16 clients while the sink is down: requests past
// max_pending get 429 with Retry-After and nothing of them enters the
// pipeline; once the sink is back every point answered 200 is in the file
// exactly once, and flowd counts as delivered exactly the points it accepted.
func TestHTTPBackpressureBlockedSink(t *testing.T) {
	concurrent(t)
	dir := t.TempDir()
	out, unblock := block(t, dir)
	port := harness.FreePort(t)
	cfg := harness.WriteFile(t, dir, "http.hcl", httpPipeline(port, 1000, out, ""))
	p := harness.StartEnv(t, []string{"E2E_HTTP_TOKEN=" + httpToken}, "--data-dir", filepath.Join(dir, "data"), cfg)
	harness.Eventually(t, 10*time.Second, func() bool {
		return readyzLines(t, p, "source.in") == ""
	}, "the http source to listen")

	const total, batch, clients = 100_000, 100, 16
	po := newPoster(port)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		po.run(t, clients, total, batch, 20*time.Millisecond, stop)
	}()
	// While the sink is down: 429s, at most max_pending points pending, and
	// nothing answered 200 (the sink has not taken anything).
	harness.Eventually(t, 30*time.Second, func() bool { return po.code(429) >= 200 }, "429 answers while the sink is down")
	if n := po.code(200); n != 0 {
		t.Fatalf("%d requests answered 200 while no sink had taken their points", n)
	}
	if pend := metric(t, p, "flowd_http_pending_points"); pend > 1000 || pend < 1 {
		t.Errorf("pending points %v, want 1..max_pending (1000)", pend)
	}
	if rec := metric(t, p, "flowd_points_received_total", "component=source.in"); rec > 1000 {
		t.Errorf("the pipeline received %v points, more than max_pending: refused requests got in", rec)
	}
	unblock()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		close(stop)
		<-done
		t.Fatalf("clients did not finish: %d points accepted", len(po.accepted))
	}
	if len(po.accepted) != total {
		t.Fatalf("%d of %d points accepted", len(po.accepted), total)
	}
	harness.Eventually(t, 60*time.Second, func() bool {
		return metric(t, p, "flowd_points_delivered_total", "sink=out") >= total
	}, "every accepted point delivered")
	time.Sleep(200 * time.Millisecond)
	seen := map[int]int{}
	for _, s := range readOut(t, out) {
		seen[s]++
	}
	for s := range total {
		if seen[s] != 1 {
			t.Fatalf("seq %d is in the file %d times", s, seen[s])
		}
	}
	m, err := p.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	delivered := harness.Sum(m, "flowd_points_delivered_total", "sink=out")
	received := harness.Sum(m, "flowd_points_received_total", "component=source.in")
	if delivered != total || received != total || len(seen) != total {
		t.Errorf("delivered %v, received %v, in the file %d; want exactly %d (a refused point counted would show here)", delivered, received, len(seen), total)
	}
	for _, code := range []int{200, 429} {
		if got := harness.Sum(m, "flowd_http_requests_total", fmt.Sprintf("code=%d", code)); int(got) != po.code(code) {
			t.Errorf("flowd_http_requests_total{code=%d} = %v, clients saw %d", code, got, po.code(code))
		}
	}
	t.Logf("200: %d, 429: %d, 503: %d", po.code(200), po.code(429), po.code(503))
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// readyzLines returns the /readyz problems that mention id ("" when none).
func readyzLines(t *testing.T, p *harness.Proc, id string) string {
	t.Helper()
	_, body, err := p.Readyz()
	if err != nil {
		return "unreachable"
	}
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, id) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// flowd is killed with SIGKILL while clients post into a disk-buffered sink
// that is down; after a restart with the sink back, every point that was
// answered 200 is in the file.
func TestHTTPSIGKILLKeepsAcceptedPoints(t *testing.T) {
	concurrent(t)
	dir := t.TempDir()
	out, unblock := block(t, dir)
	port := harness.FreePort(t)
	data := filepath.Join(dir, "data")
	cfg := harness.WriteFile(t, dir, "http.hcl", httpPipeline(port, 2000, out, `buffer {
      type = "disk"
    }`))
	env := []string{"E2E_HTTP_TOKEN=" + httpToken}
	p := harness.StartEnv(t, env, "--data-dir", data, cfg)
	po := newPoster(port)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		po.run(t, 8, 1_000_000, 50, 10*time.Millisecond, stop)
	}()
	harness.Eventually(t, 60*time.Second, func() bool {
		po.mu.Lock()
		defer po.mu.Unlock()
		return len(po.accepted) >= 20_000
	}, "20,000 points accepted")
	p.Kill() // SIGKILL mid-ingest
	close(stop)
	<-done
	po.mu.Lock()
	accepted := len(po.accepted)
	po.mu.Unlock()
	unblock()
	p2 := harness.StartEnv(t, env, "--data-dir", data, cfg)
	harness.Eventually(t, 60*time.Second, func() bool {
		seen := map[int]bool{}
		for _, s := range readOut(t, out) {
			seen[s] = true
		}
		for s := range po.accepted {
			if !seen[s] {
				return false
			}
		}
		return true
	}, "every one of the %d accepted points in the file after the restart", accepted)
	t.Logf("accepted before SIGKILL: %d points; 200: %d, 429: %d", accepted, po.code(200), po.code(429))
	if code := p2.Stop(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// Malformed, huge and unauthenticated requests get their status codes, the
// malformed ones reach the dead-letter sink, and flowd keeps serving.
func TestHTTPBadRequests(t *testing.T) {
	concurrent(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	port := harness.FreePort(t)
	cfg := harness.WriteFile(t, dir, "http.hcl", httpPipeline(port, 1000, out, ""))
	p := harness.StartEnv(t, []string{"E2E_HTTP_TOKEN=" + httpToken}, cfg)
	url := fmt.Sprintf("http://127.0.0.1:%d/points/x", port)
	do := func(method, url, auth string, body io.Reader, contentLength int64) (int, string) {
		req, _ := http.NewRequest(method, url, body)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if contentLength >= 0 {
			req.ContentLength = contentLength
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	bearer := "Bearer " + httpToken
	huge := bytes.Repeat([]byte(`{"tag":"a","value":1},`), 10_000) // 220 kB > 64KiB
	for _, c := range []struct {
		name, method, url, auth string
		body                    io.Reader
		length                  int64
		code                    int
		contains                string
	}{
		{"malformed", "POST", url, bearer, strings.NewReader(`{"tag":"a","value":`), -1, 400, "invalid JSON"},
		{"not a point", "POST", url, bearer, strings.NewReader(`{"tag":"a","value":{"x":[1]}}`), -1, 400, "not an object"},
		{"bad quality", "POST", url, bearer, strings.NewReader(`{"tag":"a","value":1,"quality":"great"}`), -1, 400, "quality"},
		{"binary", "POST", url, bearer, bytes.NewReader([]byte{0xff, 0x00, 0x1f, 0x8b}), -1, 400, ""},
		{"huge", "POST", url, bearer, bytes.NewReader(huge), -1, 413, "max_body"},
		{"huge chunked", "POST", url, bearer, io.MultiReader(bytes.NewReader(huge)), 0, 413, "max_body"},
		{"no token", "POST", url, "", strings.NewReader(`{"tag":"a","value":1}`), -1, 401, ""},
		{"wrong token", "POST", url, "Bearer nope", strings.NewReader(`{"tag":"a","value":1}`), -1, 401, ""},
		{"GET", "GET", url, bearer, nil, -1, 405, ""},
		{"wrong path", "POST", fmt.Sprintf("http://127.0.0.1:%d/other", port), bearer, strings.NewReader(`{"tag":"a","value":1}`), -1, 404, ""},
		{"good", "POST", url, bearer, strings.NewReader(`{"asset":"a","tag":"t","value":7}`), -1, 200, `{"points":1}`},
	} {
		code, body := do(c.method, c.url, c.auth, c.body, c.length)
		if code != c.code || !strings.Contains(body, c.contains) {
			t.Errorf("%s: %d %q, want %d containing %q", c.name, code, body, c.code, c.contains)
		}
		if strings.Contains(body, httpToken) {
			t.Errorf("%s: the token is in the answer", c.name)
		}
	}
	// A connection that sends garbage instead of HTTP does not hurt either.
	if conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		conn.Write([]byte("\x16\x03\x01garbage\r\n\r\n"))
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.Copy(io.Discard, conn)
		conn.Close()
	}
	if code, _ := do("POST", url, bearer, strings.NewReader(`{"asset":"a","tag":"t","value":8}`), -1); code != 200 {
		t.Fatalf("after the bad requests: %d", code)
	}
	harness.Eventually(t, 10*time.Second, func() bool { return len(readOut(t, out)) == 2 }, "the two good points delivered")
	type dead struct {
		Attrs map[string]string `json:"attrs"`
	}
	harness.Eventually(t, 10*time.Second, func() bool { return len(harness.ReadJSONL[dead](t, out+".dead")) == 4 }, "four dead letters")
	for _, d := range harness.ReadJSONL[dead](t, out+".dead") {
		if d.Attrs["dead_letter_reason"] != "decode" || d.Attrs["http_path"] != "/points/x" {
			t.Errorf("dead letter attrs %v", d.Attrs)
		}
	}
	m, err := p.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	for code, want := range map[int]float64{200: 2, 400: 4, 401: 2, 404: 1, 405: 1, 413: 2} {
		if got := harness.Sum(m, "flowd_http_requests_total", fmt.Sprintf("code=%d", code)); got != want {
			t.Errorf("flowd_http_requests_total{code=%d} = %v, want %v", code, got, want)
		}
	}
	if got := harness.Sum(m, "flowd_points_dropped_total", "component=source.in", "reason=decode"); got != 4 {
		t.Errorf("decode drops %v, want 4", got)
	}
	if strings.Contains(p.Stderr.String(), httpToken) {
		t.Error("the token is in flowd's log")
	}
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	_ = os.Remove(out)
}

// A body that does not decode is in the dead-letter sink by the time the
// client has its 400 (the client drops it then), even when no good request
// follows to carry it.
func TestHTTPDeadLetterBeforeBadRequest(t *testing.T) {
	concurrent(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	port := harness.FreePort(t)
	cfg := harness.WriteFile(t, dir, "http.hcl", httpPipeline(port, 1000, out, ""))
	p := harness.StartEnv(t, []string{"E2E_HTTP_TOKEN=" + httpToken}, cfg)
	harness.Eventually(t, 10*time.Second, func() bool { return readyz(t, p) == 200 }, "the http source to listen")
	url := fmt.Sprintf("http://127.0.0.1:%d/points/x", port)
	type dead struct {
		Attrs map[string]string `json:"attrs"`
	}
	for i := 1; i <= 3; i++ {
		req, _ := http.NewRequest("POST", url, strings.NewReader(`{"tag":"a","value":`))
		req.Header.Set("Authorization", "Bearer "+httpToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("malformed body %d: %d, want 400", i, resp.StatusCode)
		}
		harness.Eventually(t, 10*time.Second, func() bool { return len(harness.ReadJSONL[dead](t, out+".dead")) == i },
			"dead letter %d written after its 400", i)
	}
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// /readyz reports the listener: while another process holds the port the
// source is failing and flowd not ready; once the port is free the engine's
// retry binds it and flowd is ready, without a restart.
func TestHTTPListenerInReadyz(t *testing.T) {
	concurrent(t)
	dir := t.TempDir()
	squat, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := squat.Addr().(*net.TCPAddr).Port
	cfg := harness.WriteFile(t, dir, "http.hcl", httpPipeline(port, 1000, filepath.Join(dir, "out.jsonl"), ""))
	p := harness.StartEnv(t, []string{"E2E_HTTP_TOKEN=" + httpToken}, cfg)
	harness.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(readyzLines(t, p, "source.in"), "source.in is failing") && readyz(t, p) == 503
	}, "/readyz to report the source failing while the port is taken")
	squat.Close()
	harness.Eventually(t, 30*time.Second, func() bool { return readyz(t, p) == 200 }, "/readyz ready once the port is free")
	po := newPoster(port)
	if c := po.send(0, 3); c != 200 {
		t.Fatalf("after binding: %d", c)
	}
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}
