package opcua

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"strings"

	gopcua "github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	uacommon "github.com/flowd/flowd/common/opcua"
)

// connect picks the configured endpoint, checks the server's certificate
// against the trust list, and opens a session. Library auto-reconnect is off:
// the source reconnects itself.
func (s *Source) connect(ctx context.Context) (*gopcua.Client, error) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	eps, err := gopcua.GetEndpoints(rctx, s.cfg.Endpoint, gopcua.DialTimeout(s.cfg.RequestTimeout))
	if err != nil {
		return nil, fmt.Errorf("get endpoints: %w", err)
	}
	ep, err := s.pickEndpoint(eps)
	if err != nil {
		return nil, err
	}
	if s.policy != ua.SecurityPolicyURINone {
		if err := s.checkTrust(ep.ServerCertificate); err != nil {
			return nil, err
		}
	}
	opts := []gopcua.Option{
		gopcua.SecurityPolicy(s.policy),
		gopcua.SecurityMode(s.mode),
		gopcua.AutoReconnect(false),
		gopcua.RequestTimeout(s.cfg.RequestTimeout),
		gopcua.DialTimeout(s.cfg.RequestTimeout),
		gopcua.ApplicationName("flowd"),
		gopcua.ApplicationURI(s.cfg.ApplicationURI),
		gopcua.ProductURI("urn:flowd"),
		gopcua.SessionName("flowd " + s.env.Pipeline + "/" + s.env.Name),
	}
	var own []byte
	if s.policy != ua.SecurityPolicyURINone || s.cfg.UserCertificate != "" {
		der, key, err := s.ownCert()
		if err != nil {
			return nil, fmt.Errorf("application certificate: %w", err)
		}
		own = der
		opts = append(opts, gopcua.Certificate(der), gopcua.PrivateKey(key))
	}
	authType, auth, err := s.userAuth()
	if err != nil {
		return nil, err
	}
	opts = append(opts, auth...)
	if !offersToken(ep, authType) {
		return nil, fmt.Errorf("server endpoint %s/%s does not accept %s authentication",
			uacommon.PolicyName(s.policy), uacommon.ModeName(s.mode), strings.TrimPrefix(authType.String(), "UserTokenType"))
	}
	opts = append(opts, gopcua.SecurityFromEndpoint(ep, authType))
	c, err := gopcua.NewClient(s.cfg.Endpoint, opts...)
	if err != nil {
		return nil, err
	}
	if err := c.Connect(rctx); err != nil {
		c.Close(context.WithoutCancel(rctx))
		return nil, s.explainConnect(err, own)
	}
	return c, nil
}

// pickEndpoint returns the first endpoint with the configured security; the
// error lists what the server offers instead.
func (s *Source) pickEndpoint(eps []*ua.EndpointDescription) (*ua.EndpointDescription, error) {
	var ep *ua.EndpointDescription
	var offered []string
	for _, e := range eps {
		offered = append(offered, uacommon.PolicyName(e.SecurityPolicyURI)+"/"+uacommon.ModeName(e.SecurityMode))
		if e.SecurityPolicyURI == s.policy && e.SecurityMode == s.mode && ep == nil {
			ep = e
		}
	}
	if ep == nil {
		return nil, fmt.Errorf("server offers no endpoint with security %s/%s (it offers %s)",
			uacommon.PolicyName(s.policy), uacommon.ModeName(s.mode), strings.Join(offered, ", "))
	}
	return ep, nil
}

// userAuth returns the user token type flowd presents (user name, user
// certificate or anonymous) and the client options that carry it.
func (s *Source) userAuth() (ua.UserTokenType, []gopcua.Option, error) {
	var opts []gopcua.Option
	authType := ua.UserTokenTypeAnonymous
	switch {
	case s.cfg.Username != "":
		authType = ua.UserTokenTypeUserName
		opts = append(opts, gopcua.AuthUsername(s.cfg.Username, s.cfg.Password))
	case s.cfg.UserCertificate != "":
		authType = ua.UserTokenTypeCertificate
		der, err := uacommon.ReadCert(s.cfg.UserCertificate)
		if err != nil {
			return authType, nil, fmt.Errorf("user_certificate: %w", err)
		}
		kb, err := os.ReadFile(s.cfg.UserPrivateKey)
		if err != nil {
			return authType, nil, fmt.Errorf("user_private_key: %w", err)
		}
		key, err := uacommon.ParseKeyPEM(kb)
		if err != nil {
			return authType, nil, fmt.Errorf("user_private_key: %w", err)
		}
		opts = append(opts, gopcua.AuthCertificate(der), gopcua.AuthPrivateKey(key))
	default:
		opts = append(opts, gopcua.AuthAnonymous())
	}
	return authType, opts, nil
}

func offersToken(ep *ua.EndpointDescription, t ua.UserTokenType) bool {
	for _, tok := range ep.UserIdentityTokens {
		if tok.TokenType == t {
			return true
		}
	}
	return false
}

// authError is a refusal of flowd's identity (its user or its application
// certificate): retrying soon cannot help and may lock the account, so the
// source waits auth_retry before the next attempt.
type authError struct{ error }

func (e authError) Unwrap() error { return e.error }

var (
	userRefused = []ua.StatusCode{ua.StatusBadUserAccessDenied, ua.StatusBadIdentityTokenRejected, ua.StatusBadIdentityTokenInvalid}
	certRefused = []ua.StatusCode{ua.StatusBadCertificateUntrusted, ua.StatusBadSecurityChecksFailed, ua.StatusBadCertificateInvalid,
		ua.StatusBadCertificateRevoked, ua.StatusBadCertificateIssuerRevoked, ua.StatusBadCertificateUseNotAllowed,
		ua.StatusBadCertificateURIInvalid, ua.StatusBadCertificateTimeInvalid, ua.StatusBadCertificateRevocationUnknown}
)

// explainConnect turns the status codes of a refused session into a clear
// message; own is flowd's application certificate (nil without security).
func (s *Source) explainConnect(err error, own []byte) error {
	var sc ua.StatusCode
	if !errors.As(err, &sc) {
		return fmt.Errorf("connect: %w", err)
	}
	switch {
	case isOneOf(sc, userRefused):
		if s.cfg.Username != "" {
			return authError{fmt.Errorf("server refused user %q (%w): wrong username or password", s.cfg.Username, err)}
		}
		return authError{fmt.Errorf("server refused the user identity (%w)", err)}
	case isOneOf(sc, certRefused) && own != nil:
		where := s.cfg.Certificate
		if where == "" {
			where = s.pki.OwnCertPath()
		}
		return authError{fmt.Errorf("server refused flowd's application certificate %s (sha1 %s, %w): add it to the server's trusted certificates",
			where, uacommon.Thumbprint(own), err)}
	case isOneOf(sc, certRefused):
		return authError{fmt.Errorf("server refused this client's certificate (%w)", err)}
	}
	return fmt.Errorf("connect: %w", err)
}

// checkTrust accepts a server certificate found in trusted/ or named by
// trust_server_cert; auto_accept trusts it and stores it.
func (s *Source) checkTrust(der []byte) error {
	if len(der) == 0 {
		return errors.New("server sent no certificate for a secure endpoint")
	}
	thumb := uacommon.Thumbprint(der)
	if want := s.cfg.TrustServerCert; want != "" {
		if uacommon.NormalizeThumbprint(want) == thumb {
			return nil
		}
	}
	if s.pki.IsTrusted(der) {
		return nil
	}
	if s.cfg.AutoAccept {
		path, err := s.pki.Trust(der)
		if err != nil {
			return fmt.Errorf("auto_accept: %w", err)
		}
		s.log.Warn("auto_accept: trusting server certificate", "subject", uacommon.Subject(der), "sha1", thumb, "stored", path)
		return nil
	}
	path, err := s.pki.Reject(der)
	if err != nil {
		path = "(could not store it: " + err.Error() + ")"
	}
	return fmt.Errorf("server certificate %q (sha1 %s) is not trusted: copy %s into %s, or set trust_server_cert = %q",
		uacommon.Subject(der), thumb, path, s.pki.TrustedDir(), thumb)
}

func (s *Source) ownCert() ([]byte, *rsa.PrivateKey, error) {
	if s.cfg.Certificate != "" {
		der, err := uacommon.ReadCert(s.cfg.Certificate)
		if err != nil {
			return nil, nil, err
		}
		kb, err := os.ReadFile(s.cfg.PrivateKey)
		if err != nil {
			return nil, nil, err
		}
		key, err := uacommon.ParseKeyPEM(kb)
		return der, key, err
	}
	return s.pki.Own(s.cfg.ApplicationURI, "flowd")
}
