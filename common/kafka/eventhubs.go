package kafka

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Event Hubs' Kafka endpoint limits, applied to every client that talks to
// it (see Microsoft's "Apache Kafka client configurations for Event Hubs"):
// requests under 1,046,528 bytes, metadata refreshed and idle connections
// closed before the service's 240 s idle cut, a request timeout over 20 s,
// and no compression unless asked (gzip only, on premium and dedicated
// tiers; franz-go would default to snappy, which the service rejects).
const (
	EventHubsMaxRequestBytes      = 1_040_000 // < 1,046,528
	EventHubsMaxBatchBytes        = 1_000_000
	EventHubsMaxRecordBytes       = 990_000
	EventHubsMetadataMaxAge       = 180 * time.Second // < 240 s
	EventHubsConnIdleTimeout      = 180 * time.Second // < 240 s
	EventHubsRequestTimeout       = 30 * time.Second  // > 20 s
	EventHubsSessionTimeout       = 30 * time.Second  // the service's recommended consumer session
	EventHubsConnectionStringSASL = "$ConnectionString"
)

// ConnString is a parsed Event Hubs connection string.
type ConnString struct {
	Endpoint   string // sb://host[:port]/
	Host       string // host[:port]
	KeyName    string
	Key        string
	SAS        string // SharedAccessSignature
	EntityPath string
	Emulator   bool
}

// ParseConnectionString reads the parts flowd needs from an Event Hubs
// connection string.
func ParseConnectionString(s string) (ConnString, error) {
	var cs ConnString
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			// Never echo the part: it may be the key.
			return cs, errors.New("connection string: a part is not key=value")
		}
		switch strings.ToLower(k) {
		case "endpoint":
			cs.Endpoint = v
		case "sharedaccesskeyname":
			cs.KeyName = v
		case "sharedaccesskey":
			cs.Key = v
		case "sharedaccesssignature":
			cs.SAS = v
		case "entitypath":
			cs.EntityPath = v
		case "usedevelopmentemulator":
			cs.Emulator = strings.EqualFold(v, "true")
		}
	}
	if cs.Endpoint == "" {
		return cs, errors.New("connection string has no Endpoint")
	}
	host := cs.Endpoint
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	cs.Host = strings.TrimSuffix(host, "/")
	if cs.Host == "" {
		return cs, fmt.Errorf("connection string: no host in Endpoint %q", cs.Endpoint)
	}
	if cs.SAS == "" && (cs.KeyName == "" || cs.Key == "") {
		return cs, errors.New("connection string needs SharedAccessKeyName and SharedAccessKey (or SharedAccessSignature)")
	}
	return cs, nil
}

// KafkaBroker is the Kafka endpoint of the namespace: its host on port 9093,
// or the port the Endpoint names (a local test broker).
func (cs ConnString) KafkaBroker() string {
	if _, _, err := net.SplitHostPort(cs.Host); err == nil {
		return cs.Host
	}
	return net.JoinHostPort(cs.Host, "9093")
}

// Hostname is the host without a port.
func (cs ConnString) Hostname() string {
	if h, _, err := net.SplitHostPort(cs.Host); err == nil {
		return h
	}
	return cs.Host
}

// ApplyEventHubs points the settings at the namespace's Kafka endpoint with
// the service's limits: TLS always (tls may add a CA), SASL PLAIN with the
// connection string when one is given (connStr ""; a credential sets its
// own OAUTHBEARER mechanism), no compression unless asked.
func (s *Settings) ApplyEventHubs(cs ConnString, connStr string) {
	s.Brokers = []string{cs.KafkaBroker()}
	s.MaxRequestBytes = EventHubsMaxRequestBytes
	s.BatchMaxBytes = EventHubsMaxBatchBytes
	s.RequestTimeout = EventHubsRequestTimeout
	s.MetadataMaxAge = EventHubsMetadataMaxAge
	s.ConnIdleTimeout = EventHubsConnIdleTimeout
	if s.Compression == "" {
		s.Compression = "none"
	}
	if s.TLS == nil {
		s.TLS = &TLS{}
	}
	if connStr != "" {
		s.SASL = &SASL{Mechanism: "PLAIN", Username: EventHubsConnectionStringSASL, Password: connStr}
	}
}
