package engine

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// eventsEvery is how often /api/events sends the status.
var eventsEvery = time.Second

// serveEvents streams what the status page shows as server-sent events: an
// "status" event (the /api/status JSON) every second, and a "history" event
// with the samples recorded since the last one (the /api/history JSON; its
// id is the newest sample's time, so a reconnecting browser resumes with
// Last-Event-ID instead of fetching the ten minutes again). ?since=<unix ms>
// starts the history later, as for /api/history.
func serveEvents(w http.ResponseWriter, r *http.Request, current func() *Runtime) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	var since int64
	for _, v := range []string{r.Header.Get("Last-Event-ID"), r.URL.Query().Get("since")} {
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			http.Error(w, "since: want Unix milliseconds", http.StatusBadRequest)
			return
		}
		since = max(since, n)
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a reverse proxy must not hold events back
	w.Write([]byte("retry: 2000\n\n"))
	send := func() bool {
		rt := current()
		st, err := json.Marshal(rt.Status())
		if err != nil {
			return false
		}
		hist := rt.History(since)
		for _, p := range hist.Pipelines {
			for _, s := range p.Samples {
				since = max(since, s.T)
			}
		}
		hb, err := json.Marshal(hist)
		if err != nil {
			return false
		}
		buf := make([]byte, 0, len(st)+len(hb)+64)
		buf = append(buf, "event: status\ndata: "...)
		buf = append(buf, st...)
		buf = append(buf, "\n\nevent: history\nid: "...)
		buf = strconv.AppendInt(buf, since, 10)
		buf = append(buf, "\ndata: "...)
		buf = append(buf, hb...)
		buf = append(buf, "\n\n"...)
		if _, err := w.Write(buf); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	if !send() {
		return
	}
	t := time.NewTicker(eventsEvery)
	defer t.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
			if !send() {
				return
			}
		}
	}
}
