// Package diskq is flowd's store-and-forward disk buffer: a bounded queue of
// point batches in segmented, append-only, checksummed files that survives
// restarts, SIGKILL and power cuts, and replays in order.
//
// Push encodes a batch into one record, appends it to the current segment,
// fsyncs (per policy) and only then acknowledges the batch upstream. Pop reads
// the backlog one record at a time, so a backlog of any size costs a few
// buffers of memory. The Ack of a popped batch advances the committed
// position, which is persisted in the cursor file; segments wholly before it
// are deleted. On open, a torn record at the tail of the last segment of a run
// that did not stop cleanly (a crash mid-append) is cut off; any other
// unreadable data (a record that fails its checksum, a segment cut short or
// deleted) marks its segment corrupt: the segment is hard-linked into corrupt/
// for inspection, reported, the points it held counted as dropped (from its
// seal, or estimated and labelled so when the seal is gone), and replay
// continues with the next segment.
package diskq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/flowd/flowd/engine"
)

// Options configure a Queue.
type Options struct {
	Dir string
	// MaxBytes bounds the backlog on disk; 0 means unbounded.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment is started; 0 derives
	// it from MaxBytes (an eighth, between 256 KiB and 64 MiB).
	SegmentBytes int64
	// WhenFull is block (the default), drop_oldest or drop_newest.
	WhenFull string
	// Fsync is batch (the default: every Push is on stable storage before it
	// is acknowledged), interval (every SyncInterval) or never (left to the
	// kernel: survives a crash of flowd, not of the machine).
	Fsync        string
	SyncInterval time.Duration
	Logger       *slog.Logger
	// OnDrop counts points dropped by the when_full policy (reason
	// "buffer_full") or lost in a corrupt segment (reason "corrupt").
	OnDrop func(points int, reason string)
}

type segment struct {
	id   uint64
	size int64 // bytes of valid data, header included
	// points in the segment's records from where reading started; readPoints
	// of them have been read; base points lie before where reading started.
	points, readPoints, base int64
	writing                  bool // the append target (q.mu)
}

const (
	statePending = iota
	stateDone
	stateFailed
)

// entry is a record that has been read and not yet committed.
type entry struct {
	end    cursor
	points int64
	bytes  int64
	ingest int64 // wall clock
	state  uint8
}

// Counters are the queue's lifetime counters.
type Counters struct {
	CorruptSegments int64
	CorruptPoints   int64
	// CorruptPointsEstimated is the part of CorruptPoints that is an
	// estimate: points of damaged segments whose seal is gone too.
	CorruptPointsEstimated int64
	TornBytes              int64
	DroppedFull            int64
}

// Queue is a disk buffer. It implements engine.Buffer.
type Queue struct {
	opts    Options
	log     *slog.Logger
	dir     string
	lockF   *os.File
	segSize int64

	wmu      sync.Mutex // the writer: Push
	wfile    *os.File
	wseg     *segment // nil until a full disk lets the first segment be created
	nextSeg  uint64   // the id of the write segment still to create
	lastSync time.Time
	unsynced bool
	enc      []byte

	// fsync = "interval": a syncer fsyncs what the last appends left.
	stopSync chan struct{}
	syncDone chan struct{}
	stopOnce sync.Once

	rmu   sync.Mutex // the reader: Pop, TryPop and drop_oldest
	rfile *os.File
	rseg  *segment
	roff  int64
	rbuf  []byte
	names map[string]string // interned names for decoding

	mu             sync.Mutex // shared state
	segs           []*segment
	unreadPoints   int64
	unreadBytes    int64
	inflightPoints int64
	inflightBytes  int64
	inflight       []*entry
	commit         cursor
	curF           *os.File // the cursor file, rewritten in place on every commit
	nextIngest     int64
	inputClosed    bool
	closed         bool
	counters       Counters

	notEmpty chan struct{}
	notFull  chan struct{}
}

// Open opens (or creates) the queue in opts.Dir, recovering what a previous
// run left there.
func Open(opts Options) (*Queue, error) {
	if opts.Dir == "" {
		return nil, errors.New("diskq: no directory")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.OnDrop == nil {
		opts.OnDrop = func(int, string) {}
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = time.Second
	}
	switch opts.WhenFull {
	case "":
		opts.WhenFull = "block"
	case "block", "drop_oldest", "drop_newest":
	default:
		return nil, fmt.Errorf("diskq: unknown when_full %q", opts.WhenFull)
	}
	switch opts.Fsync {
	case "":
		opts.Fsync = "batch"
	case "batch", "interval", "never":
	default:
		return nil, fmt.Errorf("diskq: unknown fsync %q", opts.Fsync)
	}
	seg := opts.SegmentBytes
	if seg <= 0 {
		seg = 64 << 20
		if opts.MaxBytes > 0 {
			seg = min(max(opts.MaxBytes/8, 256<<10), 64<<20)
		}
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	lf, err := lockDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	q := &Queue{
		opts: opts, log: opts.Logger.With("buffer", opts.Dir), dir: opts.Dir, lockF: lf, segSize: seg,
		notEmpty: make(chan struct{}, 1), notFull: make(chan struct{}, 1),
	}
	if err := q.recover(); err != nil {
		q.closeFiles()
		return nil, err
	}
	if opts.Fsync == "interval" {
		q.stopSync, q.syncDone = make(chan struct{}), make(chan struct{})
		go q.syncer()
	}
	return q, nil
}

// syncer fsyncs appends an idle writer left unsynced (fsync = "interval").
func (q *Queue) syncer() {
	defer close(q.syncDone)
	t := time.NewTicker(q.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-q.stopSync:
			return
		case <-t.C:
			q.wmu.Lock()
			if q.unsynced && q.wfile != nil && time.Since(q.lastSync) >= q.opts.SyncInterval {
				if err := q.wfile.Sync(); err != nil {
					q.log.Error("disk buffer: fsync failed", "err", err)
				} else {
					q.unsynced, q.lastSync = false, time.Now()
				}
			}
			q.wmu.Unlock()
		}
	}
}

// recover scans the directory: it drops delivered segments, cuts a torn tail,
// reports every segment that is damaged or missing, counts the backlog and
// starts a fresh segment for appends.
//
// What cannot be read is counted as dropped (reason "corrupt"), logged at
// ERROR with the file and hard-linked into corrupt/. The count comes from the
// segment's seal (exact); where the seal is gone too, it is estimated from the
// points per byte of the readable records and logged as points_lost_estimated.
// Only the last segment of a run that did not stop cleanly may end in an
// incomplete record: an interrupted append, never acknowledged, cut off.
func (q *Queue) recover() error {
	ids, err := listSegments(q.dir)
	if err != nil {
		return err
	}
	cur, ok := readCursor(q.dir)
	if !ok && len(ids) > 0 {
		cur = cursor{seg: ids[0], off: segHdrSize}
	}
	tmps, _ := filepath.Glob(filepath.Join(q.dir, "*"+segSuffix+tmpSuffix))
	for _, tmp := range tmps {
		os.Remove(tmp) // a cut of a damaged segment a crash interrupted
	}
	cleanLast, clean := readCleanMark(q.dir)
	exists := make(map[uint64]bool, len(ids))
	for _, id := range ids {
		exists[id] = true
	}
	order := q.pending(ids, exists, cur, clean, cleanLast)
	scans, estimate, err := q.scanAll(order, exists, cur, clean, cleanLast)
	if err != nil {
		return err
	}

	// Account for every segment in order.
	prev := cur.seg
	var last uint64
	for i, id := range order {
		last = id
		if id > prev+1 {
			q.lostGap(prev, id, estimate)
		}
		prev = id
		if !exists[id] {
			q.lostMissing(id, cur, estimate)
			continue
		}
		if q.recoverSegment(id, scans[id], cur, i == len(order)-1, clean, estimate) {
			// The last one (an empty tail): the write segment takes its
			// id again, so no gap is left and no tombstone is needed.
			last = id - 1
		}
	}
	return q.resume(max(last, cur.seg)+1, clean)
}

// lostGap accounts for the segments between prev and id that are gone
// with their seals: estimated, and tombstoned (up to maxTombstones).
func (q *Queue) lostGap(prev, id uint64, estimate func(bytes int64) int64) {
	gap := id - prev - 1
	q.lost(prev+1, fmt.Sprintf("%d segment(s) missing from here on (deleted, seals missing too)", gap), 0,
		int64(gap)*estimate(q.segSize-segHdrSize), true, "", false)
	for g := prev + 1; g < id && g-prev <= maxTombstones; g++ {
		q.tombstone(g)
	}
}

// lostMissing accounts for a deleted segment: exactly from its seal, or
// estimated where the seal is gone too; it leaves a tombstone.
func (q *Queue) lostMissing(id uint64, cur cursor, estimate func(bytes int64) int64) {
	from, before := q.startOf(id, cur), cur.pointsBefore(id)
	total, sealed := readSeal(q.dir, id)
	switch {
	case sealed && total-before <= 0:
		// A tombstone, or a segment whose points were all delivered.
	case sealed:
		q.lost(id, "segment missing (deleted)", 0, max(total-before, 0), id == cur.seg && cur.before < 0 && cur.off > segHdrSize, "", false)
	default:
		q.lost(id, "segment missing (deleted, seal missing too)", 0, estimate(q.segSize-from), true, "", false)
	}
	q.tombstone(id)
}

// recoverSegment accounts for segment id, present on disk and scanned as r:
// damage is counted and quarantined, the readable rest joins the backlog,
// and a segment with nothing left to read is removed. It reports whether
// id was the empty tail (last, undamaged), whose id the write segment may
// take again.
func (q *Queue) recoverSegment(id uint64, r scanResult, cur cursor, last, clean bool, estimate func(bytes int64) int64) (emptyTail bool) {
	from, before := q.startOf(id, cur), cur.pointsBefore(id)
	total, sealed := readSeal(q.dir, id)
	before = max(before, r.before)
	damaged, lost, estimated := q.assessDamage(id, r, cur, from, before, total, sealed, last, clean, estimate)
	size := max(r.validEnd, 0)
	isolated := ""
	if damaged {
		what := "damaged segment: records after the offset cannot be read"
		if r.validEnd < segHdrSize {
			what = "damaged segment: cut short or overwritten"
		} else if !r.invalid {
			what = "damaged segment: cut short (fewer points than its seal)"
		}
		isolated = q.quarantine(id)
		q.lost(id, what, size, lost, estimated, isolated, true)
	}
	from = min(from, size)
	if size-from <= 0 || size <= segHdrSize {
		os.Remove(filepath.Join(q.dir, segName(id)))
		if last && !damaged {
			os.Remove(filepath.Join(q.dir, sealName(id)))
			return true
		}
		q.tombstone(id)
		return false
	}
	if damaged {
		q.keepReadable(id, r, isolated)
	}
	s := &segment{id: id, size: size, points: r.points, base: before}
	if len(q.segs) == 0 {
		q.rseg, q.roff = s, from
		q.nextIngest = r.firstIngest
	}
	q.segs = append(q.segs, s)
	q.unreadBytes += size - from
	q.unreadPoints += r.points
	return false
}

// assessDamage tells whether a present segment is damaged and how many
// points are lost: exactly from its seal, else estimated from the bytes
// that cannot be read. Only the last segment of a run that did not stop
// cleanly may end early without being damaged.
func (q *Queue) assessDamage(id uint64, r scanResult, cur cursor, from, before, total int64, sealed, last, clean bool,
	estimate func(bytes int64) int64) (damaged bool, lost int64, estimated bool) {
	damaged = r.invalid || (r.validEnd < segHdrSize && (sealed || !last || clean))
	switch {
	case sealed:
		lost = max(total-before-r.points, 0)
		damaged = damaged || lost > 0
		// A cursor of an older version does not say how many points lie
		// before it; when the damage is before it too, lost is at most this.
		estimated = lost > 0 && id == cur.seg && cur.before < 0 && r.validEnd < from
	case damaged:
		unread := r.fileSize - max(r.validEnd, from)
		if r.validEnd < segHdrSize {
			unread = max(q.segSize, r.fileSize) - from // cut short: its size is lost too
		}
		lost, estimated = estimate(unread), true
	}
	return damaged, lost, estimated
}

// pointsBefore is how many points of segment id the cursor has passed
// (none where an older version's cursor does not say).
func (c cursor) pointsBefore(id uint64) int64 {
	if id != c.seg {
		return 0
	}
	return max(c.before, 0)
}

// resume starts the write segment next (or leaves it to the first append
// when the disk is full), positions the reader at the backlog's start,
// persists that as the committed position and removes the clean-stop mark.
func (q *Queue) resume(next uint64, clean bool) error {
	q.nextSeg = next
	if err := q.newWriteSegment(q.nextSeg); err != nil {
		// A full disk must not keep the backlog that would free it from
		// draining: appends create the segment once there is room.
		q.log.Warn("disk buffer: cannot start a new segment; appends wait for space, the backlog drains", "err", err)
	}
	switch {
	case q.rseg != nil:
	case q.wseg != nil:
		q.rseg, q.roff = q.wseg, segHdrSize
	default: // nothing to read, no segment yet: a stand-in without a file
		q.rseg, q.roff = &segment{id: q.nextSeg - 1, size: segHdrSize}, segHdrSize
	}
	q.commit = cursor{seg: q.rseg.id, off: q.roff, before: q.rseg.base}
	if q.rseg == q.wseg || q.rseg.size > segHdrSize {
		roff := q.roff
		if err := q.openReader(q.rseg); err != nil {
			return err
		}
		q.roff = roff
	}
	if q.unreadPoints > 0 {
		q.log.Info("disk buffer: replaying backlog", "points", q.unreadPoints, "bytes", q.unreadBytes, "segments", len(q.segs))
	}
	f, err := openCursor(q.dir, q.commit, q.opts.Fsync != "never")
	if err != nil {
		q.log.Warn("disk buffer: cannot persist read position yet", "err", err)
	}
	q.curF = f
	// From here on appends may follow: the next run must not take this
	// run's last segment for a cleanly finished one.
	if clean {
		if err := os.Remove(filepath.Join(q.dir, cleanName)); err != nil {
			return err
		}
		syncDir(q.dir)
	}
	return nil
}

// pending removes what lies wholly before the cursor (delivered) and returns
// the ids of the segments at or after it that are, or were, there: on disk,
// sealed, or named by the clean-stop mark; ascending.
func (q *Queue) pending(ids []uint64, exists map[uint64]bool, cur cursor, clean bool, cleanLast uint64) []uint64 {
	known := make(map[uint64]bool)
	for id := range listSeals(q.dir) {
		if id < cur.seg {
			if !exists[id] {
				os.Remove(filepath.Join(q.dir, sealName(id))) // delivered
			}
			continue
		}
		known[id] = true
	}
	for _, id := range ids {
		if id < cur.seg {
			removeSegment(q.dir, id)
			continue
		}
		known[id] = true
	}
	if clean && cleanLast > 0 && cleanLast >= cur.seg {
		known[cleanLast] = true
	}
	order := make([]uint64, 0, len(known))
	for id := range known {
		order = append(order, id)
	}
	sort.Slice(order, func(i, j int) bool { return order[i] < order[j] })
	return order
}

// scanAll scans the segments of order that exist, cutting an interrupted
// append off the last one of a run that did not stop cleanly. It returns the
// scans and an estimate of the points in a number of bytes, from the points
// per byte of the readable records (the basis where a count is lost).
func (q *Queue) scanAll(order []uint64, exists map[uint64]bool, cur cursor, clean bool, cleanLast uint64) (map[uint64]scanResult, func(bytes int64) int64, error) {
	scans := make(map[uint64]scanResult, len(order))
	var ratePoints, rateBytes int64
	for i, id := range order {
		if !exists[id] {
			continue
		}
		_, sealed := readSeal(q.dir, id)
		tail := i == len(order)-1 && !clean && !sealed
		f, err := os.OpenFile(filepath.Join(q.dir, segName(id)), os.O_RDWR, 0)
		if err != nil {
			return nil, nil, err
		}
		r, err := scanSegment(f, q.startOf(id, cur), tail || (clean && id == cleanLast))
		if err == nil && tail && r.invalid {
			torn := r.fileSize - r.validEnd
			q.counters.TornBytes += torn
			q.log.Warn("disk buffer: incomplete record at the end of the last segment cut off (interrupted append)", "file", f.Name(), "offset", r.validEnd, "bytes", torn)
			if err = f.Truncate(r.validEnd); err == nil {
				f.Sync()
				r.fileSize, r.invalid = r.validEnd, false
			}
		}
		f.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("diskq: scan %s: %w", segName(id), err)
		}
		scans[id] = r
		if r.validEnd > segHdrSize {
			ratePoints += r.before + r.points
			rateBytes += r.validEnd - segHdrSize
		}
	}
	estimate := func(bytes int64) int64 {
		if rateBytes == 0 || bytes <= 0 {
			return 0
		}
		return (bytes*ratePoints + rateBytes - 1) / rateBytes
	}
	return scans, estimate, nil
}

// maxTombstones bounds the tombstones written for one run of missing ids.
const maxTombstones = 1 << 12

// tombstone leaves an empty seal for a segment removed (or found missing) at
// open while at or after the cursor: the ids stay contiguous, so the next open
// neither reports the loss again nor takes the gap for a deleted segment.
// Tombstones go once the cursor passes them.
func (q *Queue) tombstone(id uint64) {
	writeSeal(q.dir, id, 0)
}

// startOf is where reading starts in segment id.
func (q *Queue) startOf(id uint64, cur cursor) int64 {
	if id == cur.seg {
		return max(cur.off, segHdrSize)
	}
	return segHdrSize
}

// lost reports points of segment id that cannot be read (at open).
func (q *Queue) lost(id uint64, what string, offset, points int64, estimated bool, isolated string, present bool) {
	q.counters.CorruptSegments++
	args := []any{"file", filepath.Join(q.dir, segName(id))}
	if present {
		args = append(args, "offset", offset, "isolated_as", isolated)
	}
	if estimated {
		q.counters.CorruptPointsEstimated += points
		args = append(args, "points_lost_estimated", points)
	} else {
		args = append(args, "points_lost", points)
	}
	q.log.Error("disk buffer: "+what, args...)
	q.dropped(int(points), "corrupt")
}

// quarantine hard-links a damaged segment into corrupt/ for inspection and
// returns the link's path ("" when that failed).
func (q *Queue) quarantine(id uint64) string {
	isolated := filepath.Join(q.dir, corruptDir, segName(id))
	if err := os.MkdirAll(filepath.Join(q.dir, corruptDir), 0o755); err != nil {
		return ""
	}
	os.Remove(isolated)
	if os.Link(filepath.Join(q.dir, segName(id)), isolated) != nil {
		return ""
	}
	return isolated
}

// keepReadable leaves a damaged segment, once its loss is reported, as the
// queue now reads it: a seal with the count of its readable points and, when
// the original is safe in corrupt/, only its readable records. Otherwise a
// restart before the backlog drains would report (and count) the loss again.
// The seal goes first: a crash before the file is replaced then leaves a
// repeated report of no points, never the points counted twice.
func (q *Queue) keepReadable(id uint64, r scanResult, isolated string) {
	if err := writeSeal(q.dir, id, r.before+r.points); err != nil {
		q.log.Warn("disk buffer: cannot reseal a damaged segment; its loss is reported again at the next start", "segment", segName(id), "err", err)
		return
	}
	if isolated == "" || r.fileSize <= r.validEnd {
		return
	}
	path := filepath.Join(q.dir, segName(id))
	if err := copyPrefix(path, path+tmpSuffix, r.validEnd); err != nil {
		q.log.Warn("disk buffer: cannot cut a damaged segment to its readable records", "segment", segName(id), "err", err)
		return
	}
	syncDir(q.dir)
}

// copyPrefix replaces path with its first n bytes (written to tmp, synced,
// renamed over it), leaving other links to the old file as they were.
func copyPrefix(path, tmp string, n int64) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, io.NewSectionReader(src, 0, n))
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// newWriteSegment creates segment id and makes it the append target.
func (q *Queue) newWriteSegment(id uint64) error {
	path := filepath.Join(q.dir, segName(id))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(segMagic), 0); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if q.opts.Fsync != "never" {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		if err := syncDir(q.dir); err != nil {
			f.Close()
			return err
		}
	}
	if q.wfile != nil {
		if q.opts.Fsync != "never" {
			q.wfile.Sync()
		}
		q.wfile.Close()
		if err := writeSeal(q.dir, q.wseg.id, q.wseg.points); err != nil {
			q.log.Warn("disk buffer: cannot write segment seal", "segment", segName(q.wseg.id), "err", err)
		}
	}
	s := &segment{id: id, size: segHdrSize, writing: true}
	prev := q.wseg
	q.wfile, q.wseg = f, s
	q.mu.Lock()
	if prev != nil {
		prev.writing = false
	}
	q.segs = append(q.segs, s)
	q.mu.Unlock()
	return nil
}

func (q *Queue) openReader(s *segment) error {
	f, err := os.Open(filepath.Join(q.dir, segName(s.id)))
	if err != nil {
		return err
	}
	if q.rfile != nil {
		q.rfile.Close()
	}
	q.rfile, q.rseg, q.roff = f, s, segHdrSize
	return nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Push appends a batch and acknowledges it upstream once it is on disk (per
// the fsync policy). When the backlog is at MaxBytes, WhenFull applies.
func (q *Queue) Push(ctx context.Context, b engine.Batch) error {
	if len(b.Points) == 0 {
		b.Ack(nil)
		return nil
	}
	q.wmu.Lock()
	defer q.wmu.Unlock()
	q.mu.Lock()
	closed := q.closed
	q.mu.Unlock()
	if closed {
		return errors.New("diskq: closed")
	}
	rec := q.encode(b.Points)
	size := int64(len(rec))
	for q.opts.MaxBytes > 0 {
		q.mu.Lock()
		used := q.unreadBytes + q.inflightBytes
		q.mu.Unlock()
		if used == 0 || used+size <= q.opts.MaxBytes {
			break
		}
		if q.opts.WhenFull == "drop_newest" {
			q.dropped(len(b.Points), "buffer_full")
			b.Ack(nil)
			return nil
		}
		if q.opts.WhenFull == "drop_oldest" {
			if q.dropOldest() {
				continue
			}
			break // everything left is being delivered: take it anyway
		}
		select {
		case <-q.notFull:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var bo time.Duration
	for {
		err := q.append(rec, int64(len(b.Points)), ingestWall(b.Points[0].Ingest))
		if err == nil {
			break
		}
		// A full or failing disk: nothing was acknowledged, retry until the
		// disk recovers or the pipeline stops.
		q.log.Error("disk buffer: append failed; retrying", "err", err)
		bo = min(max(2*bo, 100*time.Millisecond), 5*time.Second)
		t := time.NewTimer(bo)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	up := b.Detach()
	b.Ack(nil)
	up.Ack(nil)
	signal(q.notEmpty)
	return nil
}

func (q *Queue) dropped(n int, reason string) {
	if n <= 0 {
		return
	}
	q.mu.Lock()
	if reason == "corrupt" {
		q.counters.CorruptPoints += int64(n)
	} else {
		q.counters.DroppedFull += int64(n)
	}
	q.mu.Unlock()
	q.opts.OnDrop(n, reason)
}

// encode builds a record in q.enc (the writer lock is held).
func (q *Queue) encode(points []engine.Point) []byte {
	b := append(q.enc[:0], make([]byte, recHdrSize)...)
	b = encodePoints(b, points)
	h := recHeader{length: uint32(len(b) - recHdrSize), points: uint32(len(points)), ingest: ingestWall(points[0].Ingest)}
	putHeader(b, h)
	h.crc = recordCRC(b[:recHdrSize], b[recHdrSize:])
	putHeader(b, h)
	q.enc = b
	return b
}

// append writes one record (the writer lock is held).
func (q *Queue) append(rec []byte, points, ingest int64) error {
	size := int64(len(rec))
	if q.wseg == nil {
		if err := q.newWriteSegment(q.nextSeg); err != nil {
			return err
		}
	}
	if q.wseg.size > segHdrSize && q.wseg.size+size > q.segSize {
		if err := q.newWriteSegment(q.wseg.id + 1); err != nil {
			return err
		}
	}
	off := q.wseg.size
	if _, err := q.wfile.WriteAt(rec, off); err != nil {
		q.wfile.Truncate(off) // no partial record left behind
		return err
	}
	switch q.opts.Fsync {
	case "batch":
		if err := q.wfile.Sync(); err != nil {
			q.wfile.Truncate(off)
			return err
		}
	case "interval":
		q.unsynced = true
		if now := time.Now(); now.Sub(q.lastSync) >= q.opts.SyncInterval && q.wfile.Sync() == nil {
			q.unsynced, q.lastSync = false, now
		}
	}
	q.mu.Lock()
	if q.unreadPoints == 0 {
		q.nextIngest = ingest
	}
	q.wseg.size = off + size
	q.wseg.points += points
	q.unreadBytes += size
	q.unreadPoints += points
	q.mu.Unlock()
	return nil
}

// next reads the next record, moving it from unread to in flight (the reader
// lock is held). It skips corrupt segments; ok is false when nothing is left.
func (q *Queue) next() (e *entry, h recHeader, payload []byte, ok bool) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, h, nil, false
		}
		seg, size, writing := q.rseg, q.rseg.size, q.rseg.writing
		var nextSeg *segment
		for _, s := range q.segs {
			if s.id > seg.id {
				nextSeg = s
				break
			}
		}
		q.mu.Unlock()
		if q.roff >= size {
			if nextSeg == nil {
				if !writing && q.rfile != nil {
					// Read to its end and never appended to again: close it,
					// or its space stays taken once it is deleted (a full disk
					// waits for exactly that space).
					q.rfile.Close()
					q.rfile = nil
				}
				return nil, h, nil, false
			}
			if err := q.openReader(nextSeg); err != nil {
				q.rseg, q.roff = nextSeg, segHdrSize
				q.skipCorrupt(nextSeg, nextSeg.size, err)
			}
			continue
		}
		h, p, err := readRecord(q.rfile, q.roff, size, q.rbuf)
		if err != nil {
			q.skipCorrupt(seg, size, err)
			continue
		}
		if cap(p) > cap(q.rbuf) {
			q.rbuf = p[:0]
		}
		start := q.roff
		q.roff += recHdrSize + int64(h.length)
		e := &entry{end: cursor{seg: seg.id, off: q.roff}, points: int64(h.points), bytes: q.roff - start, ingest: h.ingest}
		q.mu.Lock()
		seg.readPoints += e.points
		e.end.before = seg.base + seg.readPoints
		q.unreadPoints -= e.points
		q.unreadBytes -= e.bytes
		q.inflightPoints += e.points
		q.inflightBytes += e.bytes
		q.inflight = append(q.inflight, e)
		q.peekLocked()
		q.mu.Unlock()
		return e, h, p, true
	}
}

// peekLocked records the ingest time of the next unread record (for the
// oldest-age statistic).
func (q *Queue) peekLocked() {
	q.nextIngest = 0
	if q.unreadPoints <= 0 {
		return
	}
	f, off, size := q.rfile, q.roff, q.rseg.size
	var tmp *os.File
	if off >= size {
		for _, s := range q.segs {
			if s.id > q.rseg.id {
				var err error
				if tmp, err = os.Open(filepath.Join(q.dir, segName(s.id))); err != nil {
					return
				}
				f, off, size = tmp, segHdrSize, s.size
				break
			}
		}
		if tmp == nil {
			return
		}
		defer tmp.Close()
	}
	if size-off < recHdrSize {
		return
	}
	var hb [recHdrSize]byte
	if _, err := f.ReadAt(hb[:], off); err == nil {
		if h := parseHeader(hb[:]); h.plausible() {
			q.nextIngest = h.ingest
		}
	}
}

// skipCorrupt isolates the rest of a segment that failed to read (the reader
// lock is held). A finished segment whose record at q.roff is corrupt is
// then cut there, so that a restart before the committed position passes it
// replays the records before the damage without counting the loss again.
func (q *Queue) skipCorrupt(seg *segment, size int64, cause error) {
	isolated := q.quarantine(seg.id)
	q.mu.Lock()
	readable := scanResult{before: seg.base + seg.readPoints, validEnd: q.roff, fileSize: size}
	cut := !seg.writing && errors.Is(cause, errCorrupt)
	lost := max(seg.points-seg.readPoints, 0)
	seg.readPoints = seg.points
	skipped := max(size-q.roff, 0)
	q.unreadPoints -= lost
	q.unreadBytes -= skipped
	q.counters.CorruptSegments++
	q.inflight = append(q.inflight, &entry{end: cursor{seg: seg.id, off: size, before: seg.base + seg.points}, state: stateDone})
	q.advanceLocked()
	q.mu.Unlock()
	q.log.Error("disk buffer: corrupt segment skipped", "segment", segName(seg.id), "offset", q.roff,
		"bytes_skipped", skipped, "points_lost", lost, "isolated_as", isolated, "err", cause)
	if cut {
		q.keepReadable(seg.id, readable, isolated)
	}
	q.roff = size
	q.dropped(int(lost), "corrupt")
	signal(q.notFull)
}

// dropOldest discards the oldest unread record (drop_oldest policy; the
// writer lock is held). It returns false when nothing unread is left.
func (q *Queue) dropOldest() bool {
	q.rmu.Lock()
	e, _, _, ok := q.next()
	q.rmu.Unlock()
	if !ok {
		return false
	}
	q.ack(e, nil)
	q.dropped(int(e.points), "buffer_full")
	return true
}

// ack settles an in-flight record: nil commits it (once every record before
// it is committed too); an error leaves it for the next run to replay.
func (q *Queue) ack(e *entry, err error) {
	q.mu.Lock()
	if e.state != statePending {
		q.mu.Unlock()
		return
	}
	if err != nil {
		e.state = stateFailed
	} else {
		e.state = stateDone
		q.inflightPoints -= e.points
		q.inflightBytes -= e.bytes
	}
	q.advanceLocked()
	q.mu.Unlock()
	signal(q.notFull)
}

// advanceLocked moves the committed position over settled records, deletes
// the segments before it and persists it now and then.
func (q *Queue) advanceLocked() {
	i := 0
	for i < len(q.inflight) && q.inflight[i].state == stateDone {
		q.commit = q.inflight[i].end
		i++
	}
	if i == 0 {
		return
	}
	n := copy(q.inflight, q.inflight[i:])
	clear(q.inflight[n:])
	q.inflight = q.inflight[:n]
	// Segments wholly delivered are deleted. The cursor moves to the start
	// of the first segment kept before any file goes, so it never names a
	// deleted segment: at the next open, a segment missing at or after the
	// cursor is damage.
	// The write segment stays; without one (a full disk at open), the last
	// delivered segment goes too, which frees the space appends wait for.
	done := 0
	for done < len(q.segs) && !q.segs[done].writing {
		s := q.segs[done]
		if s.id > q.commit.seg || (s.id == q.commit.seg && q.commit.off < s.size) {
			break
		}
		done++
	}
	switch {
	case done == 0:
	case done < len(q.segs) && q.commit.seg < q.segs[done].id:
		q.commit = cursor{seg: q.segs[done].id, off: segHdrSize}
	case done == len(q.segs):
		q.commit = cursor{seg: q.segs[done-1].id + 1, off: segHdrSize}
	}
	q.writeCursorLocked()
	for _, s := range q.segs[:done] {
		removeSegment(q.dir, s.id)
	}
	n = copy(q.segs, q.segs[done:])
	clear(q.segs[n:])
	q.segs = q.segs[:n]
}

// writeCursorLocked persists the committed position: one 28-byte write in
// place, so a crash replays at most the batch being acknowledged. A write
// torn by a power cut fails its checksum, and the next open starts at the
// oldest segment still on disk: more duplicates, nothing lost.
func (q *Queue) writeCursorLocked() {
	if q.closed {
		return
	}
	if q.curF == nil { // a full disk at open; there may be room now
		f, err := openCursor(q.dir, q.commit, false)
		if err != nil {
			return
		}
		q.curF = f
	}
	b := encodeCursor(q.commit)
	if _, err := q.curF.WriteAt(b[:], 0); err != nil {
		q.log.Warn("disk buffer: cannot persist read position", "err", err)
	}
}

// pop reads and decodes the next batch (the reader lock is held).
func (q *Queue) pop() (engine.Batch, bool) {
	for {
		e, h, payload, ok := q.next()
		if !ok {
			return engine.Batch{}, false
		}
		if q.names == nil {
			q.names = make(map[string]string)
		}
		pts, err := decodePoints(engine.GetPoints(int(h.points)), payload, int(h.points), q.names)
		if err != nil {
			// The checksum matched but the payload does not decode: written
			// by an incompatible version, or a checksum collision.
			engine.PutPoints(pts)
			q.log.Error("disk buffer: record does not decode; skipped", "segment", segName(e.end.seg), "offset", e.end.off-e.bytes, "points", e.points, "err", err)
			q.ack(e, nil)
			q.dropped(int(e.points), "corrupt")
			continue
		}
		return engine.NewBatch(pts, func(err error) { q.ack(e, err) }), true
	}
}

// TryPop returns the next batch without waiting.
func (q *Queue) TryPop() (engine.Batch, bool) {
	q.rmu.Lock()
	defer q.rmu.Unlock()
	return q.pop()
}

// Pop waits for the next batch; false once the input is closed and the
// backlog is empty, or ctx is done.
func (q *Queue) Pop(ctx context.Context) (engine.Batch, bool) {
	for {
		q.rmu.Lock()
		b, ok := q.pop()
		q.rmu.Unlock()
		if ok {
			return b, true
		}
		q.mu.Lock()
		done := q.inputClosed || q.closed
		q.mu.Unlock()
		if done {
			// Re-check: a Push may have landed between pop and the flag.
			q.rmu.Lock()
			b, ok = q.pop()
			q.rmu.Unlock()
			return b, ok
		}
		select {
		case <-q.notEmpty:
		case <-ctx.Done():
			return engine.Batch{}, false
		}
	}
}

// CloseInput tells Pop that no more pushes will come.
func (q *Queue) CloseInput() {
	q.mu.Lock()
	q.inputClosed = true
	q.mu.Unlock()
	signal(q.notEmpty)
}

// Stats reports the backlog: unread and in-flight points and bytes, and the
// ingest time of the oldest.
func (q *Queue) Stats() engine.BufferStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := engine.BufferStats{Points: q.unreadPoints + q.inflightPoints, Bytes: q.unreadBytes + q.inflightBytes}
	oldest := q.nextIngest
	for _, e := range q.inflight {
		if e.state != stateDone && e.ingest != 0 {
			oldest = e.ingest
			break
		}
	}
	if s.Points > 0 && oldest != 0 {
		s.OldestIngest = ingestMono(oldest) // negative: from before this process started
	}
	return s
}

// Counters returns the lifetime counters.
func (q *Queue) Counters() Counters {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.counters
}

// Durable tells the engine that what the queue still holds at shutdown is
// kept for the next run rather than lost.
func (q *Queue) Durable() bool { return true }

// Close syncs, persists the committed position and releases the directory.
// In-flight batches not acknowledged by then are replayed on the next open.
func (q *Queue) Close() error {
	if q.stopSync != nil {
		q.stopOnce.Do(func() { close(q.stopSync); <-q.syncDone })
	}
	q.wmu.Lock()
	defer q.wmu.Unlock()
	q.rmu.Lock()
	defer q.rmu.Unlock()
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	var err error
	if q.wfile != nil {
		err = q.wfile.Sync()
	}
	if q.curF == nil {
		q.curF, _ = openCursor(q.dir, q.commit, false)
	}
	if q.curF != nil {
		b := encodeCursor(q.commit)
		if _, werr := q.curF.WriteAt(b[:], 0); err == nil {
			err = werr
		}
		if serr := q.curF.Sync(); err == nil {
			err = serr
		}
	} else if err == nil {
		err = errors.New("diskq: cannot persist the read position")
	}
	if err == nil {
		err = q.markClean()
	}
	q.closed = true
	q.mu.Unlock()
	q.closeFiles()
	signal(q.notEmpty)
	return err
}

// markClean seals the last segment and leaves the clean-stop mark (q.mu is
// held, every write done and synced). Without it, the next open takes an
// invalid tail of the last segment for an interrupted append.
func (q *Queue) markClean() error {
	var last uint64 // 0: no segment
	if n := len(q.segs); n > 0 {
		s := q.segs[n-1]
		last = s.id
		if _, ok := readSeal(q.dir, s.id); !ok {
			if err := writeSeal(q.dir, s.id, s.base+s.points); err != nil {
				return fmt.Errorf("diskq: seal %s: %w", segName(s.id), err)
			}
		}
	}
	if err := writeCleanMark(q.dir, last); err != nil {
		return fmt.Errorf("diskq: clean-stop mark: %w", err)
	}
	return syncDir(q.dir)
}

func (q *Queue) closeFiles() {
	if q.wfile != nil {
		q.wfile.Close()
		q.wfile = nil
	}
	if q.rfile != nil {
		q.rfile.Close()
		q.rfile = nil
	}
	if q.curF != nil {
		q.curF.Close()
		q.curF = nil
	}
	if q.lockF != nil {
		unlockDir(q.lockF)
		q.lockF = nil
	}
}

// NewBuffer builds a disk buffer from a sink's buffer block; it is the
// engine.Options.NewDiskBuffer hook.
func NewBuffer(cfg engine.BufferConfig, env *engine.Env) (engine.Buffer, error) {
	opts := Options{Dir: cfg.Dir, MaxBytes: int64(cfg.MaxSize), WhenFull: cfg.WhenFull, Fsync: cfg.Fsync}
	if env != nil {
		opts.Logger = env.Logger
		opts.OnDrop = func(n int, reason string) { env.Drop(n, reason) }
	}
	return Open(opts)
}
