// Package opcua holds the OPC UA code shared by the opcua source and the
// simulated PLC: certificates and the PKI directory, security settings,
// value and status mapping, browsing and server limits.
package opcua

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// GenerateCert creates a self-signed RSA 2048 application instance
// certificate for appURI, valid for hosts (DNS names or IP addresses).
func GenerateCert(appURI, commonName string, hosts []string, validFor time.Duration) ([]byte, *rsa.PrivateKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"flowd"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	u, err := url.Parse(appURI)
	if err != nil {
		return nil, nil, fmt.Errorf("application uri %q: %w", appURI, err)
	}
	tmpl.URIs = []*url.URL{u}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	return der, key, nil
}

// Thumbprint is the SHA-1 fingerprint of a DER certificate in lower-case hex.
func Thumbprint(der []byte) string {
	s := sha1.Sum(der)
	return hex.EncodeToString(s[:])
}

// NormalizeThumbprint accepts "AB:CD:…", "ab cd …" or "abcd…".
func NormalizeThumbprint(s string) string {
	r := strings.NewReplacer(":", "", " ", "", "-", "")
	return strings.ToLower(r.Replace(strings.TrimSpace(s)))
}

// PKI is a certificate store directory laid out as own/ (this application's
// certificate and key), trusted/ (peer certificates that are accepted) and
// rejected/ (peer certificates seen but not trusted, for an operator to move).
type PKI struct {
	Dir string
}

func (p PKI) own() string      { return filepath.Join(p.Dir, "own") }
func (p PKI) trusted() string  { return filepath.Join(p.Dir, "trusted") }
func (p PKI) rejected() string { return filepath.Join(p.Dir, "rejected") }

// TrustedDir is where peer certificates are trusted.
func (p PKI) TrustedDir() string { return p.trusted() }

// OwnCertPath is where Own keeps this application's certificate (DER).
func (p PKI) OwnCertPath() string { return filepath.Join(p.own(), "cert.der") }

// Own loads this application's certificate and key, creating them (and the
// directory layout) on first use.
func (p PKI) Own(appURI, commonName string) ([]byte, *rsa.PrivateKey, error) {
	for _, d := range []string{p.own(), p.trusted(), p.rejected()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, nil, err
		}
	}
	certPath, keyPath := filepath.Join(p.own(), "cert.der"), filepath.Join(p.own(), "key.pem")
	der, err1 := os.ReadFile(certPath)
	keyPEM, err2 := os.ReadFile(keyPath)
	if err1 == nil && err2 == nil {
		key, err := ParseKeyPEM(keyPEM)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
		}
		if _, err := x509.ParseCertificate(der); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", certPath, err)
		}
		return der, key, nil
	}
	if !errors.Is(err1, os.ErrNotExist) && err1 != nil {
		return nil, nil, err1
	}
	host, _ := os.Hostname()
	der, key, err := GenerateCert(appURI, commonName, []string{host, "localhost", "127.0.0.1"}, 10*365*24*time.Hour)
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(keyPath, KeyPEM(key), 0o600); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(certPath, der, 0o644); err != nil {
		return nil, nil, err
	}
	return der, key, nil
}

// KeyPEM encodes an RSA key as PKCS#1 PEM.
func KeyPEM(key *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

// ParseKeyPEM reads a PKCS#1 or PKCS#8 RSA key.
func ParseKeyPEM(b []byte) (*rsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA key")
	}
	return rk, nil
}

// ReadCert reads a DER or PEM certificate file and returns DER.
func ReadCert(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	if _, err := x509.ParseCertificate(b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// IsTrusted reports whether der is one of the certificates in trusted/.
func (p PKI) IsTrusted(der []byte) bool {
	ents, err := os.ReadDir(p.trusted())
	if err != nil {
		return false
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		c, err := ReadCert(filepath.Join(p.trusted(), e.Name()))
		if err == nil && bytes.Equal(c, der) {
			return true
		}
	}
	return false
}

// Trust copies der into trusted/.
func (p PKI) Trust(der []byte) (string, error) {
	if err := os.MkdirAll(p.trusted(), 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(p.trusted(), certFileName(der))
	return path, os.WriteFile(path, der, 0o644)
}

// Reject stores der in rejected/ so an operator can inspect and move it.
func (p PKI) Reject(der []byte) (string, error) {
	if err := os.MkdirAll(p.rejected(), 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(p.rejected(), certFileName(der))
	return path, os.WriteFile(path, der, 0o644)
}

func certFileName(der []byte) string {
	name := "peer"
	if c, err := x509.ParseCertificate(der); err == nil && c.Subject.CommonName != "" {
		name = strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
				return r
			}
			return '_'
		}, c.Subject.CommonName)
	}
	return name + "_" + Thumbprint(der)[:16] + ".der"
}

// Subject describes a certificate for messages.
func Subject(der []byte) string {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return "unparsable certificate"
	}
	return c.Subject.String()
}
