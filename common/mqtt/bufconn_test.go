package mqtt

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// readCountingConn counts the read calls that reach the connection.
type readCountingConn struct {
	net.Conn
	reads atomic.Int64
}

func (c *readCountingConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

// paho's packet reader over a bufferedConn reads every packet intact with a
// few reads per buffer instead of two or more per packet.
func TestBufferedConnFewerReads(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const n = 2000
	go func() {
		s, err := ln.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		var buf bytes.Buffer
		for i := range n {
			pub := &packets.Publish{Topic: fmt.Sprintf("t/%d", i), QoS: 1, PacketID: uint16(i + 1), Payload: []byte(fmt.Sprintf(`{"tag":"t","value":%d}`, i)), Properties: &packets.Properties{}}
			if _, err := pub.WriteTo(&buf); err != nil {
				return
			}
		}
		s.Write(buf.Bytes())
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	counted := &readCountingConn{Conn: raw}
	c := newBufferedConn(counted, counted)
	defer c.Close()
	for i := range n {
		cp, err := packets.ReadPacket(c)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		pub, ok := cp.Content.(*packets.Publish)
		if !ok || pub.Topic != fmt.Sprintf("t/%d", i) || string(pub.Payload) != fmt.Sprintf(`{"tag":"t","value":%d}`, i) {
			t.Fatalf("packet %d: %+v", i, cp.Content)
		}
	}
	if r := counted.reads.Load(); r > n/20 {
		t.Errorf("%d reads for %d packets: not buffered", r, n)
	}
	t.Logf("%d packets in %d reads", n, counted.reads.Load())
}

// A subscriber and a publisher through the shared broker, over TCP and over
// TLS, with both dialers (the subscriber's coalesces its PUBACKs): every
// message arrives once, in order, intact.
func TestBufferedDialerAgainstBroker(t *testing.T) {
	cases := []struct {
		name string
		s    Settings
	}{}
	if b := os.Getenv("FLOWD_TEST_MQTT"); b != "" {
		cases = append(cases, struct {
			name string
			s    Settings
		}{"tcp", Settings{Brokers: []string{b}}})
	}
	if b := os.Getenv("FLOWD_TEST_MQTTS"); b != "" {
		cases = append(cases, struct {
			name string
			s    Settings
		}{"tls", Settings{Brokers: []string{b}, Username: os.Getenv("FLOWD_TEST_MQTT_USER"), Password: os.Getenv("FLOWD_TEST_MQTT_PASSWORD"),
			TLS: &TLS{CAFile: os.Getenv("FLOWD_TEST_MQTT_CA")}}})
	}
	if len(cases) == 0 {
		t.Skip("FLOWD_TEST_MQTT is not set (e2e/services.sh env)")
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			s := tc.s
			s.KeepAlive, s.ConnectTimeout, s.CleanStart = 30*time.Second, 10*time.Second, true
			topic := fmt.Sprintf("bufconn/%s/%d", tc.name, time.Now().UnixNano())
			const n = 5000
			var mu sync.Mutex
			var got []string
			done := make(chan struct{})
			var cm *autopaho.ConnectionManager
			subscribed := make(chan struct{}, 1)
			cm, err := Connect(ctx, &s, "bufconn-sub-"+tc.name+fmt.Sprint(time.Now().UnixNano()), true, Handlers{
				OnPublish: func(pr autopaho.PublishReceived) {
					mu.Lock()
					got = append(got, string(pr.Packet.Payload))
					if len(got) == n {
						close(done)
					}
					mu.Unlock()
					pr.Client.Ack(pr.Packet)
				},
				OnUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
					go func() {
						if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err == nil {
							subscribed <- struct{}{}
						}
					}()
				},
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer cm.Disconnect(context.Background())
			select {
			case <-subscribed:
			case <-ctx.Done():
				t.Fatal("not subscribed")
			}
			pub, err := NewPublisher(ctx, &s, "bufconn-pub-"+tc.name+fmt.Sprint(time.Now().UnixNano()), 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if err := pub.Publish(ctx, topic, []byte(fmt.Sprintf("m%05d", i)), 1); err != nil {
					t.Fatal(err)
				}
			}
			if err := pub.Close(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-ctx.Done():
				mu.Lock()
				t.Fatalf("received %d of %d", len(got), n)
			}
			mu.Lock()
			defer mu.Unlock()
			for i, m := range got {
				if m != fmt.Sprintf("m%05d", i) {
					t.Fatalf("message %d is %q", i, m)
				}
			}
		})
	}
}

// paho writes a packet as several buffers; over any connection but a bare
// TCP one (TLS, or the coalescing writer) concurrent writers' buffers would
// interleave. Through a bufferedConn every packet arrives whole.
func TestBufferedConnPacketsStayWhole(t *testing.T) {
	for _, coalesce := range []bool{false, true} {
		t.Run(fmt.Sprintf("coalesce=%v", coalesce), func(t *testing.T) {
			client, server := net.Pipe() // like tls.Conn: no writev
			var w io.Writer = client
			if coalesce {
				w = newCoalescingConn(client)
			}
			c := newBufferedConn(client, w)
			const writers, each = 8, 300
			got := make(chan error, 1)
			go func() {
				for i := range writers * each {
					cp, err := packets.ReadPacket(server)
					if err != nil {
						got <- fmt.Errorf("packet %d: %w", i, err)
						return
					}
					if pub, ok := cp.Content.(*packets.Publish); ok && string(pub.Payload) != pub.Topic+"-payload" {
						got <- fmt.Errorf("packet %d: topic %q, payload %q", i, pub.Topic, pub.Payload)
						return
					}
				}
				got <- nil
			}()
			defer server.Close() // a garbled stream must not leave the writers blocked
			var wg sync.WaitGroup
			for g := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						var err error
						if g%2 == 0 {
							topic := fmt.Sprintf("w%d/%d", g, i)
							_, err = (&packets.Publish{Topic: topic, QoS: 1, PacketID: uint16(i + 1), Payload: []byte(topic + "-payload"), Properties: &packets.Properties{}}).WriteTo(c)
						} else {
							_, err = (&packets.Puback{PacketID: uint16(i + 1), ReasonCode: 0x10, Properties: &packets.Properties{}}).WriteTo(c)
						}
						if err != nil {
							return // the reader gave up (reported there)
						}
					}
				}()
			}
			select {
			case err := <-got:
				if err != nil {
					server.Close()
					wg.Wait()
					t.Fatal(err)
				}
			case <-time.After(20 * time.Second):
				server.Close()
				wg.Wait()
				t.Fatal("reader stuck: packets lost or garbled")
			}
			wg.Wait()
			c.Close()
		})
	}
}

var _ io.Reader = (*bufferedConn)(nil)
