package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// pinServer gives the server listening on server (the database) CPU 0, and
// this process — and so the flowd processes it starts, which inherit it —
// with the servers at withClient (the broker feeding them) CPU 1, for a
// benchmark that compares a client with another client of the same server:
// unpinned, the kernel shares two cores among all of them and the ratio
// measures its scheduling as much as the clients. Pinned, the server's core
// is the limit as on a cluster whose database has nodes of its own, and a
// client that keeps up reaches the server's rate. Every thread is unpinned
// again when b ends. It skips b on a machine with fewer than two CPUs.
func pinServer(b *testing.B, server string, withClient ...string) {
	if runtime.NumCPU() < 2 {
		b.Skip("pinning needs two CPUs")
	}
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		b.Fatal(err)
	}
	var onServer, onClient unix.CPUSet
	onServer.Set(0)
	onClient.Set(1)
	sets := map[int]unix.CPUSet{os.Getpid(): onClient}
	for i, a := range append([]string{server}, withClient...) {
		pid, err := listenerPID(a)
		if err != nil {
			b.Fatal(err)
		}
		sets[pid] = onClient
		if i == 0 {
			sets[pid] = onServer
		}
	}
	b.Cleanup(func() {
		for pid := range sets {
			if err := setAffinity(pid, all); err != nil {
				b.Errorf("unpin %d: %v", pid, err)
			}
		}
	})
	for pid, set := range sets {
		if err := setAffinity(pid, set); err != nil {
			b.Fatalf("pin %d: %v", pid, err)
		}
	}
}

// setAffinity sets the CPUs of every thread of pid (threads it starts later
// inherit them from the thread that starts them).
func setAffinity(pid int, set unix.CPUSet) error {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	return nil
}

// listenerPID finds the process listening on addr's TCP port (IPv4 or
// IPv6), from /proc/net/tcp* and the processes' sockets.
func listenerPID(addr string) (int, error) {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return 0, err
	}
	inode, err := listenInode(port)
	if err != nil {
		return 0, err
	}
	want := "socket:[" + inode + "]"
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && l == want {
			return strconv.Atoi(strings.Split(fd, "/")[2])
		}
	}
	return 0, fmt.Errorf("no process holds the socket listening on %s", addr)
}

func listenInode(port int) (string, error) {
	local := fmt.Sprintf(":%04X", port)
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			return "", err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fs := strings.Fields(sc.Text())
			if len(fs) > 9 && strings.HasSuffix(fs[1], local) && fs[3] == "0A" {
				f.Close()
				return fs[9], nil
			}
		}
		f.Close()
	}
	return "", fmt.Errorf("nothing listens on port %d", port)
}
