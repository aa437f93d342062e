package bench

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// profileRun fetches one CPU profile from a flowd serving --pprof.
type profileRun struct{ done chan error }

// startProfile records d of CPU profile from the pprof server at addr into
// file, in the background; wait returns when it is written.
func startProfile(addr string, d time.Duration, file string) *profileRun {
	p := &profileRun{done: make(chan error, 1)}
	go func() {
		secs := max(1, int(d.Seconds()))
		cl := http.Client{Timeout: d + time.Minute}
		resp, err := cl.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs))
		if err != nil {
			p.done <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			p.done <- fmt.Errorf("profile: %s", resp.Status)
			return
		}
		f, err := os.Create(file)
		if err != nil {
			p.done <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		p.done <- errors.Join(err, f.Close())
	}()
	return p
}

func (p *profileRun) wait() error { return <-p.done }
