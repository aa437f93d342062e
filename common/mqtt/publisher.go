package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// Publisher publishes with a window of messages awaiting their
// acknowledgement: the load generator of `flowd sim mqtt` and the e2e tests.
type Publisher struct {
	cm      *autopaho.ConnectionManager
	cancel  context.CancelFunc
	work    chan *paho.Publish
	wg      sync.WaitGroup
	sent    atomic.Int64
	failed  atomic.Int64
	lastErr atomic.Pointer[error]
}

// NewPublisher connects (waiting until the connection is up or ctx ends)
// and starts inflight workers.
func NewPublisher(ctx context.Context, s *Settings, clientID string, inflight int, log *slog.Logger) (*Publisher, error) {
	if inflight < 1 {
		inflight = 1
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &Publisher{cancel: cancel, work: make(chan *paho.Publish)}
	var connErr atomic.Pointer[error]
	cm, err := Connect(cctx, s, clientID, false, Handlers{OnError: func(err error) {
		connErr.Store(&err)
		if log != nil {
			log.Warn("mqtt connection", "client_id", clientID, "err", err)
		}
	}}, log)
	if err != nil {
		cancel()
		return nil, err
	}
	p.cm = cm
	if err := cm.AwaitConnection(ctx); err != nil {
		cancel()
		if e := connErr.Load(); e != nil {
			return nil, *e
		}
		return nil, err
	}
	for range inflight {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for pub := range p.work {
				// Retry while the connection is down: a load generator
				// should not lose what it was asked to send.
				for {
					_, err := cm.Publish(cctx, pub)
					if err == nil {
						p.sent.Add(1)
						break
					}
					if cctx.Err() != nil || !errors.Is(err, autopaho.ConnectionDownError) {
						p.failed.Add(1)
						err = Explain(err)
						p.lastErr.Store(&err)
						break
					}
					if cm.AwaitConnection(cctx) != nil {
						p.failed.Add(1)
						break
					}
				}
			}
		}()
	}
	return p, nil
}

// Publish queues one message; it blocks while the window is full.
func (p *Publisher) Publish(ctx context.Context, topic string, payload []byte, qos byte) error {
	select {
	case p.work <- &paho.Publish{Topic: topic, Payload: payload, QoS: qos}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Sent counts the publishes that succeeded (Close reports the failed ones).
func (p *Publisher) Sent() int64 { return p.sent.Load() }

// Close waits for the queued publishes, then disconnects. It returns the
// last publish error, if any.
func (p *Publisher) Close(ctx context.Context) error {
	close(p.work)
	p.wg.Wait()
	err := p.cm.Disconnect(ctx)
	p.cancel()
	if e := p.lastErr.Load(); e != nil {
		return fmt.Errorf("%d publishes failed, last: %w", p.failed.Load(), *e)
	}
	return err
}
