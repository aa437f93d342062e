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
	"github.com/flowd/flowd/engine"
)

// opcuaComponent is source id's status, from /api/status.
func opcuaComponent(t *testing.T, p *harness.Proc, id string) (engine.ComponentStatus, bool) {
	t.Helper()
	st, err := p.Status()
	if err != nil {
		return engine.ComponentStatus{}, false
	}
	for _, ps := range st.Pipelines {
		for _, c := range ps.Components {
			if c.ID == id {
				return c, true
			}
		}
	}
	return engine.ComponentStatus{}, false
}

// silentServer accepts TCP connections and never answers: an OPC UA server
// that hangs, or a firewall that holds the handshake.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return ln.Addr().String()
}

// An OPC UA source that cannot reach its server says so in /api/status
// within seconds (state reconnecting, the connection error as last_error,
// no secret in it), never claims connected before a session reads, and
// clears the error once connected: with nothing listening, a PLC started
// late, the PLC killed mid-run and started again, and a server that never
// answers.
func TestOPCUAStatusWhileUnreachable(t *testing.T) {
	concurrent(t)
	dir := t.TempDir()
	ep := fmt.Sprintf("opc.tcp://127.0.0.1:%d", harness.FreePort(t))
	const secret = "s3cret-pw"
	hung := fmt.Sprintf("opc.tcp://operator:%s@%s", secret, silentServer(t))
	cfg := harness.WriteFile(t, dir, "status.hcl", fmt.Sprintf(`
pipeline "status" {
  source "opcua" "plc" {
    endpoint        = %q
    mode            = "poll"
    interval        = "200ms"
    request_timeout = "1s"
    reconnect_min   = "200ms"
    reconnect_max   = "1s"
    nodes = { Tag1 = "ns=2;s=Asset1.Tag1" }
  }
  source "opcua" "hung" {
    endpoint        = %q
    mode            = "poll"
    request_timeout = "2s"
    reconnect_min   = "200ms"
    reconnect_max   = "1s"
    nodes = { Tag1 = "ns=2;s=Asset1.Tag1" }
  }
  sink "file" "out" {
    inputs = [source.plc, source.hung]
    path   = %q
  }
}
`, ep, hung, filepath.Join(dir, "out.jsonl")))
	p := harness.Start(t, "--data-dir", filepath.Join(dir, "data"), cfg)
	start := time.Now()

	// The hung server's source: never connected, the timeout shown once the
	// first attempt gives up, the endpoint's password nowhere.
	hungDone := make(chan string, 1)
	go func() {
		for time.Since(start) < 10*time.Second {
			c, ok := opcuaComponent(t, p, "source.hung")
			switch {
			case ok && c.State == engine.StateConnected:
				hungDone <- "reported connected to a server that never answered"
				return
			case ok && c.State == engine.StateConnecting && c.LastError != "":
				if strings.Contains(c.LastError, secret) {
					hungDone <- "last_error shows the password: " + c.LastError
				} else {
					t.Logf("source.hung after %s: %s %q", time.Since(start).Round(time.Millisecond), c.State, c.LastError)
					hungDone <- ""
				}
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		hungDone <- "no connection error shown within 10s"
	}()

	wantError := func(what, contains string) {
		t.Helper()
		last := &lastSeen{}
		harness.Eventually(t, 5*time.Second, func() bool {
			c, ok := opcuaComponent(t, p, "source.plc")
			last.c = c
			return ok && c.State == engine.StateConnecting && c.LastError != "" && strings.Contains(c.LastError, contains)
		}, "%s: state reconnecting with an error containing %q (last: %v)", what, contains, last)
	}
	wantConnected := func(what string) {
		t.Helper()
		last := &lastSeen{}
		harness.Eventually(t, 20*time.Second, func() bool {
			c, ok := opcuaComponent(t, p, "source.plc")
			last.c = c
			return ok && c.State == engine.StateConnected && c.LastError == ""
		}, "%s: state connected with no last_error (last: %v)", what, last)
	}

	wantError("nothing listening", "connection refused")
	if msg := <-hungDone; msg != "" {
		t.Error("source.hung: " + msg)
	}
	plc := startPLC(t, ep)
	wantConnected("PLC started")
	plc.Process.Signal(syscall.SIGKILL)
	plc.Wait()
	wantError("PLC killed", "") // the read fails: EOF, reset or timeout
	startPLC(t, ep)
	wantConnected("PLC started again")
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// lastSeen prints the status a wait saw last, for its failure message.
type lastSeen struct{ c engine.ComponentStatus }

func (l *lastSeen) String() string { return fmt.Sprintf("%s %q", l.c.State, l.c.LastError) }

// startPLC runs a private simulated PLC (flowd sim plc) at ep, killed when
// the test ends.
func startPLC(t *testing.T, ep string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(harness.Flowd(t), "sim", "plc", "--listen", ep, "--assets", "1", "--tags", "2", "--interval", "200ms")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}
