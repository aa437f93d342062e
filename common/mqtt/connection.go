package mqtt

import "time"

// Connection is the group of connection attributes the mqtt source and the
// mqtt sink embed (written flat in their blocks). Its defaults and docs are
// the source's; the sink sets its own for the session attributes through
// default.NAME and doc.NAME tags on the embedding field, and each component
// documents its default client id.
type Connection struct {
	Broker         string        `hcl:"broker" scheme:"mqtt|mqtts|ws|wss|tcp|ssl|tls" doc:"broker URL: mqtt://host:1883, mqtts://host:8883, ws://host/mqtt or wss://…"`
	Brokers        []string      `hcl:"brokers" scheme:"mqtt|mqtts|ws|wss|tcp|ssl|tls" doc:"several broker URLs, tried in turn (failover); adds to broker"`
	ClientID       string        `hcl:"client_id" doc:"client id (default: one of the pipeline and component names)"`
	Username       string        `hcl:"username" doc:"user name; use env(\"…\") or file(\"…\") for secrets"`
	Password       string        `hcl:"password" doc:"password; use env(\"…\") or file(\"…\")"`
	CleanStart     bool          `hcl:"clean_start" doc:"discard the broker session at start; false keeps unacknowledged messages across restarts"`
	SessionExpiry  time.Duration `hcl:"session_expiry" default:"1h" doc:"how long the broker keeps the session while flowd is away"`
	KeepAlive      time.Duration `hcl:"keepalive" default:"30s" doc:"MQTT keepalive"`
	ConnectTimeout time.Duration `hcl:"connect_timeout" default:"10s" doc:"time allowed for one connection attempt"`
	BackoffMin     time.Duration `hcl:"backoff_min" default:"200ms" doc:"first reconnect delay"`
	BackoffMax     time.Duration `hcl:"backoff_max" default:"30s" doc:"longest reconnect delay (the delay doubles up to it); a connection lost within a minute of coming up counts as a failed attempt, so a session taken over again and again (a duplicate client_id) reconnects at this pace"`
	TLS            *TLS          `hcl:"tls,block" doc:"TLS settings for mqtts:// and wss://"`
}

// Settings are the client settings of the connection: broker before
// brokers, and clientID when client_id is not set.
func (c *Connection) Settings(clientID string) Settings {
	brokers := append([]string(nil), c.Brokers...)
	if c.Broker != "" {
		brokers = append([]string{c.Broker}, brokers...)
	}
	if c.ClientID != "" {
		clientID = c.ClientID
	}
	return Settings{
		Brokers: brokers, ClientID: clientID, Username: c.Username, Password: c.Password,
		CleanStart: c.CleanStart, SessionExpiry: c.SessionExpiry, KeepAlive: c.KeepAlive,
		ConnectTimeout: c.ConnectTimeout, BackoffMin: c.BackoffMin, BackoffMax: c.BackoffMax, TLS: c.TLS,
	}
}
