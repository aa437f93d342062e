package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
)

func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	tc, err := (&Block{CAFile: cert, CertFile: cert, KeyFile: key, ServerName: "broker"}).Config()
	if err != nil {
		t.Fatal(err)
	}
	if tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.ServerName != "broker" || tc.MinVersion < 0x0303 {
		t.Fatalf("config: %+v", tc)
	}
	notPEM := filepath.Join(dir, "x.txt")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	for _, tc := range []struct {
		b     Block
		field string
	}{
		{Block{CAFile: filepath.Join(dir, "missing.pem")}, "tls.ca_file"},
		{Block{CAFile: notPEM}, "tls.ca_file"},
		{Block{CertFile: cert}, "tls.cert_file"},
		{Block{CertFile: cert, KeyFile: notPEM}, "tls.cert_file"},
	} {
		_, err := tc.b.Config()
		var te *Error
		if !errors.As(err, &te) || te.Field != tc.field {
			t.Errorf("%+v: error %v, want one on %s", tc.b, err, tc.field)
		}
	}
}

// TestErrorRange checks that an error of a block read from a config file
// says where: at the attribute it is about, or at the block when that
// attribute was not written; and nowhere for a block made in code.
func TestErrorRange(t *testing.T) {
	at := func(line int) engine.Range {
		return engine.Range{Filename: "p.hcl", Start: engine.Pos{Line: line, Column: 5}, End: engine.Pos{Line: line, Column: 9}}
	}
	pos := engine.BlockPos{Block: at(3), Attrs: map[string]engine.Range{"ca_file": at(4), "key_file": at(5)}}
	for _, c := range []struct {
		b    Block
		line int
	}{
		{Block{CAFile: "/nonexistent/ca.pem", Pos: pos}, 4},
		{Block{KeyFile: "k.pem", Pos: pos}, 3}, // cert_file is missing: the block
		{Block{CAFile: "/nonexistent/ca.pem"}, 0},
	} {
		_, err := c.b.Config()
		var te *Error
		if !errors.As(err, &te) {
			t.Fatalf("%+v: %v", c.b, err)
		}
		switch {
		case c.line == 0 && te.ConfigRange() != nil:
			t.Errorf("%+v: range %v for a block made in code", c.b, te.ConfigRange())
		case c.line != 0 && (te.ConfigRange() == nil || te.ConfigRange().Start.Line != c.line):
			t.Errorf("%+v: range %v, want line %d", c.b, te.ConfigRange(), c.line)
		}
	}
}
