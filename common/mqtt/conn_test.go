package mqtt

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the write calls that reach the connection and can be
// made slow, as a socket under load is.
type countingConn struct {
	net.Conn
	writes atomic.Int64
	delay  time.Duration
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	time.Sleep(c.delay)
	return c.Conn.Write(p)
}

func TestCoalescingConnKeepsOrderInFewerWrites(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	under := &countingConn{Conn: client, delay: 200 * time.Microsecond}
	c := newCoalescingConn(under)
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(server)
		got <- b
	}()
	var want bytes.Buffer
	const n = 5000
	for i := range n {
		pkt := []byte{0x40, 0x02, byte(i >> 8), byte(i)} // a PUBACK
		want.Write(pkt)
		if _, err := c.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("bytes differ: got %d, want %d", len(b), want.Len())
	}
	w := under.writes.Load()
	t.Logf("%d packets in %d writes", n, w)
	if w >= n/10 {
		t.Errorf("%d writes for %d packets: not coalesced", w, n)
	}
	if _, err := c.Write([]byte{1}); err == nil {
		t.Error("write after close should fail")
	}
}

func TestCoalescingConnReportsWriteErrors(t *testing.T) {
	client, server := net.Pipe()
	c := newCoalescingConn(client)
	defer c.Close()
	server.Close() // the peer is gone: the flushing write fails
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for err == nil && time.Now().Before(deadline) {
		_, err = c.Write([]byte("x"))
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("want the connection's write error, got %v", err)
	}
}

// Close does not hang on a peer that stopped reading.
func TestCoalescingConnCloseBounded(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	c := newCoalescingConn(client)
	if _, err := c.Write(make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %s", d)
	}
}

func BenchmarkCoalescingConnPubacks(b *testing.B) {
	for _, coalesce := range []bool{false, true} {
		name := "direct"
		if coalesce {
			name = "coalesced"
		}
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				s, err := ln.Accept()
				if err == nil {
					io.Copy(io.Discard, s)
					s.Close()
				}
			}()
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			var conn net.Conn = raw
			if coalesce {
				conn = newCoalescingConn(raw)
			}
			pkt := []byte{0x40, 0x02, 0x00, 0x01}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := conn.Write(pkt); err != nil {
					b.Fatal(err)
				}
			}
			conn.Close()
		})
	}
}
