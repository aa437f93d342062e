package engine

import "time"

// Batching is the group of attributes of a source that gathers points into
// batches before handing them on; a source embeds it (written flat) and
// may set its own defaults and docs on the embedding field.
type Batching struct {
	BatchSize int           `hcl:"batch_size" default:"1000" doc:"most points handed to the pipeline at once (at most 1,000,000)"`
	Linger    time.Duration `hcl:"linger" default:"20ms" doc:"longest wait to fill a batch"`
}

// Check adds the group's problems to bad.
func (b *Batching) Check(bad *Problems) {
	bad.Between("batch_size", int64(b.BatchSize), 1, MaxBatchSize)
	if b.Linger < 0 {
		bad.Addf("linger", "must not be negative")
	}
}
