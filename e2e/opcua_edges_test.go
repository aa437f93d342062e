package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
// accepts connections. It is killed (and continued first, if stopped) when
// the test ends.
func startInterop(t *testing.T, args ...string) *interopServer {
	t.Helper()
	harness.Require(t, "FLOWD_TEST_OPCUA_INTEROP") // the install exists
	py := os.Getenv("FLOWD_TEST_OPCUA_PYTHON")
	if py == "" {
		cache := os.Getenv("FLOWD_CACHE")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache", "flowd")
		}
		py = filepath.Join(cache, "asyncua-1.1.5", "bin", "python")
	}
	if _, err := os.Stat(py); err != nil {
		t.Skipf("asyncua python not found (%v): run e2e/services.sh up opcua", err)
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
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	harness.Eventually(t, 60*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "private asyncua server on %s did not start", addr)
	return &interopServer{Endpoint: "opc.tcp://" + addr, Cmd: cmd}
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
