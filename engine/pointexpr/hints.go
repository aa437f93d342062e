package pointexpr

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/agext/levenshtein"
	exprbuiltin "github.com/expr-lang/expr/builtin"
)

// names are every identifier an expression can use: the point's fields, the
// plant functions and expr's built-ins, for "did you mean" hints.
var names = func() []string {
	var n []string
	t := reflect.TypeFor[Env]()
	for i := 0; i < t.NumField(); i++ {
		n = append(n, t.Field(i).Tag.Get("expr"))
	}
	for name := range numFuncs {
		n = append(n, name)
	}
	n = append(n, "now", "str", "substr", "field")
	return append(n, exprbuiltin.Names...)
}()

var unknownName = regexp.MustCompile(`^unknown name (\S+)`)

// hint adds a likely fix to an expr compile message: `=` where a
// comparison was meant, or the known name nearest to an unknown one.
func hint(src string, off int, msg string, known []string) string {
	if m := unknownName.FindStringSubmatch(msg); m != nil {
		if s := nearest(m[1], known); s != "" {
			return fmt.Sprintf("%s; did you mean %s?", msg, s)
		}
		return msg
	}
	if strings.Contains(msg, `Operator("=")`) && off >= 0 && off < len(src) && src[off] == '=' {
		return msg + "; did you mean == (a comparison)?"
	}
	return msg
}

// nearest is the known name closest to s when it is a likely typo: equal
// but for case, or within an edit distance of about a third of its length.
func nearest(s string, known []string) string {
	best, bestD := "", 1<<30
	for _, c := range known {
		if strings.EqualFold(c, s) {
			return c
		}
		if d := levenshtein.Distance(s, c, nil); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" || bestD > max(2, len(s)/3) {
		return ""
	}
	return best
}
