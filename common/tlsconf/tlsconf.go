// Package tlsconf is the `tls` block shared by every component that talks TLS
// to a server (MQTT brokers, Kafka brokers, Cassandra nodes, Event Hubs).
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/flowd/flowd/engine"
)

// Block is the `tls { … }` block of a client.
type Block struct {
	CAFile             string `hcl:"ca_file" doc:"PEM file of the CAs that sign the server's certificate (default: the system roots)"`
	CertFile           string `hcl:"cert_file" doc:"PEM client certificate, for servers that authenticate clients by certificate (mutual TLS)"`
	KeyFile            string `hcl:"key_file" doc:"PEM private key of cert_file"`
	ServerName         string `hcl:"server_name" doc:"name to verify the server's certificate against (default: the host dialled)"`
	InsecureSkipVerify bool   `hcl:"insecure_skip_verify" doc:"do not verify the server's certificate (tests only)"`

	// Pos is where the block was written (filled in by the config loader),
	// so that an Error points at the attribute inside it.
	Pos engine.BlockPos
}

// Error names the attribute of the block that is wrong.
type Error struct {
	Field string // "tls.ca_file", "tls.cert_file"
	Err   error
	// Range is where that attribute (or the block, when it was not written)
	// is in the config; nil for a block not read from a config file.
	Range *engine.Range
}

func (e *Error) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ConfigRange is where the error is in the config: the config loader
// places the diagnostic of any error that wraps an Error there, whichever
// component returned it.
func (e *Error) ConfigRange() *engine.Range { return e.Range }

// newError blames attr of the block written at pos.
func newError(pos engine.BlockPos, attr string, err error) *Error {
	e := &Error{Field: "tls." + attr, Err: err}
	if pos.Block.Filename != "" {
		e.Range = pos.At(attr)
	}
	return e
}

// Config builds a client tls.Config (TLS 1.2 at least). It reads the files,
// so call it when validating the configuration, not only when connecting.
func (b *Block) Config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: b.ServerName, InsecureSkipVerify: b.InsecureSkipVerify}
	if b.CAFile != "" {
		pem, err := os.ReadFile(b.CAFile)
		if err != nil {
			return nil, newError(b.Pos, "ca_file", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, newError(b.Pos, "ca_file", fmt.Errorf("%s holds no PEM certificate", b.CAFile))
		}
		tc.RootCAs = pool
	}
	if (b.CertFile == "") != (b.KeyFile == "") {
		return nil, newError(b.Pos, "cert_file", errors.New("cert_file and key_file go together"))
	}
	if b.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(b.CertFile, b.KeyFile)
		if err != nil {
			return nil, newError(b.Pos, "cert_file", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
