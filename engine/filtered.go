package engine

// countFiltered records what one Process call did not pass on and did not
// drop or reject either: the points the transform filtered out by design.
// drops is dropsN before the call.
func (n *node) countFiltered(in, out int, drops int64) {
	if f := int64(in-out) - (n.dropsN.Load() - drops); f > 0 {
		n.filteredN.Add(f)
	}
}

// filtered is the number of points the transform filtered out by design.
func (n *node) filtered() int64 { return n.filteredN.Load() }
