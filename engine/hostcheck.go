package engine

import (
	"fmt"
	"net"
	"net/http"
	"strings"
)

// AllowHosts guards the admin endpoint against DNS rebinding: a web page in
// an operator's browser that makes its own name resolve to 127.0.0.1 sends
// requests with its own name as Host. Only these Hosts are served:
//   - an IP address literal: the bound address, or the address a port
//     mapping forwards from (docker -p 127.0.0.1:9180:9180 and NAT make
//     them differ); a rebinding page always sends a name, never an address,
//   - localhost and *.localhost (resolved to loopback by browsers, never by
//     DNS),
//   - the names in allowed ("*" allows any Host: the check is off).
//
// Anything else is answered 403 before the handler runs, as Syncthing's GUI
// and local development servers (Vite's allowedHosts) do.
func AllowHosts(h http.Handler, allowed []string) http.Handler {
	names := make(map[string]bool, len(allowed))
	for _, a := range allowed {
		if a == "*" {
			return h
		}
		names[normHost(a)] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hostAllowed(r, names) {
			h.ServeHTTP(w, r)
			return
		}
		http.Error(w, fmt.Sprintf("flowd: Host %q is not served here; add it to service.allowed_hosts to allow it", r.Host), http.StatusForbidden)
	})
}

func normHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

func hostAllowed(r *http.Request, names map[string]bool) bool {
	if r.Host == "" {
		return true // HTTP/1.0 without a Host: no browser sends that
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = normHost(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || names[host] {
		return true
	}
	return net.ParseIP(host) != nil
}
