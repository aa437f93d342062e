package mqtt

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/proxy"
)

// maxPending bounds the bytes a coalescingConn holds before Write waits.
const maxPending = 256 << 10

// coalescingConn coalesces small writes into few system calls: Write
// appends to a buffer and returns, and one goroutine writes whatever has
// accumulated meanwhile in a single call. paho writes each PUBACK on its own
// (one write call per acknowledged message); behind this a flush of a
// thousand acks costs a handful of writes. Writes keep their order. A write
// error is returned by the next Write (and the reader sees the broken
// connection too). It is safe for concurrent use, as paho requires.
type coalescingConn struct {
	net.Conn

	mu      sync.Mutex
	cond    sync.Cond
	buf     []byte
	spare   []byte
	err     error
	closing bool
	done    chan struct{}
	once    sync.Once
	closed  error
	// acks counts PUBACK and PUBREC packets queued; queued and sent count
	// bytes, so AckConn.Flush knows when the acks reached the socket.
	acks   int64
	queued int64
	sent   int64
}

func newCoalescingConn(c net.Conn) *coalescingConn {
	cc := &coalescingConn{Conn: c, done: make(chan struct{})}
	cc.cond.L = &cc.mu
	go cc.flush()
	return cc
}

// Write queues p for the flushing goroutine; it waits only while more than
// maxPending bytes are queued (a peer that stopped reading).
func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.buf) >= maxPending && c.err == nil && !c.closing {
		c.cond.Wait()
	}
	switch {
	case c.err != nil:
		return 0, c.err
	case c.closing:
		return 0, net.ErrClosed
	}
	// bufferedConn writes one whole packet per call: its first byte names
	// the packet's type.
	if len(p) > 0 {
		if t := p[0] >> 4; t == typePuback || t == typePubrec {
			c.acks++
		}
	}
	c.queued += int64(len(p))
	c.buf = append(c.buf, p...)
	c.cond.Broadcast()
	return len(p), nil
}

// flush writes what accumulated, until Close; it ends after writing what was
// queued before Close.
func (c *coalescingConn) flush() {
	defer close(c.done)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for len(c.buf) == 0 && !c.closing {
			c.cond.Wait()
		}
		if len(c.buf) == 0 || c.err != nil {
			return // closing, nothing left, or nothing can be written
		}
		out := c.buf
		c.buf = c.spare[:0]
		c.mu.Unlock()
		n, err := c.Conn.Write(out)
		c.mu.Lock()
		c.sent += int64(n)
		c.spare = out[:0]
		if err != nil {
			c.err = err
			c.buf = nil
		}
		c.cond.Broadcast()
	}
}

// MQTT control packet types (high nibble of the fixed header's first byte)
// that acknowledge a received PUBLISH.
const (
	typePuback = 4
	typePubrec = 5
)

// flushAcks waits until at least n acks were queued and everything queued
// by then was written to the socket, or the connection failed or closed, or
// ctx ended.
func (c *coalescingConn) flushAcks(ctx context.Context, n int64) error {
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.acks < n && c.err == nil && !c.closing && ctx.Err() == nil {
		c.cond.Wait()
	}
	target := c.queued
	for c.sent < target && c.err == nil && ctx.Err() == nil {
		if c.closing && len(c.buf) == 0 {
			break
		}
		c.cond.Wait()
	}
	switch {
	case c.sent >= target && c.acks >= n:
		return nil
	case c.err != nil:
		return c.err
	case ctx.Err() != nil:
		return fmt.Errorf("%d of %d acks written: %w", c.acks, n, ctx.Err())
	default:
		return net.ErrClosed
	}
}

// AckConn is one network connection of a subscriber with manual acks: it
// counts the acks the subscriber marked (Client.Ack) and lets it wait until
// paho has written them (paho sends marked acks from a timer of its own and
// offers no flush).
type AckConn struct {
	c      *coalescingConn
	marked atomic.Int64
}

// Mark records that one QoS 1/2 message received on this connection was
// passed to Client.Ack.
func (a *AckConn) Mark() { a.marked.Add(1) }

// Marked is how many acks Mark recorded.
func (a *AckConn) Marked() int64 { return a.marked.Load() }

// Flush waits until every ack marked so far has reached the socket (not the
// broker: follow it with a request the broker answers, such as an
// UNSUBSCRIBE, to know it read them). Acks go
// out in receive order: one that was never marked holds back those after
// it, and then Flush waits until ctx ends.
func (a *AckConn) Flush(ctx context.Context) error {
	return a.c.flushAcks(ctx, a.marked.Load())
}

// Close writes what is queued (for at most a second: a DISCONNECT must not
// hang on a dead peer), stops the flushing goroutine and closes the
// connection.
func (c *coalescingConn) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		c.closing = true
		c.cond.Broadcast()
		c.mu.Unlock()
		_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		<-c.done
		c.closed = c.Conn.Close()
	})
	return c.closed
}

// readBufferSize is the read buffer under paho: a few hundred typical
// PUBLISH packets per read system call.
const readBufferSize = 64 << 10

// bufferedConn is the connection paho sees. It reads through a bufio.Reader:
// paho reads each packet's fixed header byte by byte and then its body
// straight from the connection, two or three read system calls per message
// without a buffer, one per buffer fill with it. Only paho's single reader
// goroutine calls Read, as bufio.Reader requires.
//
// It is also a sync.Locker, which paho holds around the writes of one packet
// (a packet is several buffers): Write gathers the packet and Unlock writes
// it in one call. A *net.TCPConn gets the same atomicity from writev; any
// wrapper, tls.Conn included, would otherwise let two goroutines' packets
// interleave (a PINGREQ inside a PUBLISH: a malformed packet for the
// broker). Every paho write goes through packets.ControlPacket.WriteTo,
// which takes the lock. A failed write is returned by the next Write, and
// the reader sees the broken connection.
type bufferedConn struct {
	net.Conn
	r   *bufio.Reader
	w   io.Writer // the connection, or a coalescingConn in front of it
	mu  sync.Mutex
	pkt []byte
	err error
}

func newBufferedConn(c net.Conn, w io.Writer) *bufferedConn {
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, readBufferSize), w: w}
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Lock starts a packet.
func (c *bufferedConn) Lock() { c.mu.Lock() }

// Write adds to the packet; call it between Lock and Unlock.
func (c *bufferedConn) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.pkt = append(c.pkt, p...)
	return len(p), nil
}

// Unlock writes the packet.
func (c *bufferedConn) Unlock() {
	if len(c.pkt) > 0 && c.err == nil {
		_, c.err = c.w.Write(c.pkt)
	}
	c.pkt = c.pkt[:0]
	if cap(c.pkt) > maxPending {
		c.pkt = nil // one large publish does not pin its buffer
	}
	c.mu.Unlock()
}

// Close closes the writer (a coalescingConn writes what it holds first) or
// the connection.
func (c *bufferedConn) Close() error {
	if cl, ok := c.w.(io.Closer); ok && c.w != io.Writer(c.Conn) {
		return cl.Close()
	}
	return c.Conn.Close()
}

// dialer returns an autopaho AttemptConnection function that dials TCP or
// TLS (honouring all_proxy, as autopaho does) with the connect timeout and
// reads through a bufferedConn; with coalesce, writes go through a
// coalescingConn. ok is false when a broker uses another scheme (WebSocket):
// autopaho then dials on its own.
func dialer(urls []*url.URL, tlsCfg *tls.Config, timeout time.Duration, coalesce bool) (func(context.Context, *url.URL) (net.Conn, error), bool) {
	for _, u := range urls {
		switch strings.ToLower(u.Scheme) {
		case "mqtt", "tcp", "", "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
		default:
			return nil, false
		}
	}
	return func(ctx context.Context, u *url.URL) (net.Conn, error) {
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		conn, err := proxy.Dial(ctx, "tcp", u.Host)
		if err != nil {
			return nil, err
		}
		switch strings.ToLower(u.Scheme) {
		case "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
			cfg := tlsCfg
			if cfg == nil {
				cfg = &tls.Config{}
			}
			if cfg.ServerName == "" {
				cfg = cfg.Clone()
				cfg.ServerName = u.Hostname()
			}
			tc := tls.Client(conn, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				_ = conn.Close()
				return nil, err
			}
			conn = tc
		}
		// TLS decrypts whole records into the tls.Conn's own buffer; the
		// bufio.Reader above still saves a locked Read per packet part.
		var w io.Writer = conn
		if coalesce {
			w = newCoalescingConn(conn)
		}
		return newBufferedConn(conn, w), nil
	}, true
}
