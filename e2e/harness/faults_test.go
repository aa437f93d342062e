package harness

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// echoServer answers every line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn) (time.Duration, error) {
	start := time.Now()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, err
	}
	if line != "ping\n" {
		return 0, io.ErrUnexpectedEOF
	}
	return time.Since(start), nil
}

func TestFaultProxy(t *testing.T) {
	p := NewFaultProxy(t, "echo", echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := roundTrip(c); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}

	remove := p.Latency(300*time.Millisecond, 0)
	d, err := roundTrip(c)
	if err != nil || d < 550*time.Millisecond {
		t.Fatalf("with 300 ms latency each way: round trip %s, %v", d, err)
	}
	remove()

	p.ResetPeer(0)
	if _, err := roundTrip(c); err == nil {
		t.Fatal("reset_peer left the connection working")
	}

	p.Down()
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("dial succeeded while the proxy is down")
	}
	p.Up()
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatalf("after Up: %v", err)
	}
	defer c2.Close()
	if _, err := roundTrip(c2); err == nil {
		t.Fatal("reset_peer was dropped by Down/Up")
	}
}

func TestFaultProxyCutSchedule(t *testing.T) {
	p := NewFaultProxy(t, "cuts", echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := p.CutSchedule(200*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond)
	time.Sleep(150 * time.Millisecond) // inside the first cut
	if _, err := roundTrip(c); err == nil {
		t.Fatal("a connection open before the cut still works during it")
	}
	if n := stop(); n != 1 {
		t.Fatalf("%d cuts reported while the first was under way, want 1", n)
	}
	if c2, err := net.DialTimeout("tcp", p.Addr(), time.Second); err != nil {
		t.Fatalf("the proxy is not back up after the schedule stopped: %v", err)
	} else {
		c2.Close()
	}
	if n := p.CutSchedule(time.Millisecond, time.Hour)(); n != 0 {
		t.Fatalf("a schedule stopped before its first cut reports %d cuts", n)
	}
}
