package opcua

import (
	"fmt"
	"strings"

	"github.com/gopcua/opcua/ua"
)

// Policies are the security policy names flowd accepts, in config spelling.
var Policies = []string{"None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss", "Basic256", "Basic128Rsa15"}

// PolicyURI maps a policy name (or its full URI) to the URI.
func PolicyURI(name string) (string, error) {
	short := strings.TrimPrefix(name, "http://opcfoundation.org/UA/SecurityPolicy#")
	for _, p := range Policies {
		if strings.EqualFold(p, short) {
			return "http://opcfoundation.org/UA/SecurityPolicy#" + p, nil
		}
	}
	return "", fmt.Errorf("unknown security policy %q (want one of %s)", name, strings.Join(Policies, ", "))
}

// PolicyName is the short name of a policy URI.
func PolicyName(uri string) string {
	return strings.TrimPrefix(uri, "http://opcfoundation.org/UA/SecurityPolicy#")
}

// Mode parses a message security mode: None, Sign or SignAndEncrypt.
func Mode(name string) (ua.MessageSecurityMode, error) {
	switch strings.ToLower(name) {
	case "none":
		return ua.MessageSecurityModeNone, nil
	case "sign":
		return ua.MessageSecurityModeSign, nil
	case "signandencrypt", "sign_and_encrypt":
		return ua.MessageSecurityModeSignAndEncrypt, nil
	}
	return ua.MessageSecurityModeInvalid, fmt.Errorf("unknown security mode %q (want None, Sign or SignAndEncrypt)", name)
}

// ModeName is the config spelling of a mode.
func ModeName(m ua.MessageSecurityMode) string {
	switch m {
	case ua.MessageSecurityModeNone:
		return "None"
	case ua.MessageSecurityModeSign:
		return "Sign"
	case ua.MessageSecurityModeSignAndEncrypt:
		return "SignAndEncrypt"
	}
	return m.String()
}
