package engine

import (
	"errors"
	"testing"
)

// TestBatchingCheck checks the shared batching attributes' bounds, each
// blamed on its own attribute.
func TestBatchingCheck(t *testing.T) {
	for _, c := range []struct {
		b    Batching
		want []string
	}{
		{Batching{BatchSize: 1, Linger: 0}, nil},
		{Batching{BatchSize: MaxBatchSize, Linger: 1}, nil},
		{Batching{BatchSize: 0, Linger: 0}, []string{"batch_size"}},
		{Batching{BatchSize: MaxBatchSize + 1, Linger: -1}, []string{"batch_size", "linger"}},
	} {
		var bad Problems
		c.b.Check(&bad)
		var got []string
		for _, e := range bad {
			var fe *FieldError
			if errors.As(e, &fe) {
				got = append(got, fe.Field)
			}
		}
		if len(got) != len(c.want) || (len(got) > 0 && (got[0] != c.want[0] || got[len(got)-1] != c.want[len(c.want)-1])) {
			t.Errorf("%+v: problems on %v, want %v", c.b, got, c.want)
		}
	}
}
