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
