package engine

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
)

// Secrets in URLs and connection strings never reach an output: every log
// record (through RedactHandler), every component's last error, and the
// CLI's diagnostics pass through Redact.

var (
	// scheme://userinfo@ — greedy up to the last @ of the authority, as
	// net/url splits it, so a password holding an @ is redacted whole.
	urlUserinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.\-]*://)([^/?#\s"'<>\\@]*(?:@[^/?#\s"'<>\\@]*)*)@`)
	// key=value secrets of connection strings and query strings.
	keyValueSecret = regexp.MustCompile(`(?i)\b(SharedAccessKey|SharedAccessSignature|password|passwd|pwd|secret|token|access_token|api_key|apikey)=([^;&\s"'<>]+)`)
)

// Redacted replaces a secret.
const Redacted = "xxxxx"

// Redact hides the userinfo password of every URL in s ("mqtt://user:xxxxx@host",
// as net/url's URL.Redacted does; a userinfo without a password may itself be
// a token and is hidden whole) and the value of password-like key=value pairs
// (connection strings, query strings).
func Redact(s string) string {
	if strings.Contains(s, "://") {
		s = urlUserinfo.ReplaceAllStringFunc(s, func(m string) string {
			sm := urlUserinfo.FindStringSubmatch(m)
			if user, _, ok := strings.Cut(sm[2], ":"); ok {
				return sm[1] + user + ":" + Redacted + "@"
			}
			return sm[1] + Redacted + "@"
		})
	}
	if strings.IndexByte(s, '=') >= 0 {
		s = keyValueSecret.ReplaceAllString(s, "${1}="+Redacted)
	}
	return s
}

// RedactError returns err's message with its secrets hidden.
func RedactError(err error) string {
	if err == nil {
		return ""
	}
	return Redact(err.Error())
}

// RedactHandler wraps a log handler so that no record carries a secret: the
// message and every string, error or formatted value pass through Redact.
func RedactHandler(h slog.Handler) slog.Handler { return redactHandler{h} }

type redactHandler struct{ h slog.Handler }

func (r redactHandler) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, Redact(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = redactAttr(a)
	}
	return redactHandler{r.h.WithAttrs(red)}
}

func (r redactHandler) WithGroup(name string) slog.Handler { return redactHandler{r.h.WithGroup(name)} }

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Redact(v.String()))
	case slog.KindGroup:
		g := v.Group()
		red := make([]any, len(g))
		for i, x := range g {
			red[i] = redactAttr(x)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, RedactError(x))
		case fmt.Stringer:
			return slog.String(a.Key, Redact(x.String()))
		case []string:
			red := make([]string, len(x))
			for i, s := range x {
				red[i] = Redact(s)
			}
			return slog.Any(a.Key, red)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
