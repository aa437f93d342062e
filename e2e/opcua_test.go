package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
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
	"github.com/flowd/flowd/engine"
	simplc "github.com/flowd/flowd/sim/plc"
)

// jsonPoint is a point as the file sink writes it.
type jsonPoint struct {
	Asset   string    `json:"asset"`
	Tag     string    `json:"tag"`
	Value   any       `json:"value"`
	Quality string    `json:"quality"`
	TS      time.Time `json:"ts"`
}

func countWhere(pts []jsonPoint, f func(jsonPoint) bool) int {
	n := 0
	for _, p := range pts {
		if f(p) {
			n++
		}
	}
	return n
}

// plcValue is how flowd renders a value the simulated PLC wrote.
func plcValue(x any) engine.Value {
	v, _ := uacommon.Scalar(x)
	return v
}

func startSimPLC(t *testing.T, cfg simplc.Config) *simplc.PLC {
	t.Helper()
	cfg.Listen = fmt.Sprintf("opc.tcp://127.0.0.1:%d", harness.FreePort(t))
	p, err := simplc.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestOPCUASimPLC checks flowd's view against the simulated PLC's own record
// of what it wrote: subscribe mode sees every value, poll mode the current
// value at each poll.
func TestOPCUASimPLC(t *testing.T) {
	concurrent(t)
	plc := startSimPLC(t, simplc.Config{Assets: 2, Tags: 10, Interval: 500 * time.Millisecond, Change: 0.5, Record: true})
	dir := t.TempDir()
	var nodes []string
	for g := 0; g < 5; g++ {
		nodes = append(nodes, fmt.Sprintf("    t%d = %q", g, plc.NodeID(0, g)))
	}
	cfg := harness.WriteFile(t, dir, "plc.hcl", fmt.Sprintf(`
pipeline "plc" {
  source "opcua" "sub" {
    endpoint   = %[1]q
    mode       = "subscribe"
    interval   = "100ms"
    queue_size = 10
    browse {
      include = ["Asset*/*"]
    }
  }
  source "opcua" "poll" {
    endpoint = %[1]q
    mode     = "poll"
    interval = "100ms"
    asset    = "polled"
    nodes = {
%[2]s
    }
  }
  sink "file" "sub" {
    inputs = [source.sub]
    path   = %[3]q
  }
  sink "file" "poll" {
    inputs = [source.poll]
    path   = %[4]q
  }
}
`, plc.Endpoint(), strings.Join(nodes, "\n"), filepath.Join(dir, "sub.jsonl"), filepath.Join(dir, "poll.jsonl")))
	p := harness.Start(t, "--data-dir", filepath.Join(dir, "data"), cfg)
	harness.Eventually(t, 30*time.Second, func() bool {
		return len(harness.ReadJSONL[jsonPoint](t, filepath.Join(dir, "sub.jsonl"))) > 0 && len(harness.ReadJSONL[jsonPoint](t, filepath.Join(dir, "poll.jsonl"))) > 0
	}, "no points from the simulated PLC")
	time.Sleep(5 * time.Second)
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("flowd exit code %d", code)
	}

	t.Run("subscribe sees every write", func(t *testing.T) {
		pts := harness.ReadJSONL[jsonPoint](t, filepath.Join(dir, "sub.jsonl"))
		seen := map[string]map[int64]engine.Value{}
		first := map[string]int64{}
		var last int64
		for _, pt := range pts {
			k := pt.Asset + "/" + pt.Tag
			if seen[k] == nil {
				seen[k] = map[int64]engine.Value{}
				first[k] = pt.TS.UnixNano()
			}
			seen[k][pt.TS.UnixNano()] = engine.ValueOf(pt.Value)
			last = max(last, pt.TS.UnixNano())
		}
		if len(seen) != 20 {
			t.Fatalf("browse found %d tags, want 20", len(seen))
		}
		total, missing := 0, 0
		for a := 0; a < 2; a++ {
			for g := 0; g < 10; g++ {
				k := plc.AssetName(a) + "/" + plc.TagName(g)
				for _, s := range plc.History(plc.NodeID(a, g)) {
					ts := s.TS.UnixNano()
					if ts < first[k] || ts >= last {
						continue // before the subscription, or possibly after the source stopped
					}
					total++
					if v, ok := seen[k][ts]; !ok || !v.Equal(plcValue(s.Value)) {
						missing++
						t.Errorf("%s: value %v written at %s not seen", k, s.Value, s.TS.Format(time.RFC3339Nano))
					}
				}
			}
		}
		if total < 50 {
			t.Fatalf("only %d writes to compare", total)
		}
		t.Logf("subscribe: %d of %d writes seen", total-missing, total)
	})

	t.Run("poll returns the current value", func(t *testing.T) {
		pts := harness.ReadJSONL[jsonPoint](t, filepath.Join(dir, "poll.jsonl"))
		perTag := map[string][]jsonPoint{}
		for _, pt := range pts {
			perTag[pt.Tag] = append(perTag[pt.Tag], pt)
		}
		for g := 0; g < 5; g++ {
			tag := fmt.Sprintf("t%d", g)
			got := perTag[tag]
			if len(got) < 20 {
				t.Fatalf("%s: %d polls, want ≥ 20", tag, len(got))
			}
			hist := plc.History(plc.NodeID(0, g))
			byTS := map[int64]engine.Value{}
			for _, s := range hist {
				byTS[s.TS.UnixNano()] = plcValue(s.Value)
			}
			// A value read again unchanged is stamped when it was observed
			// (docs/architecture.md, latency): it must be the PLC's latest
			// write before that time.
			latestBefore := func(ts int64) (engine.Value, bool) {
				var v engine.Value
				var at int64 = -1
				for _, s := range hist {
					if t := s.TS.UnixNano(); t <= ts && t > at {
						at, v = t, plcValue(s.Value)
					}
				}
				return v, at >= 0
			}
			polledTS := map[int64]bool{}
			for _, pt := range got {
				want, ok := byTS[pt.TS.UnixNano()]
				if !ok {
					want, ok = latestBefore(pt.TS.UnixNano())
				}
				if !ok || !want.Equal(engine.ValueOf(pt.Value)) || pt.Quality != "good" {
					t.Fatalf("%s: polled %v at %s, which the PLC never wrote", tag, pt.Value, pt.TS.Format(time.RFC3339Nano))
				}
				polledTS[pt.TS.UnixNano()] = true
			}
			// polling 5× faster than the PLC writes, every value it held
			// while flowd ran is one some poll returned
			firstTS, lastTS := got[0].TS.UnixNano(), got[len(got)-1].TS.UnixNano()
			for _, s := range hist {
				if ts := s.TS.UnixNano(); ts > firstTS && ts < lastTS && !polledTS[ts] {
					t.Errorf("%s: value %v held from %s was never polled", tag, s.Value, s.TS.Format(time.RFC3339Nano))
				}
			}
		}
	})
}

// TestOPCUAPLCRestart restarts the PLC process mid-run: flowd reconnects by
// itself, recreates its subscription and keeps delivering; the gap shows as
// quality bad.
func TestOPCUAPLCRestart(t *testing.T) {
	concurrent(t)
	dir := t.TempDir()
	ep := fmt.Sprintf("opc.tcp://127.0.0.1:%d", harness.FreePort(t))
	startPLCProc := func() *exec.Cmd {
		cmd := exec.Command(harness.Flowd(t), "sim", "plc", "--listen", ep, "--assets", "1", "--tags", "5", "--interval", "200ms")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	plc := startPLCProc()
	out := filepath.Join(dir, "out.jsonl")
	cfg := harness.WriteFile(t, dir, "restart.hcl", fmt.Sprintf(`
pipeline "restart" {
  source "opcua" "plc" {
    endpoint      = %[1]q
    mode          = "subscribe"
    interval      = "100ms"
    reconnect_min = "200ms"
    reconnect_max = "1s"
    browse {
      include = ["Asset1/*"]
    }
  }
  source "opcua" "poll" {
    endpoint      = %[1]q
    mode          = "poll"
    interval      = "200ms"
    asset         = "polled"
    reconnect_min = "200ms"
    reconnect_max = "1s"
    nodes = {
      Tag1 = "ns=2;s=Asset1.Tag1"
      Tag2 = "ns=2;s=Asset1.Tag2"
    }
  }
  sink "file" "out" {
    inputs = [source.plc, source.poll]
    path   = %[2]q
  }
}
`, ep, out))
	p := harness.Start(t, "--data-dir", filepath.Join(dir, "data"), cfg)
	good := func(after time.Time) int {
		return countWhere(harness.ReadJSONL[jsonPoint](t, out), func(pt jsonPoint) bool { return pt.Quality == "good" && pt.TS.After(after) })
	}
	harness.Eventually(t, 30*time.Second, func() bool { return good(time.Time{}) >= 25 }, "no points before the restart")

	plc.Process.Signal(syscall.SIGKILL)
	plc.Wait()
	down := time.Now()
	harness.Eventually(t, 15*time.Second, func() bool {
		return countWhere(harness.ReadJSONL[jsonPoint](t, out), func(pt jsonPoint) bool { return pt.Quality == "bad" }) >= 7
	}, "tags not marked bad while the PLC is down")
	time.Sleep(time.Second)
	startPLCProc()
	up := time.Now()
	harness.Eventually(t, 30*time.Second, func() bool { return good(up) >= 25 }, "no points after the PLC came back")

	if p.Exited() {
		t.Fatal("flowd exited")
	}
	harness.Eventually(t, 30*time.Second, func() bool {
		return countWhere(harness.ReadJSONL[jsonPoint](t, out), func(pt jsonPoint) bool {
			return pt.Asset == "polled" && pt.Quality == "good" && pt.TS.After(up)
		}) >= 10
	}, "no polled points after the PLC came back")
	pts := harness.ReadJSONL[jsonPoint](t, out)
	for _, asset := range []string{"Asset1", "polled"} {
		for g := 1; g <= 5; g++ {
			tag := fmt.Sprintf("Tag%d", g)
			if asset == "polled" && g > 2 {
				break
			}
			var seq []string
			for _, pt := range pts {
				if pt.Asset == asset && pt.Tag == tag && (len(seq) == 0 || seq[len(seq)-1] != pt.Quality) {
					seq = append(seq, pt.Quality)
				}
			}
			if strings.Join(seq, ",") != "good,bad,good" {
				t.Errorf("%s/%s: quality sequence %v, want good → bad → good", asset, tag, seq)
			}
			for _, pt := range pts {
				if pt.Asset == asset && pt.Tag == tag && pt.Quality == "bad" && (pt.TS.Before(down.Add(-time.Second)) || pt.TS.After(up)) {
					t.Errorf("%s/%s: bad point at %s is outside the outage %s–%s", asset, tag, pt.TS, down, up)
				}
			}
		}
	}
	m, err := p.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if n := harness.Sum(m, "flowd_opcua_reconnects_total"); n < 1 {
		t.Errorf("flowd_opcua_reconnects_total = %v", n)
	}
	if c := harness.Sum(m, "flowd_opcua_connected"); c != 2 {
		t.Errorf("flowd_opcua_connected = %v after the restart", c)
	}
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("flowd exit code %d", code)
	}
}

// TestOPCUAInterop runs flowd against a server that is not gopcua (asyncua):
// value mapping in both modes, and Basic256Sha256 + SignAndEncrypt with a
// password; a wrong password and an untrusted certificate each give one
// clear error line.
func TestOPCUAInterop(t *testing.T) {
	ep := harness.Require(t, "FLOWD_TEST_OPCUA_INTEROP")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	eps, err := gopcua.GetEndpoints(ctx, ep)
	if err != nil {
		t.Fatalf("get endpoints of %s: %v", ep, err)
	}
	thumb := ""
	for _, e := range eps {
		if len(e.ServerCertificate) > 0 {
			thumb = uacommon.Thumbprint(e.ServerCertificate)
		}
	}
	if thumb == "" {
		t.Fatal("the interop server sent no certificate")
	}
	dir := t.TempDir()
	secure := func(name, user, pass, trust string) string {
		trustLine := ""
		if trust != "" {
			trustLine = fmt.Sprintf("trust_server_cert = %q", trust)
		}
		return fmt.Sprintf(`
  source "opcua" %q {
    endpoint        = %q
    mode            = "poll"
    interval        = "200ms"
    asset           = %q
    security_policy = "Basic256Sha256"
    security_mode   = "SignAndEncrypt"
    username        = %q
    password        = %q
    reconnect_min   = "1s"
    reconnect_max   = "2s"
    %s
    nodes = { counter = "ns=2;s=Interop.Counter" }
  }`, name, ep, name, user, pass, trustLine)
	}
	userDER, userKey, err := uacommon.GenerateCert("urn:flowd:e2e:user", "e2e user", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	userCert := harness.WriteFile(t, dir, "user.der", string(userDER))
	userKeyFile := harness.WriteFile(t, dir, "user.pem", string(uacommon.KeyPEM(userKey)))
	x509Source := fmt.Sprintf(`
  source "opcua" "x509" {
    endpoint          = %q
    mode              = "poll"
    interval          = "200ms"
    asset             = "x509"
    security_policy   = "Basic256Sha256"
    security_mode     = "SignAndEncrypt"
    user_certificate  = %q
    user_private_key  = %q
    trust_server_cert = %q
    nodes = { counter = "ns=2;s=Interop.Counter" }
  }`, ep, userCert, userKeyFile, thumb)
	cfg := harness.WriteFile(t, dir, "interop.hcl", fmt.Sprintf(`
pipeline "interop" {
  %[6]s
  source "opcua" "poll" {
    endpoint = %[1]q
    mode     = "poll"
    interval = "200ms"
    browse {
      root = "/2:Interop"
    }
  }
  source "opcua" "sub" {
    endpoint = %[1]q
    mode     = "subscribe"
    interval = "50ms"
    asset    = "sub"
    nodes = { counter = "ns=2;s=Interop.Counter" }
  }
  %[2]s
  %[3]s
  %[4]s
  sink "file" "out" {
    inputs = [source.poll, source.sub, source.secure, source.wrongpw, source.untrusted, source.x509]
    path   = %[5]q
  }
}
`, ep, secure("secure", "operator", "s3cret", thumb), secure("wrongpw", "operator", "nope", thumb),
		secure("untrusted", "operator", "s3cret", ""), filepath.Join(dir, "out.jsonl"), x509Source))
	p := harness.Start(t, "--data-dir", filepath.Join(dir, "data"), cfg)
	out := filepath.Join(dir, "out.jsonl")
	harness.Eventually(t, 30*time.Second, func() bool {
		pts := harness.ReadJSONL[jsonPoint](t, out)
		return countWhere(pts, func(pt jsonPoint) bool { return pt.Asset == "secure" }) >= 10 &&
			countWhere(pts, func(pt jsonPoint) bool { return pt.Asset == "x509" }) >= 5 &&
			countWhere(pts, func(pt jsonPoint) bool { return pt.Asset == "sub" }) >= 20 &&
			countWhere(pts, func(pt jsonPoint) bool { return pt.Tag == "Counter" }) >= 10
	}, "points from the interop server")
	harness.Eventually(t, 15*time.Second, func() bool {
		s := p.Stderr.String()
		return strings.Contains(s, "wrong username or password") && strings.Contains(s, "is not trusted")
	}, "error lines for the wrong password and the untrusted certificate")
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("flowd exit code %d", code)
	}
	pts := harness.ReadJSONL[jsonPoint](t, out)

	t.Run("values", func(t *testing.T) {
		want := map[string]any{"Double": 21.5, "Float": 1.25, "Bool": true, "String": "hello", "UInt64": 12345678901.0,
			"Time": "2026-11-22T10:00:00Z", "Array[0]": 1.5, "Array[1]": 2.5, "Array[2]": 3.5}
		for _, pt := range pts {
			if pt.Asset != "Interop" {
				continue
			}
			if w, ok := want[pt.Tag]; ok {
				if fmt.Sprint(pt.Value) != fmt.Sprint(w) || pt.Quality != "good" {
					t.Errorf("%s = %v (%s), want %v (good)", pt.Tag, pt.Value, pt.Quality, w)
				}
			}
			if pt.Tag == "Bad" && pt.Quality != "bad" {
				t.Errorf("Bad has quality %s", pt.Quality)
			}
		}
		for tag := range want {
			if countWhere(pts, func(pt jsonPoint) bool { return pt.Asset == "Interop" && pt.Tag == tag }) == 0 {
				t.Errorf("no point for %s", tag)
			}
		}
	})

	t.Run("subscribe counter", func(t *testing.T) {
		var last float64 = -1
		n := 0
		for _, pt := range pts {
			if pt.Asset != "sub" {
				continue
			}
			v, _ := pt.Value.(float64)
			if v <= last {
				t.Fatalf("counter went from %v to %v", last, v)
			}
			last = v
			n++
		}
		if n < 20 {
			t.Fatalf("%d counter notifications", n)
		}
	})

	t.Run("security", func(t *testing.T) {
		if n := countWhere(pts, func(pt jsonPoint) bool { return pt.Asset == "secure" && pt.Quality == "good" }); n < 10 {
			t.Errorf("Basic256Sha256/SignAndEncrypt with a password: %d points", n)
		}
		for _, name := range []string{"wrongpw", "untrusted"} {
			if n := countWhere(pts, func(pt jsonPoint) bool { return pt.Asset == name }); n != 0 {
				t.Errorf("%s delivered %d points", name, n)
			}
		}
		lines := errorLines(p.Stderr.String())
		check := func(component, want string) {
			got := lines["source."+component]
			if len(got) == 0 {
				t.Errorf("%s: no error line", component)
				return
			}
			for _, l := range got {
				if !strings.Contains(l, want) {
					t.Errorf("%s: error line %q does not say %q", component, l, want)
				}
			}
			t.Logf("%s: %s", component, got[0])
		}
		check("wrongpw", "wrong username or password")
		check("untrusted", "is not trusted")
		rej, _ := filepath.Glob(filepath.Join(dir, "data", "pki", "opcua", "rejected", "*.der"))
		if len(rej) != 1 {
			t.Errorf("rejected/ holds %v, want the server certificate", rej)
		}
	})
}

// errorLines returns the msg of every ERROR log line, by component.
func errorLines(stderr string) map[string][]string {
	out := map[string][]string{}
	for _, l := range strings.Split(stderr, "\n") {
		var e struct {
			Level, Msg, Component string
		}
		if json.Unmarshal([]byte(l), &e) != nil || e.Level != "ERROR" {
			continue
		}
		out[e.Component] = append(out[e.Component], e.Msg)
	}
	return out
}

// TestOPCUAShardsSplitPLCAssets runs two flowd replicas, shards 0/2 and 1/2,
// with the same configuration against one simulated PLC: they split its
// assets as engine.ShardOf says, nothing the PLC wrote is lost, and nothing
// is read by both.
func TestOPCUAShardsSplitPLCAssets(t *testing.T) {
	concurrent(t)
	const assets, tags = 10, 5
	plc := startSimPLC(t, simplc.Config{Assets: assets, Tags: tags, Interval: 200 * time.Millisecond, Change: 1, Record: true})
	dir := t.TempDir()
	conf := harness.WriteFile(t, dir, "plant.hcl", fmt.Sprintf(`service {
  shard {
    index = env("POD_ORDINAL")
    count = 2
  }
}

pipeline "plant" {
  source "opcua" "plc" {
    endpoint   = %q
    mode       = "subscribe"
    interval   = "100ms"
    queue_size = 10
    browse {
      include = ["Asset*/*"]
    }
  }

  sink "file" "out" {
    inputs = [source.plc]
    path   = env("OUT")
  }
}
`, plc.Endpoint()))
	var procs []*harness.Proc
	var outs []string
	for i := 0; i < 2; i++ {
		out := filepath.Join(dir, fmt.Sprintf("out-%d.jsonl", i))
		outs = append(outs, out)
		procs = append(procs, harness.StartEnv(t, []string{fmt.Sprintf("POD_ORDINAL=%d", i), "OUT=" + out},
			"--data-dir", filepath.Join(dir, fmt.Sprintf("data-%d", i)), conf))
	}
	for _, out := range outs {
		harness.Eventually(t, 30*time.Second, func() bool { return len(harness.ReadJSONL[jsonPoint](t, out)) > 0 }, "%s stays empty", out)
	}
	time.Sleep(4 * time.Second)

	owner := map[string]int{}                   // asset → replica
	seen := map[string]map[int64]engine.Value{} // asset/tag → ts → value, over both replicas
	first := map[string]int64{}
	var last int64 = 1<<63 - 1 // the earliest last point of the two replicas
	for i, p := range procs {
		if code := p.Stop(30 * time.Second); code != 0 {
			t.Fatalf("replica %d: exit code %d", i, code)
		}
		checkNothingLost(t, p, outs[i])
		pts := harness.ReadJSONL[jsonPoint](t, outs[i])
		var replicaLast int64
		for _, pt := range pts {
			if prev, ok := owner[pt.Asset]; ok && prev != i {
				t.Fatalf("%s read by replicas %d and %d", pt.Asset, prev, i)
			}
			owner[pt.Asset] = i
			if want := engine.ShardOf(pt.Asset, 2); want != i {
				t.Fatalf("replica %d read %s, which shard %d owns", i, pt.Asset, want)
			}
			k := pt.Asset + "/" + pt.Tag
			if seen[k] == nil {
				seen[k] = map[int64]engine.Value{}
				first[k] = pt.TS.UnixNano()
			}
			ts := pt.TS.UnixNano()
			if _, dup := seen[k][ts]; dup {
				t.Fatalf("%s at %s read twice", k, pt.TS.Format(time.RFC3339Nano))
			}
			seen[k][ts] = engine.ValueOf(pt.Value)
			replicaLast = max(replicaLast, ts)
		}
		last = min(last, replicaLast)
		t.Logf("replica %d/2: %d points", i, len(pts))
	}
	if len(owner) != assets || len(seen) != assets*tags {
		t.Fatalf("the replicas read %d of %d assets, %d of %d tags", len(owner), assets, len(seen), assets*tags)
	}
	per := [2]int{}
	for _, i := range owner {
		per[i]++
	}
	if per[0] == 0 || per[1] == 0 {
		t.Fatalf("one replica read every asset: %v", per)
	}
	total, missing := 0, 0
	for a := 0; a < assets; a++ {
		for g := 0; g < tags; g++ {
			k := plc.AssetName(a) + "/" + plc.TagName(g)
			for _, s := range plc.History(plc.NodeID(a, g)) {
				ts := s.TS.UnixNano()
				if ts < first[k] || ts >= last {
					continue // before the replica subscribed, or possibly after one stopped
				}
				total++
				if v, ok := seen[k][ts]; !ok || !v.Equal(plcValue(s.Value)) {
					missing++
					if missing <= 10 {
						t.Errorf("%s: value %v written at %s not read by either replica", k, s.Value, s.TS.Format(time.RFC3339Nano))
					}
				}
			}
		}
	}
	if total < assets*tags*5 {
		t.Fatalf("only %d writes to compare", total)
	}
	if missing > 0 {
		t.Fatalf("%d of %d writes lost", missing, total)
	}
	t.Logf("assets per replica %v; %d writes compared, none lost, none read twice", per, total)
}

// A ByteString (de ad be ef 00 7f) and a UInt64 of 18446744073709551615 from
// a server of another stack come out of the real binary unchanged: the bytes
// as base64, the integer with every digit, in poll and subscribe mode and
// through a disk buffer (binary records) into JSON lines.
func TestOPCUAInteropLosslessValues(t *testing.T) {
	ep := startInterop(t).Endpoint
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	cfg := harness.WriteFile(t, dir, "p.hcl", fmt.Sprintf(`pipeline "lossless" {
  source "opcua" "poll" {
    endpoint = %[1]q
    mode     = "poll"
    interval = "200ms"
    asset    = "poll"
    nodes = {
      bytes = "ns=2;s=Interop.ByteString"
      u64   = "ns=2;s=Interop.UInt64Max"
    }
  }
  source "opcua" "sub" {
    endpoint = %[1]q
    mode     = "subscribe"
    interval = "100ms"
    asset    = "sub"
    nodes = {
      bytes = "ns=2;s=Interop.ByteString"
      u64   = "ns=2;s=Interop.UInt64Max"
    }
  }
  sink "file" "out" {
    inputs = [source.poll, source.sub]
    path   = %[2]q
    buffer {
      type = "disk"
    }
  }
}
`, ep, out))
	p := harness.Start(t, "--data-dir", filepath.Join(dir, "data"), cfg)
	type rawPoint struct {
		Asset string          `json:"asset"`
		Tag   string          `json:"tag"`
		Value json.RawMessage `json:"value"`
	}
	harness.Eventually(t, 30*time.Second, func() bool {
		seen := map[string]bool{}
		for _, pt := range harness.ReadJSONL[rawPoint](t, out) {
			seen[pt.Asset+"/"+pt.Tag] = true
		}
		return len(seen) == 4
	}, "both values from both sources")
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	want := map[string]string{"bytes": `"3q2+7wB/"`, "u64": `18446744073709551615`}
	for _, pt := range harness.ReadJSONL[rawPoint](t, out) {
		if string(pt.Value) != want[pt.Tag] {
			t.Errorf("%s/%s = %s, want %s", pt.Asset, pt.Tag, pt.Value, want[pt.Tag])
		}
	}
	b, err := base64.StdEncoding.DecodeString(strings.Trim(want["bytes"], `"`))
	if err != nil || !bytes.Equal(b, []byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0x7f}) {
		t.Fatalf("base64 decodes to % x, %v", b, err)
	}
}
