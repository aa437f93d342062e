package kafka

import "sync"

// partTracker is the commit logic of one assigned partition: the spans of
// records handed to the pipeline, in offset order, each acknowledged on its
// own and in any order. The offset to commit is the end of the longest
// acknowledged prefix, so nothing is committed past a record that some sink
// has not yet taken. A partition that is revoked keeps no say: its tracker
// is retired and later acknowledgements of its spans change nothing.
//
// Safe for concurrent use: spans are added by the poll loop and
// acknowledged from the sinks' goroutines.
type partTracker struct {
	mu        sync.Mutex
	committed int64  // next offset to commit: every record below it is acknowledged
	spans     []span // pending spans, oldest first, from head
	head      int
	first     uint64 // sequence number of spans[head]
	retired   bool
}

type span struct {
	end  int64 // offset after the span's last record
	done bool
}

// newPartTracker starts at the partition's consume position: the committed
// offset, or the first fetched record's offset when nothing was committed.
func newPartTracker(start int64) *partTracker {
	return &partTracker{committed: start}
}

// add registers the records up to (not including) end as one span and
// returns its sequence number for ack. Spans must be added in offset order.
func (t *partTracker) add(end int64) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.head > 0 && t.head*2 >= len(t.spans) {
		// Compact: the acknowledged prefix is gone, keep the pending rest.
		n := copy(t.spans, t.spans[t.head:])
		t.spans = t.spans[:n]
		t.head = 0
	}
	t.spans = append(t.spans, span{end: end})
	return t.first + uint64(len(t.spans)-1-t.head)
}

// ack marks span seq acknowledged; ok false means some sink did not take
// its points, and the span then never counts as done (the source restarts
// from the committed offset). It reports whether the committable offset
// moved.
func (t *partTracker) ack(seq uint64, ok bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.retired || seq < t.first {
		return false
	}
	i := t.head + int(seq-t.first)
	if i >= len(t.spans) {
		return false
	}
	if !ok {
		return false
	}
	t.spans[i].done = true
	moved := false
	for t.head < len(t.spans) && t.spans[t.head].done {
		t.committed = t.spans[t.head].end
		t.spans[t.head] = span{}
		t.head++
		t.first++
		moved = true
	}
	if t.head == len(t.spans) {
		t.spans = t.spans[:0]
		t.head = 0
	}
	return moved
}

// position is the offset to commit.
func (t *partTracker) position() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.committed
}

// retire ends the tracker (the partition was revoked or lost):
// acknowledgements after this are ignored. A partition from which no record
// was fetched has no tracker: nil is a no-op.
func (t *partTracker) retire() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.retired = true
}
