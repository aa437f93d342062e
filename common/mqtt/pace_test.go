package mqtt

import (
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// Connections that drop right after coming up keep the backoff growing;
// one that stays up resets it.
func TestPacerGrowsOverShortConnections(t *testing.T) {
	p := newPacer(100*time.Millisecond, time.Second)
	now := time.Now()
	if d := p.delay(0); d != 0 {
		t.Fatalf("first connection waits %s", d)
	}
	var last time.Duration
	for i := 1; i <= 6; i++ {
		p.up(now)
		if n := p.down(now.Add(10 * time.Millisecond)); n != i {
			t.Fatalf("flaps = %d, want %d", n, i)
		}
		d := p.delay(0) // autopaho starts each reconnection at attempt 0
		if d < 80*time.Millisecond || d > 1200*time.Millisecond || (i <= 4 && d <= last) {
			t.Fatalf("reconnect %d waits %s after %s", i, d, last)
		}
		last = d
	}
	p.up(now)
	p.down(now.Add(2 * time.Minute))
	if d := p.delay(0); d != 0 {
		t.Fatalf("after a stable connection the reconnect waits %s", d)
	}
}

func TestExplainTakeover(t *testing.T) {
	err := explainDisconnect(&paho.Disconnect{ReasonCode: 0x8E}, "plant-1")
	if !strings.Contains(err.Error(), `client id "plant-1"`) || !strings.Contains(err.Error(), "0x8E") {
		t.Fatal(err)
	}
}
