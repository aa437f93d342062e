package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair of the given size.
func openPTY(t *testing.T, rows, cols uint16) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatalf("open pts: %v", err)
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatalf("set window size: %v", err)
	}
	return m, s
}

type screenBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *screenBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// runOnPTY runs `flowd run pipe` with stdout and stderr on a new
// pseudo-terminal of the given size and collects what it writes. stop sends
// SIGTERM, fails the test unless flowd exits 0 within 30 s, and returns all
// that was written.
func runOnPTY(t *testing.T, rows, cols uint16, pipe string) (screen *screenBuffer, stop func() string) {
	t.Helper()
	master, tty := openPTY(t, rows, cols)
	t.Cleanup(func() { master.Close() })
	cmd := exec.Command(harness.Flowd(t), "run", "--http", fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t)), pipe)
	cmd.Stdout, cmd.Stderr = tty, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close() // the child holds it now
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	})

	screen = &screenBuffer{}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			screen.mu.Lock()
			screen.b.Write(buf[:n])
			screen.mu.Unlock()
			if err != nil {
				return // EIO once the child has closed the terminal
			}
		}
	}()
	return screen, func() string {
		t.Helper()
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("flowd exited %d:\n%s", ee.ExitCode(), screen.String())
			} else if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("flowd did not stop on SIGTERM")
		}
		select {
		case <-readDone:
		case <-time.After(5 * time.Second):
		}
		return screen.String()
	}
}

// TestRunOnATerminal runs the real binary with its stderr on a
// pseudo-terminal: the live status line per pipeline appears and is redrawn
// in place, and the logs are text, not JSON.
func TestRunOnATerminal(t *testing.T) {
	concurrent(t)
	dir := t.TempDir()
	pipe := harness.WriteFile(t, dir, "tty.hcl", `
pipeline "tty" {
  source "sim" "plant" {
    assets   = 2
    tags     = 5
    interval = "100ms"
  }
  sink "discard" "null" {
    inputs = [source.plant]
  }
}

pipeline "second" {
  source "sim" "line" {
    interval = "200ms"
  }
  sink "discard" "null" {
    inputs = [source.line]
  }
}
`)
	screen, stop := runOnPTY(t, 30, 100, pipe)

	live := regexp.MustCompile(`tty\s+in\s+[1-9]\d*/s\s+out\s+[1-9]\d*/s\s+p99\s+\d+ms\s+backlog\s+\d+\s+ok`)
	second := regexp.MustCompile(`second\s+in\s+[1-9]`)
	harness.Eventually(t, 30*time.Second, func() bool {
		s := screen.String()
		return live.MatchString(s) && second.MatchString(s) && strings.Count(s, "\033[J") >= 2
	}, "no redrawn status lines for both pipelines on the terminal:\n%q", screen.String())

	out := stop()
	if strings.Contains(out, `{"time"`) {
		t.Errorf("JSON logs on a terminal:\n%s", out)
	}
	if !strings.Contains(out, `msg="flowd stopped"`) {
		t.Errorf("no text log of the stop:\n%s", out)
	}
	// the status lines were erased before the last record: it ends the output
	last := out[strings.LastIndex(out, "\033[J")+len("\033[J"):]
	if live.MatchString(last) {
		t.Errorf("status lines left on screen after exit: %q", last)
	}
}

// TestStdoutSinkBesideStatusLine runs a stdout sink with stdout and stderr on
// the same pseudo-terminal: every printed point starts on a line of its own
// (after a newline, or where the status lines were just erased) and is whole,
// never glued to a status line, while the status lines keep being redrawn.
func TestStdoutSinkBesideStatusLine(t *testing.T) {
	concurrent(t)
	dir := t.TempDir()
	pipe := harness.WriteFile(t, dir, "console.hcl", `
pipeline "console" {
  source "sim" "plant" {
    assets   = 2
    tags     = 3
    interval = "100ms"
  }
  sink "stdout" "console" {
    inputs = [source.plant]
    format = "json"
  }
}
`)
	screen, stop := runOnPTY(t, 30, 160, pipe)

	live := regexp.MustCompile(`console\s+in\s+[1-9]\d*/s\s+out\s+[1-9]\d*/s`)
	harness.Eventually(t, 30*time.Second, func() bool {
		s := screen.String()
		return len(live.FindAllString(s, -1)) >= 3 && strings.Count(s, `{"asset"`) >= 50
	}, "no status lines redrawn three times beside 50 printed points:\n%q", screen.String())
	out := stop()
	points := 0
	for i := 0; ; {
		j := strings.Index(out[i:], `{"asset"`)
		if j < 0 {
			break
		}
		at := i + j
		before := out[max(0, at-40):at]
		if !strings.HasSuffix(before, "\n") && !strings.HasSuffix(before, "\033[J") {
			t.Fatalf("a point does not start a line; it follows %q", before)
		}
		end := strings.IndexByte(out[at:], '\n')
		if end < 0 {
			t.Fatalf("a point's line never ends: %q", out[at:])
		}
		line := strings.TrimRight(out[at:at+end], "\r")
		if strings.Contains(line, "\033") || !strings.HasSuffix(line, "}") {
			t.Fatalf("a point's line is mixed with the status line: %q", line)
		}
		points++
		i = at + end
	}
	t.Logf("%d points, each on its own line, beside %d status redraws", points, strings.Count(out, "\033[J"))
}
