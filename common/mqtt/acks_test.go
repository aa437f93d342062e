package mqtt

import (
	"bufio"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
)

// tcpPair is a loopback TCP connection: the client side wrapped as the
// subscriber's connection is (paho writes to the bufferedConn, which hands
// each packet whole to the coalescingConn), the server side read as a broker
// would.
func tcpPair(t *testing.T) (*bufferedConn, *coalescingConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv := <-acc
	if srv == nil {
		t.Fatal("accept failed")
	}
	c := newCoalescingConn(raw)
	b := newBufferedConn(raw, c)
	t.Cleanup(func() { b.Close(); srv.Close() })
	return b, c, srv
}

// paho writes a packet as several Write calls (header, then body) from
// several goroutines (acks, pings, publishes): each packet must arrive whole.
func TestCoalescingConnKeepsPacketsWhole(t *testing.T) {
	c, _, srv := tcpPair(t)
	const writers, each = 4, 2000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				var err error
				if w == 0 && i%10 == 0 {
					_, err = packets.NewControlPacket(packets.PINGREQ).WriteTo(c)
				} else {
					_, err = (&packets.Puback{PacketID: uint16(w*each + i + 1), Properties: &packets.Properties{}}).WriteTo(c)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	r := bufio.NewReader(srv)
	_ = srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	for n := 0; n < writers*each; n++ {
		cp, err := packets.ReadPacket(r)
		if err != nil {
			t.Fatalf("packet %d: %v", n, err)
		}
		if cp.Type != packets.PUBACK && cp.Type != packets.PINGREQ {
			t.Fatalf("packet %d: type %d: packets interleaved", n, cp.Type)
		}
	}
}

// Flush returns once every marked ack is on the socket, not before: the
// broker side has read all of them when it returns.
func TestAckConnFlushWaitsForMarkedAcks(t *testing.T) {
	w, c, srv := tcpPair(t)
	a := &AckConn{c: c}
	const n = 500
	for range n {
		a.Mark()
	}
	got := make(chan int, 1)
	go func() {
		r := bufio.NewReader(srv)
		k := 0
		for k < n {
			cp, err := packets.ReadPacket(r)
			if err != nil {
				break
			}
			if cp.Type == packets.PUBACK {
				k++
			}
		}
		got <- k
	}()
	// paho writes marked acks later, from its own timer.
	go func() {
		time.Sleep(50 * time.Millisecond)
		for i := range n {
			_, _ = (&packets.Puback{PacketID: uint16(i + 1), Properties: &packets.Properties{}}).WriteTo(w)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 40*time.Millisecond {
		t.Fatal("Flush returned before the acks were written")
	}
	c.mu.Lock()
	acks, queued, sent := c.acks, c.queued, c.sent
	c.mu.Unlock()
	if acks != n || sent != queued {
		t.Fatalf("after Flush: %d acks queued, %d of %d bytes sent", acks, sent, queued)
	}
	select {
	case k := <-got:
		if k != n {
			t.Fatalf("broker side read %d PUBACKs, want %d", k, n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("broker side did not read every PUBACK")
	}
	// An ack never marked holds back those after it: Flush gives up with ctx.
	a.Mark()
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if err := a.Flush(short); err == nil {
		t.Fatal("Flush of an ack never written returned nil")
	}
}
