package mqtt

import (
	"context"
	"crypto/tls"
	"fmt"
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

	// packet keeps the several Write calls of one packet together: paho
	// writes a packet as a header and a body (net.Buffers) and takes the
	// writer's lock around them when it is a sync.Locker, which a PUBACK
	// and a PINGREQ from two goroutines need.
	packet sync.Mutex
	start  atomic.Bool // the next Write begins a packet

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

// Lock and Unlock frame one packet's writes (paho's ControlPacket.WriteTo
// uses them when the writer is a sync.Locker).
func (c *coalescingConn) Lock() {
	c.packet.Lock()
	c.start.Store(true)
}

func (c *coalescingConn) Unlock() { c.packet.Unlock() }

// MQTT control packet types (high nibble of the fixed header's first byte)
// that acknowledge a received PUBLISH.
const (
	typePuback = 4
	typePubrec = 5
)

// Write queues p for the flushing goroutine; it waits only while more than
// maxPending bytes are queued (a peer that stopped reading).
func (c *coalescingConn) Write(p []byte) (int, error) {
	first := c.start.Swap(false)
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
	if first && len(p) > 0 {
		if t := p[0] >> 4; t == typePuback || t == typePubrec {
			c.acks++
		}
	}
	c.buf = append(c.buf, p...)
	c.queued += int64(len(p))
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

// coalescingDialer returns an autopaho AttemptConnection function that dials
// TCP or TLS (honouring all_proxy, as autopaho does) with the connect
// timeout and wraps the connection in a coalescingConn. ok is false when a
// broker uses another scheme (WebSocket): autopaho then dials on its own.
func coalescingDialer(urls []*url.URL, tlsCfg *tls.Config, timeout time.Duration) (func(context.Context, *url.URL) (*coalescingConn, error), bool) {
	for _, u := range urls {
		switch strings.ToLower(u.Scheme) {
		case "mqtt", "tcp", "", "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
		default:
			return nil, false
		}
	}
	return func(ctx context.Context, u *url.URL) (*coalescingConn, error) {
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
		return newCoalescingConn(conn), nil
	}, true
}
