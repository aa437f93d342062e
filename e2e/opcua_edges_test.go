package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gopcua "github.com/gopcua/opcua"

	uacommon "github.com/flowd/flowd/common/opcua"
	"github.com/flowd/flowd/e2e/harness"
)

// interopServer is a private asyncua server (e2e/opcua_interop_server.py),
// for tests that stop it or start it with other settings: the shared one
// (FLOWD_TEST_OPCUA_INTEROP) serves every branch and is never stopped.
type interopServer struct {
	Endpoint string
	Cmd      *exec.Cmd
}

// startInterop starts the interop script on a free port with the Python of
// the asyncua install that e2e/services.d/opcua.sh made, and waits until it
// answers GetEndpoints. It is killed (and continued first, if stopped) when
// the test ends. The install missing while the shared server is up fails the
// test: it is a broken setup, not a reason to skip.
func startInterop(t *testing.T, args ...string) *interopServer {
	t.Helper()
	harness.Require(t, "FLOWD_TEST_OPCUA_INTEROP")
	py := harness.Require(t, "FLOWD_TEST_OPCUA_PYTHON")
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("the asyncua install of e2e/services.d/opcua.sh is missing: %v", err)
	}
	port := harness.FreePort(t)
	full := append([]string{filepath.Join(harness.RepoRoot(), "e2e", "opcua_interop_server.py"),
		"--port", fmt.Sprint(port), "--pki", filepath.Join(t.TempDir(), "server-pki")}, args...)
	cmd := exec.Command(py, full...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	ep := fmt.Sprintf("opc.tcp://127.0.0.1:%d", port)
	harness.Eventually(t, 60*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := gopcua.GetEndpoints(ctx, ep)
		return err == nil
	}, "private asyncua server on %s did not start", ep)
	return &interopServer{Endpoint: ep, Cmd: cmd}
}

// levelLines returns the JSON log lines of a level whose msg contains substr.
func levelLines(stderr, level, substr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, `"level":"`+level+`"`) && strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// TestOPCUABrowseDuplicateNames browses an asyncua tree where two nodes share
// parent and name (Twins/A/Motor/Temp = 1, Twins/B/Motor/Temp = 2). By
// default the source refuses to merge them into one series and names both
// node ids; asset_levels = 2 keeps them apart (A/Motor, B/Motor);
// on_duplicate = "skip" keeps the first with a warning naming both.
func TestOPCUABrowseDuplicateNames(t *testing.T) {
	concurrent(t)
	srv := startInterop(t)
	dir := t.TempDir()
	source := func(name, extra string) string {
		return fmt.Sprintf(`
  source "opcua" %q {
    endpoint      = %q
    mode          = "poll"
    interval      = "200ms"
    reconnect_min = "1s"
    reconnect_max = "2s"
    browse {
      root = "/2:Twins"
      %s
    }
  }`, name, srv.Endpoint, extra)
	}
	out := filepath.Join(dir, "out.jsonl")
	cfg := harness.WriteFile(t, dir, "twins.hcl", fmt.Sprintf(`
pipeline "twins" {
  %s
  %s
  %s
  sink "file" "out" {
    inputs = [source.strict, source.levels, source.skip]
    path   = %q
  }
}
`, source("strict", ""), source("levels", "asset_levels = 2"), source("skip", `on_duplicate = "skip"`), out))
	p := harness.Start(t, "--data-dir", filepath.Join(dir, "data"), cfg)
	const a, b = "ns=2;s=Twins.A.Motor.Temp", "ns=2;s=Twins.B.Motor.Temp"
	harness.Eventually(t, 30*time.Second, func() bool {
		pts := harness.ReadJSONL[jsonPoint](t, out)
		return countWhere(pts, func(pt jsonPoint) bool { return pt.Asset == "A/Motor" }) >= 5 &&
			countWhere(pts, func(pt jsonPoint) bool { return pt.Asset == "B/Motor" }) >= 5 &&
			len(levelLines(p.Stderr.String(), "ERROR", "both make asset")) > 0
	}, "points of A/Motor and B/Motor, and an error for the merged names")
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("flowd exit code %d", code)
	}
	pts := harness.ReadJSONL[jsonPoint](t, out)
	stderr := p.Stderr.String()

	for _, l := range errorLines(stderr)["source.strict"] {
		if !strings.Contains(l, a) || !strings.Contains(l, b) || !strings.Contains(l, "asset_levels") {
			t.Errorf("strict: error %q does not name both nodes and asset_levels", l)
		}
	}
	if len(errorLines(stderr)["source.strict"]) == 0 {
		t.Error("strict: no error line")
	}
	// Without the source name in the asset the strict and skip sources
	// write asset Motor; only skip may, and only one node's values.
	motor := map[any]int{}
	for _, pt := range pts {
		switch pt.Asset {
		case "A/Motor", "B/Motor":
			want := map[string]float64{"A/Motor": 1, "B/Motor": 2}[pt.Asset]
			if pt.Tag != "Temp" || pt.Value != want {
				t.Errorf("levels: %s/%s = %v, want Temp = %v", pt.Asset, pt.Tag, pt.Value, want)
			}
		case "Motor":
			motor[pt.Value]++
		}
	}
	if len(motor) != 1 {
		t.Errorf("asset Motor carries the values %v: two nodes merged into one series", motor)
	}
	warns := levelLines(stderr, "WARN", "both make asset")
	if len(warns) == 0 || !strings.Contains(warns[0], a) || !strings.Contains(warns[0], b) {
		t.Errorf("skip: no warning naming both nodes: %v", warns)
	}
}

// TestOPCUASubscribeHungServer stops a private asyncua server with SIGSTOP
// (its TCP connections stay open, as behind a frozen PLC or a pulled cable
// beyond a switch). With the default keep-alive and watchdog settings the
// subscribe source notices within seconds: tags marked bad,
// flowd_opcua_connected 0, /readyz 503, reconnect attempts spaced by the
// backoff. After SIGCONT it reconnects and delivers again.
func TestOPCUASubscribeHungServer(t *testing.T) {
	srv := startInterop(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	cfg := harness.WriteFile(t, dir, "hung.hcl", fmt.Sprintf(`
pipeline "hung" {
  source "opcua" "plc" {
    endpoint        = %q
    mode            = "subscribe"
    interval        = "200ms"
    asset           = "plc"
    request_timeout = "2s"
    reconnect_min   = "500ms"
    reconnect_max   = "4s"
    nodes = {
      counter = "ns=2;s=Interop.Counter"
      double  = "ns=2;s=Interop.Double"
    }
  }
  sink "file" "out" {
    inputs = [source.plc]
    path   = %q
  }
}
`, srv.Endpoint, out))
	p := harness.Start(t, "--data-dir", filepath.Join(dir, "data"), cfg)
	metric := func(name string) float64 {
		m, err := p.Metrics()
		if err != nil {
			return -1
		}
		return harness.Sum(m, name)
	}
	quality := func(q string, after time.Time) int {
		return countWhere(harness.ReadJSONL[jsonPoint](t, out), func(pt jsonPoint) bool { return pt.Quality == q && pt.TS.After(after) })
	}
	harness.Eventually(t, 30*time.Second, func() bool {
		return quality("good", time.Time{}) >= 10 && metric("flowd_opcua_connected") == 1 && readyz(t, p) == 200
	}, "no points from the private server")

	if err := srv.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	// Bound: keepalive_count (5) × 200ms + watchdog_timeout (3s) + slack.
	harness.Eventually(t, 15*time.Second, func() bool {
		pts := harness.ReadJSONL[jsonPoint](t, out)
		return countWhere(pts, func(pt jsonPoint) bool { return pt.Quality == "bad" && pt.Tag == "counter" }) >= 1 &&
			countWhere(pts, func(pt jsonPoint) bool { return pt.Quality == "bad" && pt.Tag == "double" }) >= 1 &&
			metric("flowd_opcua_connected") == 0 && readyz(t, p) == 503
	}, "the hung server went unnoticed: no bad points, flowd_opcua_connected stays 1 or /readyz 200")
	detected := time.Since(stopped)
	t.Logf("hung server detected after %s", detected.Round(100*time.Millisecond))
	if n := metric("flowd_opcua_watchdog_timeouts_total"); n != 1 {
		t.Errorf("flowd_opcua_watchdog_timeouts_total = %v, want 1", n)
	}
	// While it stays hung the source keeps trying, spaced by the backoff
	// (each attempt also waits request_timeout for an answer).
	time.Sleep(8 * time.Second)
	r := metric("flowd_opcua_reconnects_total")
	if r < 2 || r > 8 {
		t.Errorf("flowd_opcua_reconnects_total = %v after 8s of a hung server, want a few attempts (2–8)", r)
	}
	if readyz(t, p) != 503 {
		t.Error("/readyz is not 503 while the server hangs")
	}

	if err := srv.Cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	harness.Eventually(t, 30*time.Second, func() bool {
		return quality("good", resumed) >= 10 && metric("flowd_opcua_connected") == 1 && readyz(t, p) == 200
	}, "no recovery after SIGCONT")
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("flowd exit code %d", code)
	}
	pts := harness.ReadJSONL[jsonPoint](t, out)
	for _, tag := range []string{"counter", "double"} {
		var seq []string
		for _, pt := range pts {
			if pt.Tag == tag && (len(seq) == 0 || seq[len(seq)-1] != pt.Quality) {
				seq = append(seq, pt.Quality)
			}
		}
		if strings.Join(seq, ",") != "good,bad,good" {
			t.Errorf("%s: quality sequence %v, want good → bad → good", tag, seq)
		}
	}
}

// TestOPCUAAuthRefusedBacksOff runs two sources against a private asyncua
// server that trusts only one client certificate: one source with that
// certificate and a wrong password, one whose own (generated) certificate
// the server distrusts. Each login refusal is logged once with the
// auth_retry delay (default 5m) instead of being retried every reconnect_max;
// the certificate error names flowd's certificate file and its thumbprint.
func TestOPCUAAuthRefusedBacksOff(t *testing.T) {
	concurrent(t)
	dir := t.TempDir()
	trust := filepath.Join(dir, "client-trust")
	if err := os.MkdirAll(trust, 0o755); err != nil {
		t.Fatal(err)
	}
	der, key, err := uacommon.GenerateCert("urn:flowd:client", "flowd e2e", []string{"localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certFile := harness.WriteFile(t, dir, "client.der", string(der))
	keyFile := harness.WriteFile(t, dir, "client.pem", string(uacommon.KeyPEM(key)))
	harness.WriteFile(t, trust, "client.der", string(der))
	srv := startInterop(t, "--client-trust", trust)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	eps, err := gopcua.GetEndpoints(ctx, srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	thumb := ""
	for _, e := range eps {
		if len(e.ServerCertificate) > 0 {
			thumb = uacommon.Thumbprint(e.ServerCertificate)
		}
	}
	out := filepath.Join(dir, "out.jsonl")
	cfg := harness.WriteFile(t, dir, "auth.hcl", fmt.Sprintf(`
pipeline "auth" {
  source "opcua" "wrongpw" {
    endpoint          = %[1]q
    security_policy   = "Basic256Sha256"
    security_mode     = "SignAndEncrypt"
    trust_server_cert = %[2]q
    certificate       = %[3]q
    private_key       = %[4]q
    username          = "operator"
    password          = "nope"
    reconnect_min     = "200ms"
    reconnect_max     = "500ms"
    nodes = { counter = "ns=2;s=Interop.Counter" }
  }
  source "opcua" "distrusted" {
    endpoint          = %[1]q
    security_policy   = "Basic256Sha256"
    security_mode     = "SignAndEncrypt"
    trust_server_cert = %[2]q
    reconnect_min     = "200ms"
    reconnect_max     = "500ms"
    nodes = { counter = "ns=2;s=Interop.Counter" }
  }
  source "opcua" "good" {
    endpoint          = %[1]q
    security_policy   = "Basic256Sha256"
    security_mode     = "SignAndEncrypt"
    trust_server_cert = %[2]q
    certificate       = %[3]q
    private_key       = %[4]q
    username          = "operator"
    password          = "s3cret"
    asset             = "good"
    nodes = { counter = "ns=2;s=Interop.Counter" }
  }
  sink "file" "out" {
    inputs = [source.wrongpw, source.distrusted, source.good]
    path   = %[5]q
  }
}
`, srv.Endpoint, thumb, certFile, keyFile, out))
	data := filepath.Join(dir, "data")
	p := harness.Start(t, "--data-dir", data, cfg)
	// The trusted certificate with the right password works: the refusals
	// below are about identity, not the endpoint.
	harness.Eventually(t, 30*time.Second, func() bool {
		return countWhere(harness.ReadJSONL[jsonPoint](t, out), func(pt jsonPoint) bool { return pt.Asset == "good" }) >= 5 &&
			len(errorLines(p.Stderr.String())["source.wrongpw"]) > 0 && len(errorLines(p.Stderr.String())["source.distrusted"]) > 0
	}, "points from the good source and errors from the refused ones")
	// With reconnect_max 500ms the old behaviour makes ~20 attempts here.
	time.Sleep(8 * time.Second)
	m, err := p.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("flowd exit code %d", code)
	}
	lines := errorLines(p.Stderr.String())
	for _, src := range []string{"wrongpw", "distrusted"} {
		got := lines["source."+src]
		if len(got) != 1 {
			t.Errorf("%s: %d login attempts in 8s, want 1 (then auth_retry): %q", src, len(got), got)
			continue
		}
		if !strings.Contains(got[0], "next attempt in 4m") && !strings.Contains(got[0], "next attempt in 5m0s") || !strings.Contains(got[0], "(auth_retry)") {
			t.Errorf("%s: error %q does not say when it tries again", src, got[0])
		}
		t.Logf("%s: %s", src, got[0])
		if r := harness.Sum(m, "flowd_opcua_reconnects_total", "component=source."+src); r != 1 {
			t.Errorf("%s: flowd_opcua_reconnects_total = %v, want 1", src, r)
		}
	}
	if got := lines["source.wrongpw"]; len(got) > 0 && !strings.Contains(got[0], "wrong username or password") {
		t.Errorf("wrongpw: %q does not say wrong username or password", got[0])
	}
	own := filepath.Join(data, "pki", "opcua", "own", "cert.der")
	ownDER, err := os.ReadFile(own)
	if err != nil {
		t.Fatal(err)
	}
	if got := lines["source.distrusted"]; len(got) > 0 && (!strings.Contains(got[0], own) || !strings.Contains(got[0], uacommon.Thumbprint(ownDER))) {
		t.Errorf("distrusted: %q does not name %s and its thumbprint %s", got[0], own, uacommon.Thumbprint(ownDER))
	}
	if n := countWhere(harness.ReadJSONL[jsonPoint](t, out), func(pt jsonPoint) bool { return pt.Asset != "good" }); n != 0 {
		t.Errorf("%d points from refused sources", n)
	}
}
