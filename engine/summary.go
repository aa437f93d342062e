package engine

import (
	"fmt"
	"sort"
	"strings"
)

// SummaryAttrs is the exit summary: totals that add up, and where each part
// went. Each sink gets its own copy of the points reaching it, so
// delivered_by shows per sink what it took; filtered_by shows what each
// transform held back on purpose (where false, unchanged values).
func (st Status) SummaryAttrs() []any {
	var total PointCounts
	var filtered, delivered, dropped []string
	for _, p := range st.Pipelines {
		prefix := ""
		if len(st.Pipelines) > 1 {
			prefix = p.Name + "/"
		}
		total.In += p.Points.In
		total.Filtered += p.Points.Filtered
		total.Dropped += p.Points.Dropped
		total.Delivered += p.Points.Delivered
		total.Pending += p.Points.Pending
		for _, c := range p.Components {
			if c.Filtered > 0 {
				filtered = append(filtered, fmt.Sprintf("%s%s=%d", prefix, c.ID, c.Filtered))
			}
			if c.Kind == KindSink {
				delivered = append(delivered, fmt.Sprintf("%s%s=%d", prefix, c.ID, c.Delivered))
			}
			reasons := make([]string, 0, len(c.Dropped))
			for r := range c.Dropped {
				reasons = append(reasons, r)
			}
			sort.Strings(reasons)
			for _, r := range reasons {
				dropped = append(dropped, fmt.Sprintf("%s%s:%s=%d", prefix, c.ID, r, c.Dropped[r]))
			}
		}
	}
	attrs := []any{"points_in", total.In, "points_filtered", total.Filtered, "points_delivered", total.Delivered,
		"points_dropped", total.Dropped, "points_pending", total.Pending}
	if len(filtered) > 0 {
		attrs = append(attrs, "filtered_by", strings.Join(filtered, ","))
	}
	if len(delivered) > 0 {
		attrs = append(attrs, "delivered_by", strings.Join(delivered, ","))
	}
	if len(dropped) > 0 {
		attrs = append(attrs, "dropped_by", strings.Join(dropped, ","))
	}
	return attrs
}
