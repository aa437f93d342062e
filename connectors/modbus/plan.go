package modbus

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// block is one read request: count registers (or bits) of a table from
// start, and the tags decoded from its answer.
type block struct {
	table table
	start int
	count int
	tags  []*tag
}

// group is the tags of one device polled at one interval.
type group struct {
	interval time.Duration
	blocks   []*block
	points   int
}

// plan groups a device's tags by interval and merges each group's tags
// into as few reads as the device's limits allow. Within a table, sorted
// by address, a greedy sweep is optimal: a read starts at the first tag not
// yet covered and takes every following tag that still fits within maxRegs
// (maxBits) of its start and lies within maxGap of the read's end.
func plan(d *device) []*group {
	byInterval := map[time.Duration][]*tag{}
	for _, t := range d.tags {
		byInterval[t.interval] = append(byInterval[t.interval], t)
	}
	var groups []*group
	for iv, tags := range byInterval {
		g := &group{interval: iv, points: len(tags)}
		sorted := append([]*tag(nil), tags...)
		sort.SliceStable(sorted, func(i, j int) bool {
			a, b := sorted[i], sorted[j]
			if a.table != b.table {
				return a.table < b.table
			}
			if a.addr != b.addr {
				return a.addr < b.addr
			}
			return a.end() < b.end()
		})
		var cur *block
		for _, t := range sorted {
			limit, gap := d.maxRegs, d.maxGap
			if t.table.bits() {
				limit, gap = d.maxBits, d.maxGap*16
			}
			if cur != nil && cur.table == t.table && t.addr <= cur.start+cur.count+gap && t.end()-cur.start <= limit {
				cur.count = max(cur.count, t.end()-cur.start)
				cur.tags = append(cur.tags, t)
				continue
			}
			cur = &block{table: t.table, start: t.addr, count: t.size, tags: []*tag{t}}
			g.blocks = append(g.blocks, cur)
		}
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].interval < groups[j].interval })
	return groups
}

// describePlan renders the reads of every device, one line per request.
func describePlan(devs []*device, plans [][]*group) string {
	var b strings.Builder
	reqs, tags := 0, 0
	for i, d := range devs {
		fmt.Fprintf(&b, "device %q %s unit %d asset %q\n", d.name, d.endpoint, d.unit, d.asset)
		for _, g := range plans[i] {
			fmt.Fprintf(&b, "  every %s: %d tags in %d reads\n", g.interval, g.points, len(g.blocks))
			for _, bl := range g.blocks {
				unit := "registers"
				if bl.table.bits() {
					unit = "bits"
				}
				var names []string
				for k, t := range bl.tags {
					if len(bl.tags) > 8 && k == 3 {
						names = append(names, fmt.Sprintf("… (%d tags) …", len(bl.tags)-4))
					}
					if len(bl.tags) <= 8 || k < 3 || k == len(bl.tags)-1 {
						names = append(names, t.name)
					}
				}
				fmt.Fprintf(&b, "    read %-8s %5d +%-4d %-9s %s\n", bl.table, bl.start, bl.count, unit, strings.Join(names, " "))
				reqs++
				tags += len(bl.tags)
			}
		}
	}
	fmt.Fprintf(&b, "%d devices, %d tags, %d reads per cycle\n", len(devs), tags, reqs)
	return b.String()
}

// split divides a read the device refused: into its runs of adjacent tags
// when it spans holes, else into one read per address.
func split(bl *block) []*block {
	var parts []*block
	var cur *block
	for _, t := range bl.tags {
		if cur != nil && t.addr <= cur.start+cur.count-1 {
			cur.count = max(cur.count, t.end()-cur.start)
			cur.tags = append(cur.tags, t)
			continue
		}
		if cur != nil && t.addr == cur.start+cur.count && !bl.gapless() {
			cur.count = t.end() - cur.start
			cur.tags = append(cur.tags, t)
			continue
		}
		cur = &block{table: bl.table, start: t.addr, count: t.size, tags: []*tag{t}}
		parts = append(parts, cur)
	}
	return parts
}

// gapless reports whether the block's tags cover every register it reads.
func (bl *block) gapless() bool {
	end := bl.start
	for _, t := range bl.tags {
		if t.addr > end {
			return false
		}
		end = max(end, t.end())
	}
	return true
}
