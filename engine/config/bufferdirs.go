package config

import (
	"fmt"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
)

// bufferClaim is a sink's disk buffer directory and where it was set (the
// dir attribute, or the buffer block for the default directory).
type bufferClaim struct {
	pipeline, sink, dir string
	at                  hcl.Range
}

// checkBufferDirs reports every disk buffer whose directory an earlier sink
// of the configuration (in any pipeline) already uses: the second would fail
// to open at start (the directory is locked), or worse, share its segments.
// Paths are compared absolute and cleaned, as the buffer opens them.
func checkBufferDirs(claims []bufferClaim) hcl.Diagnostics {
	var diags hcl.Diagnostics
	first := map[string]bufferClaim{}
	for _, c := range claims {
		key, err := filepath.Abs(c.dir)
		if err != nil {
			key = filepath.Clean(c.dir)
		}
		prev, dup := first[key]
		if !dup {
			first[key] = c
			continue
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Disk buffer directory used twice",
			Detail: fmt.Sprintf("sink %q of pipeline %q buffers in %s, as sink %q of pipeline %q does (%s). "+
				"Two disk buffers cannot share a directory: give one of them another dir.",
				c.sink, c.pipeline, key, prev.sink, prev.pipeline, prev.at.String()),
			Subject: c.at.Ptr()})
	}
	return diags
}
