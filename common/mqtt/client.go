// Package mqtt holds the MQTT v5 client settings shared by the mqtt source and
// the mqtt sink: broker URLs, TLS, credentials, client id, persistent
// sessions, keepalive and reconnect backoff, on top of paho.golang's autopaho.
package mqtt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/flowd/flowd/common/tlsconf"
	"github.com/flowd/flowd/engine"
)

// TLS is the `tls` block of the mqtt source and sink.
type TLS = tlsconf.Block

// Settings are the client settings both components connect with, made from
// their Connection (Connection.Settings).
type Settings struct {
	Brokers        []string
	ClientID       string
	Username       string
	Password       string
	CleanStart     bool
	SessionExpiry  time.Duration
	KeepAlive      time.Duration
	ConnectTimeout time.Duration
	BackoffMin     time.Duration
	BackoffMax     time.Duration
	TLS            *TLS
	// ReceiveMaximum is how many QoS 1/2 messages the broker may have
	// unacknowledged towards this client: the source's flow control.
	ReceiveMaximum uint16
}

// FieldError blames one attribute (the components turn it into an
// engine.FieldError).
type FieldError struct {
	Field string
	Err   error
	// Range is where the attribute was written, when known (one inside the
	// tls block).
	Range *engine.Range
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// EngineError turns err, when it is a FieldError, into the engine's, so a
// diagnostic points at the attribute; other errors are returned as they are.
func EngineError(err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return &engine.FieldError{Field: fe.Field, Offset: -1, Err: fe.Err, Range: fe.Range}
	}
	return err
}

// Problems is what is wrong with the settings, as problems with the
// component's attributes.
func (s *Settings) Problems() engine.Problems {
	var bad engine.Problems
	if err := s.Validate(); err != nil {
		for _, e := range engine.SplitErrors(err) {
			bad = append(bad, EngineError(e))
		}
	}
	return bad
}

// ParseBrokers checks broker URLs: mqtt://, mqtts://, ws://, wss:// with a port.
func ParseBrokers(brokers []string) ([]*url.URL, error) {
	if len(brokers) == 0 {
		return nil, &FieldError{Field: "broker", Err: errors.New("at least one broker URL is required")}
	}
	var out []*url.URL
	for _, b := range brokers {
		u, err := url.Parse(b)
		if err != nil {
			return nil, &FieldError{Field: "broker", Err: fmt.Errorf("%q is not a URL: %w", b, err)}
		}
		switch u.Scheme {
		case "mqtt", "tcp":
			u.Scheme = "mqtt"
			if u.Port() == "" {
				u.Host = net.JoinHostPort(u.Hostname(), "1883")
			}
		case "mqtts", "ssl", "tls":
			u.Scheme = "mqtts"
			if u.Port() == "" {
				u.Host = net.JoinHostPort(u.Hostname(), "8883")
			}
		case "ws", "wss":
		default:
			return nil, &FieldError{Field: "broker", Err: fmt.Errorf("%q: scheme must be mqtt, mqtts, ws or wss", b)}
		}
		if u.Hostname() == "" {
			return nil, &FieldError{Field: "broker", Err: fmt.Errorf("%q has no host", b)}
		}
		out = append(out, u)
	}
	return out, nil
}

// TLSConfig builds the TLS configuration (nil when no broker needs TLS and
// no tls block is given).
func (s *Settings) TLSConfig(urls []*url.URL) (*tls.Config, error) {
	secure := false
	for _, u := range urls {
		secure = secure || u.Scheme == "mqtts" || u.Scheme == "wss"
	}
	if s.TLS == nil && !secure {
		return nil, nil
	}
	if s.TLS == nil {
		return &tls.Config{MinVersion: tls.VersionTLS12}, nil
	}
	cfg, err := s.TLS.Config()
	if te := (*tlsconf.Error)(nil); errors.As(err, &te) {
		return nil, &FieldError{Field: te.Field, Err: te.Err, Range: te.Range}
	}
	return cfg, err
}

// Validate checks the settings before anything connects. It reports every
// problem it finds, each a *FieldError, joined (see errors.Join).
func (s *Settings) Validate() error {
	var errs []error
	if urls, err := ParseBrokers(s.Brokers); err != nil {
		errs = append(errs, err)
	} else if _, err := s.TLSConfig(urls); err != nil {
		errs = append(errs, err)
	}
	switch {
	case s.ClientID == "":
		errs = append(errs, &FieldError{Field: "client_id", Err: errors.New("must not be empty")})
	case len(s.ClientID) > 65535:
		errs = append(errs, &FieldError{Field: "client_id", Err: errors.New("too long")})
	}
	if s.KeepAlive < 0 || s.KeepAlive > 65535*time.Second {
		errs = append(errs, &FieldError{Field: "keepalive", Err: errors.New("must be between 0s and 18h")})
	}
	if s.SessionExpiry < 0 || s.SessionExpiry > time.Duration(1<<32-1)*time.Second {
		errs = append(errs, &FieldError{Field: "session_expiry", Err: errors.New("must be between 0s and 136 years")})
	}
	return errors.Join(errs...)
}

// Handlers are the callbacks of one connection.
type Handlers struct {
	// OnPublish receives every message; it must not block (the connection's
	// reader, and with it the keepalive, waits for it).
	OnPublish func(autopaho.PublishReceived)
	// OnPublishAcks, when set, is called instead of OnPublish with the
	// network connection the message came on (nil when acks are automatic
	// or the broker is reached over WebSocket), so a subscriber can make
	// sure its acks were written before it disconnects (AckConn.Flush).
	OnPublishAcks func(autopaho.PublishReceived, *AckConn)
	// OnUp runs on every (re)connection, e.g. to subscribe; it must not block.
	OnUp func(cm *autopaho.ConnectionManager, ack *paho.Connack)
	// OnError reports a failed connection attempt or a lost connection with a
	// readable explanation (see Explain).
	OnError func(err error)
	// OnDown runs when an established connection is lost.
	OnDown func()
	// OnConnectPacket may change each CONNECT before it is sent (a will that
	// differs per attempt, such as a Sparkplug NDEATH with its bdSeq).
	OnConnectPacket func(*paho.Connect)
}

// Connect starts a managed connection with the settings; it keeps
// reconnecting with backoff until ctx is cancelled or Disconnect is called.
// manualAcks makes received QoS 1/2 messages wait for Client.Ack.
func Connect(ctx context.Context, s *Settings, clientID string, manualAcks bool, h Handlers, log *slog.Logger) (*autopaho.ConnectionManager, error) {
	urls, err := ParseBrokers(s.Brokers)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := s.TLSConfig(urls)
	if err != nil {
		return nil, err
	}
	user, pass := takeURLLogin(urls, s.Username, s.Password)
	cfg := autopaho.ClientConfig{
		ServerUrls:                    urls,
		TlsCfg:                        tlsCfg,
		KeepAlive:                     uint16(s.KeepAlive / time.Second),
		CleanStartOnInitialConnection: s.CleanStart,
		SessionExpiryInterval:         uint32(s.SessionExpiry / time.Second),
		ConnectTimeout:                s.ConnectTimeout,
		ConnectUsername:               user,
		ConnectPassword:               []byte(pass),
		ClientConfig: paho.ClientConfig{
			ClientID:                   clientID,
			EnableManualAcknowledgment: manualAcks,
			SendAcksInterval:           10 * time.Millisecond,
		},
	}
	setConnectionHandlers(ctx, &cfg, newPacer(s.BackoffMin, s.BackoffMax), clientID, h)
	cfg.ConnectPacketBuilder = connectPacketBuilder(s.ReceiveMaximum, h.OnConnectPacket)
	// cur is the connection being used: autopaho dials the next one only
	// after the previous client has ended, so a message received comes from it.
	var cur atomic.Pointer[AckConn]
	// Reads are buffered on every connection. The subscriber (manualAcks)
	// writes little but PUBACKs, one write call each in paho: coalesce them.
	// WebSocket brokers keep autopaho's dialer.
	if dial, ok := dialer(urls, tlsCfg, s.ConnectTimeout, manualAcks); ok {
		cfg.AttemptConnection = func(ctx context.Context, _ autopaho.ClientConfig, u *url.URL) (net.Conn, error) {
			c, err := dial(ctx, u)
			if err != nil {
				return nil, err
			}
			if bc, ok := c.(*bufferedConn); ok {
				if cc, ok := bc.w.(*coalescingConn); ok {
					cur.Store(&AckConn{c: cc})
				}
			}
			return c, nil
		}
	}
	cfg.OnPublishReceived = publishReceivers(h, &cur)
	if log != nil {
		l := pahoLogger{log.With("client_id", clientID)}
		cfg.Errors, cfg.PahoErrors = l, l
	}
	return autopaho.NewConnection(ctx, cfg)
}

// takeURLLogin removes the userinfo from the broker URLs and returns the
// login to use: the client library ignores a URL's userinfo for the login
// but prints the URL in its errors. The first URL's credentials apply when
// user is not set.
func takeURLLogin(urls []*url.URL, user, pass string) (string, string) {
	for _, u := range urls {
		if u.User != nil {
			if user == "" {
				user = u.User.Username()
				pass, _ = u.User.Password()
			}
			u.User = nil
		}
	}
	return user, pass
}

// setConnectionHandlers wires the connection lifecycle of cfg to the pacer
// (reconnect backoff, flap detection) and to h, explaining errors on the way.
func setConnectionHandlers(ctx context.Context, cfg *autopaho.ClientConfig, pace *pacer, clientID string, h Handlers) {
	cfg.ReconnectBackoff = pace.delay
	cfg.OnConnectionUp = func(cm *autopaho.ConnectionManager, ack *paho.Connack) {
		pace.up(time.Now())
		if h.OnUp != nil {
			h.OnUp(cm, ack)
		}
	}
	cfg.OnConnectionDown = func() bool {
		if pace.down(time.Now()) >= flapsToWarn && h.OnError != nil && ctx.Err() == nil {
			// Mosquitto closes a taken-over session's connection without
			// a DISCONNECT: repeated short connections are the sign.
			h.OnError(fmt.Errorf("the broker keeps closing the connections of client id %q soon after accepting them: most likely "+
				"another client (a second process?) uses the same client id and takes the session over; each process and connection "+
				"needs its own client_id (reconnecting with growing backoff meanwhile)", clientID))
		}
		if h.OnDown != nil {
			h.OnDown()
		}
		return true
	}
	cfg.OnConnectError = func(err error) {
		if h.OnError != nil {
			h.OnError(Explain(err))
		}
	}
	cfg.OnClientError = func(err error) {
		if h.OnError != nil && ctx.Err() == nil {
			h.OnError(fmt.Errorf("connection lost: %w", Explain(err)))
		}
	}
	cfg.OnServerDisconnect = func(d *paho.Disconnect) {
		if h.OnError != nil {
			h.OnError(explainDisconnect(d, clientID))
		}
	}
}

// connectPacketBuilder returns the CONNECT hook that sets Receive Maximum
// and applies onConnect, or nil when neither is wanted (autopaho's default).
func connectPacketBuilder(rm uint16, onConnect func(*paho.Connect)) func(*paho.Connect, *url.URL) (*paho.Connect, error) {
	if rm == 0 && onConnect == nil {
		return nil
	}
	return func(c *paho.Connect, _ *url.URL) (*paho.Connect, error) {
		if rm > 0 {
			if c.Properties == nil {
				c.Properties = &paho.ConnectProperties{}
			}
			c.Properties.ReceiveMaximum = &rm
		}
		if onConnect != nil {
			onConnect(c)
		}
		return c, nil
	}
}

// publishReceivers passes received messages to h's handler, with the
// current connection for manual acks when h wants them.
func publishReceivers(h Handlers, cur *atomic.Pointer[AckConn]) []func(paho.PublishReceived) (bool, error) {
	switch {
	case h.OnPublishAcks != nil:
		on := h.OnPublishAcks
		return []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				on(autopaho.PublishReceived{PublishReceived: pr}, cur.Load())
				return true, nil
			},
		}
	case h.OnPublish != nil:
		on := h.OnPublish
		return []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				on(autopaho.PublishReceived{PublishReceived: pr})
				return true, nil
			},
		}
	}
	return nil
}

// pahoLogger passes paho's internal error log to slog at debug level (the
// errors that matter reach OnError and are logged by the components).
type pahoLogger struct{ l *slog.Logger }

func (p pahoLogger) Println(v ...any) {
	p.l.Debug("mqtt client: " + strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}

func (p pahoLogger) Printf(format string, v ...any) {
	p.l.Debug("mqtt client: " + fmt.Sprintf(format, v...))
}

// reasonSessionTakenOver is the DISCONNECT reason a broker sends when
// another client connected with the same client id.
const reasonSessionTakenOver = 0x8E

// explainDisconnect words a DISCONNECT from the broker; a session takeover
// names the client id, since two processes (or two connections) sharing it
// take the session from each other for as long as both run.
func explainDisconnect(d *paho.Disconnect, clientID string) error {
	if d.ReasonCode == reasonSessionTakenOver {
		return fmt.Errorf("another client connected with client id %q and the broker handed it this session (DISCONNECT 0x8E session taken over): "+
			"two processes or connections share this client_id; give each its own (reconnecting with backoff meanwhile)", clientID)
	}
	msg := fmt.Sprintf("broker disconnected the client: reason 0x%02X", d.ReasonCode)
	if r := reasonText(d); r != "" {
		msg += " " + r
	}
	return errors.New(msg)
}

func reasonText(d *paho.Disconnect) string {
	if d.Properties != nil {
		return d.Properties.ReasonString
	}
	return ""
}

// reconnectDelay is the wait before reconnection attempt: none before the
// first (autopaho's attempt 0), then doubling from lo up to hi with ±20 %
// jitter. It is not engine.Backoff, whose first delay is lo and whose jitter
// is the upper half.
func reconnectDelay(lo, hi time.Duration, attempt int) time.Duration {
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	hi = max(hi, lo)
	if attempt <= 0 {
		return 0
	}
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	return time.Duration(float64(min(d, hi)) * (0.8 + 0.4*rand.Float64()))
}

// Explain turns a connection error into one clear sentence: a refused
// login, an untrusted certificate, a wrong host name, an unreachable broker.
func Explain(err error) error {
	if err == nil {
		return nil
	}
	var ce *autopaho.ConnackError
	if errors.As(err, &ce) {
		switch ce.ReasonCode {
		case 0x86:
			return fmt.Errorf("broker refused the login: bad user name or password (CONNACK 0x86)")
		case 0x87:
			return fmt.Errorf("broker refused the login: not authorized, check user name and password (CONNACK 0x87)")
		case 0x85:
			return fmt.Errorf("broker refused the client id (CONNACK 0x85)")
		}
		msg := fmt.Sprintf("broker refused the connection (CONNACK 0x%02x)", ce.ReasonCode)
		if ce.Reason != "" {
			msg += ": " + ce.Reason
		}
		return errors.New(msg)
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return fmt.Errorf("broker certificate is not trusted (signed by an unknown authority; set tls.ca_file to its CA): %w", err)
	}
	var hn x509.HostnameError
	if errors.As(err, &hn) {
		return fmt.Errorf("broker certificate does not match the host (set tls.server_name): %w", err)
	}
	var ci x509.CertificateInvalidError
	if errors.As(err, &ci) {
		return fmt.Errorf("broker certificate is invalid: %w", err)
	}
	var ve *tls.CertificateVerificationError
	if errors.As(err, &ve) {
		return fmt.Errorf("broker certificate verification failed: %w", err)
	}
	var oe *net.OpError
	if errors.As(err, &oe) && strings.Contains(err.Error(), "refused") {
		return fmt.Errorf("broker unreachable: %w", err)
	}
	return err
}
