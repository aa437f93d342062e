// Package cassandra is a sink that writes points into an Apache Cassandra tag
// history table: one partition per (asset, tag, time bucket), rows clustered
// by ts DESC, typed value columns, TimeWindowCompactionStrategy.
package cassandra

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/flowd/flowd/common/tlsconf"
	"github.com/flowd/flowd/engine"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is the Cassandra sink's configuration.
type Config struct {
	Hosts          []string          `hcl:"hosts,required" scheme:"none" doc:"contact points, host or host:port (port 9042 when omitted); the other nodes are discovered"`
	Keyspace       string            `hcl:"keyspace" default:"flowd" doc:"keyspace of the table"`
	Table          string            `hcl:"table" default:"points" doc:"tag history table"`
	Consistency    string            `hcl:"consistency" default:"LOCAL_QUORUM" enum:"ANY|ONE|TWO|THREE|QUORUM|ALL|LOCAL_QUORUM|EACH_QUORUM|LOCAL_ONE" doc:"write consistency; a batch is acknowledged upstream only once Cassandra confirmed every row at this level"`
	LocalDC        string            `hcl:"local_dc" doc:"data center to send requests to (DC-aware routing); empty: every node"`
	Username       string            `hcl:"username" doc:"user for PasswordAuthenticator (with password)"`
	Password       string            `hcl:"password" doc:"password; use env(\"NAME\") or file(\"path\") rather than a literal"`
	TLS            *TLSConfig        `hcl:"tls,block" doc:"connect with TLS"`
	Bucket         time.Duration     `hcl:"bucket" default:"24h" doc:"time bucket of a partition (whole minutes); also the TimeWindowCompactionStrategy window"`
	TTL            time.Duration     `hcl:"ttl" doc:"time to live of written rows (whole seconds; 0: keep forever, or the table's default_time_to_live)"`
	MaxInFlight    int               `hcl:"max_in_flight" default:"64" doc:"most write requests outstanding at once (at most 10,000)"`
	MaxBatchRows   int               `hcl:"max_batch_rows" default:"100" doc:"rows of one partition grouped into an unlogged batch (never across partitions); 1 disables batches; at most 65535"`
	CoalescePoints int               `hcl:"coalesce_points" default:"50000" doc:"when batches queue up behind a write, merge them into one write of at least this many points, so rows of one partition share an unlogged batch (0: write batches as they come; at most 10,000,000)"`
	Retries        int               `hcl:"retries" default:"3" doc:"driver-level retries of a failed write (writes are idempotent); after that the engine retries the rows of that request with backoff (0–100)"`
	Timeout        time.Duration     `hcl:"timeout" default:"12s" doc:"client-side timeout of one request (keep it above the server's write_request_timeout)"`
	ConnectTimeout time.Duration     `hcl:"connect_timeout" default:"10s" doc:"timeout of connection setup"`
	Connections    int               `hcl:"connections" default:"2" doc:"connections per host (at most 100)"`
	CreateSchema   bool              `hcl:"create_schema" doc:"create the keyspace and the table when missing (CREATE … IF NOT EXISTS)"`
	Replication    map[string]string `hcl:"replication" doc:"keyspace replication for create_schema; default { class = \"SimpleStrategy\", replication_factor = \"1\" }"`
}

// TLSConfig configures TLS to the nodes.
type TLSConfig = tlsconf.Block

// Spec declares the Cassandra sink.
var Spec = engine.SinkSpec(engine.Info{
	Type:    "cassandra",
	Summary: "Writes points into an Apache Cassandra tag history table (partition per asset, tag and time bucket).",
	Description: "Rows are inserted with prepared, idempotent statements, routed token-aware to a replica, at most " +
		"max_in_flight at once; rows of one partition may travel in an unlogged batch, never rows of different partitions. " +
		"A batch is acknowledged upstream only after Cassandra confirmed every row at the configured consistency; " +
		"otherwise the engine retries it, which is safe because a row is keyed by (asset, tag, bucket, ts). " +
		"Timestamps are stored with millisecond precision. Rows Cassandra rejects as invalid are counted and go to the " +
		"dead-letter sink instead of blocking the pipeline. See the README for the table's CQL.",
	Example: `sink "cassandra" "history" {
  inputs        = [source.plant]
  hosts         = ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
  local_dc      = "dc1"
  keyspace      = "plant"
  table         = "tag_history"
  bucket        = "24h"
  ttl           = "2160h"
  create_schema = true
  replication   = { class = "NetworkTopologyStrategy", dc1 = "3" }
}`,
}, New)

var identRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,47}$`)

func fieldErr(field string, format string, args ...any) error {
	return &engine.FieldError{Field: field, Offset: -1, Err: fmt.Errorf(format, args...)}
}

// New validates the config and builds the sink; it connects on Connect.
func New(c *Config, env *engine.Env) (engine.Sink, error) {
	if err := validate(c); err != nil {
		return nil, err
	}
	cons, err := gocql.ParseConsistencyWrapper(c.Consistency)
	if err != nil {
		return nil, fieldErr("consistency", "%v", err)
	}
	s := &Sink{cfg: *c, env: env, cons: cons, schema: newSchema(c), sem: make(chan struct{}, c.MaxInFlight)}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flowd_cassandra_requests_total",
		Help: "Write requests sent to Cassandra, by type (insert or unlogged batch) and result (ok or error).",
	}, []string{"type", "result"})
	s.rows = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flowd_cassandra_rows_written_total",
		Help: "Rows Cassandra acknowledged at the configured consistency.",
	})
	s.retries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flowd_cassandra_retries_total",
		Help: "Driver-level retries of failed write requests.",
	})
	env.MustRegister(s.requests, s.rows, s.retries)
	return s, nil
}

func validate(c *Config) error {
	var bad engine.Problems
	if len(c.Hosts) == 0 {
		bad = append(bad, fieldErr("hosts", "at least one host is needed"))
	}
	for _, h := range c.Hosts {
		if h == "" {
			bad = append(bad, fieldErr("hosts", "empty host"))
			continue
		}
		if _, port, err := net.SplitHostPort(h); err == nil {
			if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
				bad = append(bad, fieldErr("hosts", "%q: bad port", h))
			}
		}
	}
	if !identRe.MatchString(c.Keyspace) {
		bad = append(bad, fieldErr("keyspace", "%q is not a valid name (a letter, then letters, digits or _; at most 48)", c.Keyspace))
	}
	if !identRe.MatchString(c.Table) {
		bad = append(bad, fieldErr("table", "%q is not a valid name (a letter, then letters, digits or _; at most 48)", c.Table))
	}
	if c.Bucket < time.Minute || c.Bucket%time.Minute != 0 {
		bad = append(bad, fieldErr("bucket", "must be a whole number of minutes, at least 1m (got %s)", c.Bucket))
	}
	switch {
	case c.TTL < 0 || c.TTL%time.Second != 0:
		bad = append(bad, fieldErr("ttl", "must be a whole number of seconds, 0 or more (got %s)", c.TTL))
	case c.TTL > 20*365*24*time.Hour:
		bad = append(bad, fieldErr("ttl", "at most 20 years (Cassandra's limit)"))
	}
	bad.Between("max_in_flight", int64(c.MaxInFlight), 1, maxInFlight)
	// A batch statement counts its statements in 16 bits.
	bad.Between("max_batch_rows", int64(c.MaxBatchRows), 1, 65535)
	bad.Between("coalesce_points", int64(c.CoalescePoints), 0, engine.MaxPendingPoints)
	bad.Between("retries", int64(c.Retries), 0, maxRetries)
	if c.Timeout <= 0 {
		bad = append(bad, fieldErr("timeout", "must be positive"))
	}
	if c.ConnectTimeout <= 0 {
		bad = append(bad, fieldErr("connect_timeout", "must be positive"))
	}
	bad.Between("connections", int64(c.Connections), 1, maxConnections)
	if (c.Username == "") != (c.Password == "") {
		bad = append(bad, fieldErr("password", "username and password go together"))
	}
	if c.TLS != nil && (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad = append(bad, fieldErr("tls", "cert_file and key_file go together"))
	}
	if len(c.Replication) > 0 {
		if c.Replication["class"] == "" {
			bad = append(bad, fieldErr("replication", "needs a class (SimpleStrategy or NetworkTopologyStrategy)"))
		}
		for _, k := range slices.Sorted(maps.Keys(c.Replication)) {
			if v := c.Replication[k]; !identRe.MatchString(k) || strings.ContainsAny(v, "'\\") {
				bad = append(bad, fieldErr("replication", "bad entry %q = %q", k, v))
			}
		}
	}
	return bad.Err()
}

// Limits checked by validate: each request, retry and connection holds
// memory and a slot on the cluster.
const (
	maxInFlight    = 10_000
	maxRetries     = 100
	maxConnections = 100
)

var errNoSession = errors.New("cassandra: not connected")
