package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/flowd/flowd/engine"
)

// Server is the `tls { … }` block of a component that listens (the http
// source).
type Server struct {
	CertFile     string `hcl:"cert_file,required" doc:"PEM server certificate (with its chain)"`
	KeyFile      string `hcl:"key_file,required" doc:"PEM private key of cert_file"`
	ClientCAFile string `hcl:"client_ca_file" doc:"PEM file of the CAs whose client certificates are accepted; set, a client without one is refused (mutual TLS)"`

	// Pos is where the block was written (filled in by the config loader).
	Pos engine.BlockPos
}

// Config builds a server tls.Config (TLS 1.2 at least). It reads the files,
// so call it when validating the configuration.
func (s *Server) Config() (*tls.Config, error) {
	if s.CertFile == "" || s.KeyFile == "" {
		return nil, newError(s.Pos, "cert_file", errors.New("cert_file and key_file are required"))
	}
	cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		return nil, newError(s.Pos, "cert_file", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if s.ClientCAFile != "" {
		pem, err := os.ReadFile(s.ClientCAFile)
		if err != nil {
			return nil, newError(s.Pos, "client_ca_file", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, newError(s.Pos, "client_ca_file", fmt.Errorf("%s holds no PEM certificate", s.ClientCAFile))
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}
