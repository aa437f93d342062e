package pointexpr

import (
	"errors"
	"strings"
	"testing"

	"github.com/flowd/flowd/engine"
)

// A compile error suggests the likely fix, at the same column as before.
func TestCompileErrorsSuggestFixes(t *testing.T) {
	for _, c := range []struct {
		src, want string
		off       int
	}{
		{"quality = 'good'", "did you mean == (a comparison)?", 8},
		{"c_to_F(value) > 30", "unknown name c_to_F; did you mean c_to_f?", 0},
		{"Quality == 'good'", "did you mean quality?", 0},
		{"tag == 'a' && valeu > 3", "did you mean value?", 14},
		{"lenn(tag) > 3", "did you mean len?", 0},
	} {
		_, err := Compile("where", engine.Expr{Src: c.src}, engine.KindBool)
		var fe *engine.FieldError
		if !errors.As(err, &fe) {
			t.Fatalf("%q: %v, want a FieldError", c.src, err)
		}
		if !strings.Contains(fe.Err.Error(), c.want) || fe.Offset != c.off {
			t.Errorf("%q: %q at %d, want %q at %d", c.src, fe.Err, fe.Offset, c.want, c.off)
		}
	}
	// No made-up suggestion for a name far from every known one.
	_, err := Compile("where", engine.Expr{Src: "temperature_sensor_7 > 3"}, engine.KindBool)
	if err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Errorf("unrelated name: %v", err)
	}
}
