package main

import (
	"bytes"
	"io"
	"os"
)

// captureStdout keeps what components print to standard output (the stdout
// sink) apart from the live status lines when both share a terminal: the
// process's stdout becomes a pipe, and whole lines read from it are written
// to the terminal through s, which erases the status lines first and draws
// them again below. A partial line waits for its end, so a point is never
// glued to a status line. restore puts stdout back and writes what is left.
func (s *statusWriter) captureStdout() (restore func(), err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	term := os.Stdout
	os.Stdout = w
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 32<<10)
		var pending []byte
		for {
			n, err := r.Read(buf)
			pending = append(pending, buf[:n]...)
			if i := bytes.LastIndexByte(pending, '\n'); i >= 0 {
				s.writeTo(term, pending[:i+1])
				pending = append(pending[:0], pending[i+1:]...)
			} else if len(pending) > 64<<10 {
				s.writeTo(term, append(pending, '\n')) // no newline in sight: do not hold it forever
				pending = pending[:0]
			}
			if err != nil {
				if len(pending) > 0 {
					s.writeTo(term, append(pending, '\n'))
				}
				r.Close()
				return
			}
		}
	}()
	return func() {
		os.Stdout = term
		w.Close()
		<-done
	}, nil
}

// writeTo writes p to dst (another descriptor of the same terminal) with the
// status lines erased around it.
func (s *statusWriter) writeTo(dst io.Writer, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eraseLocked()
	dst.Write(p)
	s.drawLocked()
}
