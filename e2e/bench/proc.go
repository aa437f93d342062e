package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is a helper process (simulator, publisher, peer) with its output.
type child struct {
	cmd *exec.Cmd
	out strings.Builder
}

func startChild(name string, argv []string, logw io.Writer) (*child, error) {
	c := &child{cmd: exec.Command(name, argv...)}
	c.cmd.Stdout = &c.out
	c.cmd.Stderr = logw
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s %v: %w", name, argv, err)
	}
	return c, nil
}

// stop ends the child with SIGTERM (SIGKILL after grace) and waits.
func (c *child) stop(grace time.Duration) {
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		c.cmd.Process.Kill()
		<-done
	}
}

// published parses a publisher's "published N values" line.
func (c *child) published() (int64, bool) {
	for _, line := range strings.Split(c.out.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "published "); ok {
			n, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// consecutivePorts finds n free loopback ports in a row.
func consecutivePorts(n int) ([]int, error) {
	for try := 0; try < 50; try++ {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		_, p, _ := net.SplitHostPort(addr)
		base, _ := strconv.Atoi(p)
		ports := []int{base}
		for i := 1; i < n; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				break
			}
			l.Close()
			ports = append(ports, base+i)
		}
		if len(ports) == n {
			return ports, nil
		}
	}
	return nil, errors.New("no consecutive free ports")
}

func waitPorts(ctx context.Context, ports []int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, p := range ports {
		for {
			d := net.Dialer{Timeout: time.Second}
			c, err := d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("simulator did not listen on port %d: %v", p, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// procCPU returns a process's user+system CPU time in seconds.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may contain spaces) in parentheses.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

// procPeakRSS returns VmHWM in bytes.
func procPeakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024, nil
		}
	}
	return 0, errors.New("no VmHWM")
}
