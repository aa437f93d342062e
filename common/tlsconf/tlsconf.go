// Package tlsconf is the `tls` block shared by every component that talks TLS
// to a server (MQTT brokers, Kafka brokers, Cassandra nodes, Event Hubs).
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Block is the `tls { … }` block of a client.
type Block struct {
	CAFile             string `hcl:"ca_file" doc:"PEM file of the CAs that sign the server's certificate (default: the system roots)"`
	CertFile           string `hcl:"cert_file" doc:"PEM client certificate, for servers that authenticate clients by certificate (mutual TLS)"`
	KeyFile            string `hcl:"key_file" doc:"PEM private key of cert_file"`
	ServerName         string `hcl:"server_name" doc:"name to verify the server's certificate against (default: the host dialled)"`
	InsecureSkipVerify bool   `hcl:"insecure_skip_verify" doc:"do not verify the server's certificate (tests only)"`
}

// Error names the attribute of the block that is wrong.
type Error struct {
	Field string // "tls.ca_file", "tls.cert_file"
	Err   error
}

func (e *Error) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Config builds a client tls.Config (TLS 1.2 at least). It reads the files,
// so call it when validating the configuration, not only when connecting.
func (b *Block) Config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: b.ServerName, InsecureSkipVerify: b.InsecureSkipVerify}
	if b.CAFile != "" {
		pem, err := os.ReadFile(b.CAFile)
		if err != nil {
			return nil, &Error{"tls.ca_file", err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &Error{"tls.ca_file", fmt.Errorf("%s holds no PEM certificate", b.CAFile)}
		}
		tc.RootCAs = pool
	}
	if (b.CertFile == "") != (b.KeyFile == "") {
		return nil, &Error{"tls.cert_file", errors.New("cert_file and key_file go together")}
	}
	if b.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(b.CertFile, b.KeyFile)
		if err != nil {
			return nil, &Error{"tls.cert_file", err}
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
