package engine

import (
	"errors"
	"fmt"
)

// Problems collects every problem a constructor finds in its config, so that
// validation reports them all, not only the first. Err joins them; the
// loader turns each FieldError into its own diagnostic.
type Problems []error

// Add blames field for err.
func (p *Problems) Add(field string, err error) {
	*p = append(*p, &FieldError{Field: field, Offset: -1, Err: err})
}

// Addf blames field for a formatted problem.
func (p *Problems) Addf(field, format string, args ...any) {
	p.Add(field, fmt.Errorf(format, args...))
}

// Err is nil when nothing was added.
func (p Problems) Err() error { return errors.Join(p...) }

// SplitErrors returns the errors joined in err (itself when it is not a join).
func SplitErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, SplitErrors(e)...)
		}
		return out
	}
	return []error{err}
}
