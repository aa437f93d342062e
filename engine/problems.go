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

// Resource limits shared by components, checked when a config is validated:
// generous for any real gateway, low enough that a mistyped value is refused
// with a diagnostic instead of exhausting memory at run time.
const (
	// MaxBatchSize bounds a source's batch_size (points per batch).
	MaxBatchSize = 1_000_000
	// MaxPendingPoints bounds the points a source holds or leaves
	// unacknowledged (queue, max_pending, max_in_flight).
	MaxPendingPoints = 10_000_000
	// MaxMessageSize bounds one message, body, line or fetch (256 MiB, the
	// largest MQTT packet).
	MaxMessageSize = 256 << 20
)

// Between blames field unless lo ≤ v ≤ hi, with the existing wording
// ("must be between 1 and 1000000").
func (p *Problems) Between(field string, v, lo, hi int64) {
	if v < lo || v > hi {
		p.Addf(field, "must be between %d and %d", lo, hi)
	}
}
