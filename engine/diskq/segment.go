package diskq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// On disk, a queue is a directory of segment files named by a sequence number
// (00000000000000000042.seg). A segment starts with an 8-byte magic and holds
// records back to back. A record is a 20-byte header followed by its payload:
//
//	0  uint32  payload length
//	4  uint32  points in the batch
//	8  int64   ingest time of the first point, wall-clock nanoseconds
//	16 uint32  CRC-32C of header bytes 0-15 and the payload
//
// All integers are little endian. The committed position (the end of the last
// delivered record) is kept in a small "cursor" file, replaced atomically.

const (
	segMagic   = "FLOWDQ01"
	segHdrSize = int64(len(segMagic))
	recHdrSize = 20
	// maxPayload bounds a record so a corrupt length cannot ask for gigabytes.
	maxPayload = 256 << 20
	segSuffix  = ".seg"
	sealSuffix = ".pts"
	tmpSuffix  = ".tmp" // a damaged segment's readable part being written
	cursorName = "cursor"
	corruptDir = "corrupt"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recHeader is a parsed record header.
type recHeader struct {
	length uint32
	points uint32
	ingest int64
	crc    uint32
}

func putHeader(b []byte, h recHeader) {
	binary.LittleEndian.PutUint32(b[0:], h.length)
	binary.LittleEndian.PutUint32(b[4:], h.points)
	binary.LittleEndian.PutUint64(b[8:], uint64(h.ingest))
	binary.LittleEndian.PutUint32(b[16:], h.crc)
}

func parseHeader(b []byte) recHeader {
	return recHeader{
		length: binary.LittleEndian.Uint32(b[0:]),
		points: binary.LittleEndian.Uint32(b[4:]),
		ingest: int64(binary.LittleEndian.Uint64(b[8:])),
		crc:    binary.LittleEndian.Uint32(b[16:]),
	}
}

// plausible rejects headers that cannot be real before the payload is read
// (zeroed pages after a power cut, garbage lengths).
func (h recHeader) plausible() bool {
	return h.length > 0 && h.length <= maxPayload && h.points > 0 && h.points <= h.length
}

func recordCRC(hdr, payload []byte) uint32 {
	c := crc32.Update(0, castagnoli, hdr[:16])
	return crc32.Update(c, castagnoli, payload)
}

func segName(id uint64) string { return fmt.Sprintf("%020d%s", id, segSuffix) }

// listSegments returns the segment ids in dir, ascending.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ids []uint64
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, segSuffix) {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

// readRecord reads the record at off from f, which holds valid data up to
// limit. It returns the header and the payload (in buf when it fits).
func readRecord(f *os.File, off, limit int64, buf []byte) (recHeader, []byte, error) {
	if limit-off < recHdrSize {
		return recHeader{}, nil, errCorrupt
	}
	var hb [recHdrSize]byte
	if _, err := f.ReadAt(hb[:], off); err != nil {
		return recHeader{}, nil, readErr(err)
	}
	h := parseHeader(hb[:])
	if !h.plausible() || int64(h.length) > limit-off-recHdrSize {
		return h, nil, errCorrupt
	}
	if cap(buf) < int(h.length) {
		buf = make([]byte, h.length)
	}
	buf = buf[:h.length]
	if _, err := f.ReadAt(buf, off+recHdrSize); err != nil {
		return h, nil, readErr(err)
	}
	if recordCRC(hb[:], buf) != h.crc {
		return h, nil, errCorrupt
	}
	return h, buf, nil
}

func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errCorrupt
	}
	return err
}

// scanSegment walks a segment's records from its start: it returns the end of
// the last valid record, the points in records ending after from, the ingest
// time of the first such record, and whether the scan stopped at an invalid
// record before the end of the file. With verify, payload checksums are
// checked too (the tail segment after a crash); otherwise only headers are read.
type scanResult struct {
	validEnd    int64
	fileSize    int64
	points      int64 // in records that end after from
	before      int64 // points in records that end at or before from
	bytes       int64 // of records that end after from
	firstIngest int64 // of the first record that ends after from
	invalid     bool
}

func scanSegment(f *os.File, from int64, verify bool) (scanResult, error) {
	st, err := f.Stat()
	if err != nil {
		return scanResult{}, err
	}
	r := scanResult{fileSize: st.Size(), validEnd: segHdrSize}
	var magic [segHdrSize]byte
	if _, err := f.ReadAt(magic[:], 0); err != nil || string(magic[:]) != segMagic {
		r.validEnd = 0
		r.invalid = r.fileSize > 0
		return r, nil
	}
	off := segHdrSize
	var buf []byte
	var hb [recHdrSize]byte
	for off < r.fileSize {
		var h recHeader
		if verify {
			var p []byte
			h, p, err = readRecord(f, off, r.fileSize, buf)
			if err != nil && !errors.Is(err, errCorrupt) {
				return r, err
			}
			if err != nil {
				r.invalid = true
				break
			}
			buf = p
		} else {
			if r.fileSize-off < recHdrSize {
				r.invalid = true
				break
			}
			if _, err := f.ReadAt(hb[:], off); err != nil {
				return r, err
			}
			h = parseHeader(hb[:])
			if !h.plausible() || int64(h.length) > r.fileSize-off-recHdrSize {
				r.invalid = true
				break
			}
		}
		end := off + recHdrSize + int64(h.length)
		if end > from {
			if r.points == 0 {
				r.firstIngest = h.ingest
			}
			r.points += int64(h.points)
			r.bytes += end - off
		} else {
			r.before += int64(h.points)
		}
		off = end
		r.validEnd = off
	}
	return r, nil
}

// A seal records how many points a finished segment holds, so that if a
// record header in it is damaged later, the points behind it can still be
// counted as lost.
func sealName(id uint64) string { return fmt.Sprintf("%020d%s", id, sealSuffix) }

func writeSeal(dir string, id uint64, points int64) error {
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:], uint64(points))
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[:8], castagnoli))
	return os.WriteFile(filepath.Join(dir, sealName(id)), b[:], 0o644)
}

func readSeal(dir string, id uint64) (int64, bool) {
	b, err := os.ReadFile(filepath.Join(dir, sealName(id)))
	if err != nil || len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.LittleEndian.Uint32(b[8:]) {
		return 0, false
	}
	return int64(binary.LittleEndian.Uint64(b)), true
}

// removeSegment deletes a segment and its seal.
func removeSegment(dir string, id uint64) {
	os.Remove(filepath.Join(dir, sealName(id)))
	os.Remove(filepath.Join(dir, segName(id)))
}

// syncDir makes a directory's entries (created, renamed files) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// cursor is the committed read position. before is the number of points in
// seg's records before off (-1 when unknown: a cursor written by an older
// version), so that if seg is damaged below off, its loss is still exact.
type cursor struct {
	seg    uint64
	off    int64
	before int64
}

const (
	cursorSizeV1 = 20 // seg, off, crc
	cursorSize   = 28 // seg, off, before, crc
)

func readCursor(dir string) (cursor, bool) {
	b, err := os.ReadFile(filepath.Join(dir, cursorName))
	if err != nil {
		return cursor{}, false
	}
	switch {
	case len(b) >= cursorSize && crc32.Checksum(b[:24], castagnoli) == binary.LittleEndian.Uint32(b[24:]):
		return cursor{seg: binary.LittleEndian.Uint64(b), off: int64(binary.LittleEndian.Uint64(b[8:])),
			before: int64(binary.LittleEndian.Uint64(b[16:]))}, true
	case len(b) >= cursorSizeV1 && crc32.Checksum(b[:16], castagnoli) == binary.LittleEndian.Uint32(b[16:]):
		return cursor{seg: binary.LittleEndian.Uint64(b), off: int64(binary.LittleEndian.Uint64(b[8:])), before: -1}, true
	}
	return cursor{}, false
}

func encodeCursor(c cursor) [cursorSize]byte {
	var b [cursorSize]byte
	binary.LittleEndian.PutUint64(b[:], c.seg)
	binary.LittleEndian.PutUint64(b[8:], uint64(c.off))
	binary.LittleEndian.PutUint64(b[16:], uint64(c.before))
	binary.LittleEndian.PutUint32(b[24:], crc32.Checksum(b[:24], castagnoli))
	return b
}

// openCursor opens the cursor file for in-place writes and stores c in it.
// An existing file is overwritten in place, so a full file system does not
// stop a queue from opening (and draining) its backlog.
func openCursor(dir string, c cursor, sync bool) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, cursorName), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	b := encodeCursor(c)
	_, err = f.WriteAt(b[:], 0)
	if err == nil && sync {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// A clean stop leaves a mark naming the last segment (which Close seals),
// like Kafka's clean-shutdown file: without it, an invalid tail of the last
// segment is an interrupted append; with it, any invalid data is damage.
const cleanName = "clean"

func writeCleanMark(dir string, last uint64) error {
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:], last)
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[:8], castagnoli))
	return os.WriteFile(filepath.Join(dir, cleanName), b[:], 0o644)
}

func readCleanMark(dir string) (uint64, bool) {
	b, err := os.ReadFile(filepath.Join(dir, cleanName))
	if err != nil || len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.LittleEndian.Uint32(b[8:]) {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b), true
}

// listSeals returns the seal files in dir by segment id.
func listSeals(dir string) map[uint64]bool {
	ents, _ := os.ReadDir(dir)
	ids := make(map[uint64]bool)
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, sealSuffix) {
			continue
		}
		if id, err := strconv.ParseUint(strings.TrimSuffix(name, sealSuffix), 10, 64); err == nil {
			ids[id] = true
		}
	}
	return ids
}
