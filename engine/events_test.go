package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// /api/events streams status and history as server-sent events until the
// client goes away; a reconnect with Last-Event-ID gets only newer samples.
func TestEventsStream(t *testing.T) {
	old := eventsEvery
	eventsEvery = 50 * time.Millisecond
	defer func() { eventsEvery = old }()
	rt, err := New([]*PipelineConfig{{Name: "p", Nodes: []*NodeConfig{
		nodeCfg(KindSource, "src", &testSource{batches: 1, size: 3}),
		nodeCfg(KindSink, "out", &countSink{}, "source.src"),
	}}}, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Run(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rt.recordHistory(now)
	srv := httptest.NewServer(rt.Handler())
	defer srv.Close()

	read := func(lastID string) (statuses int, hist []History, ids []string) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/events", nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("Content-Type %q", ct)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		event := ""
		for sc.Scan() && statuses < 3 {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = line[7:]
			case strings.HasPrefix(line, "id: "):
				ids = append(ids, line[4:])
			case strings.HasPrefix(line, "data: "):
				switch event {
				case "status":
					var st Status
					if err := json.Unmarshal([]byte(line[6:]), &st); err != nil || len(st.Pipelines) != 1 || st.Pipelines[0].Points.Delivered != 3 {
						t.Fatalf("status event %q: %v", line, err)
					}
					statuses++
				case "history":
					var h History
					if err := json.Unmarshal([]byte(line[6:]), &h); err != nil {
						t.Fatalf("history event %q: %v", line, err)
					}
					hist = append(hist, h)
				}
			}
		}
		return statuses, hist, ids
	}
	statuses, hist, ids := read("")
	if statuses != 3 || len(hist) < 2 || len(hist[0].Pipelines[0].Samples) != 1 || len(hist[1].Pipelines[0].Samples) != 0 {
		t.Fatalf("%d status events, history %+v: want 3, the sample once, then nothing new", statuses, hist)
	}
	if want := now.UnixMilli(); ids[0] != strconv.FormatInt(want, 10) {
		t.Fatalf("history id %s, want the newest sample's time %d", ids[0], want)
	}
	_, hist, _ = read(ids[0])
	if len(hist[0].Pipelines[0].Samples) != 0 {
		t.Fatalf("after Last-Event-ID the stream resent %+v", hist[0])
	}
}
