package engine

import (
	"context"
	"errors"
	"testing"
	"time"
)

// stateSource reports states through its Env one step at a time.
type stateSource struct {
	env  *Env
	step chan func()
}

func (s *stateSource) Run(ctx context.Context, _ Output) error {
	for {
		select {
		case f := <-s.step:
			f()
		case <-ctx.Done():
			return nil
		}
	}
}

// A reported error stays shown while the component is starting or
// reconnecting, secrets redacted, and is cleared once it reports connected.
func TestLastErrorClearedWhenConnected(t *testing.T) {
	env := &Env{}
	src := &stateSource{env: env, step: make(chan func())}
	sn := nodeCfg(KindSource, "s", src)
	sn.Env = env
	rt, err := New([]*PipelineConfig{{Name: "p", Nodes: []*NodeConfig{sn, nodeCfg(KindSink, "k", &countSink{}, "source.s")}}},
		Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx, time.Second) }()
	defer func() { cancel(); <-done }()
	steps := []struct {
		state   State
		err     error
		wantErr string
	}{
		{StateStarting, nil, ""},
		{StateConnecting, errors.New("dial opc.tcp://op:hunter2@plc:4840: connection refused"), "dial opc.tcp://op:xxxxx@plc:4840: connection refused"},
		{StateConnecting, nil, "dial opc.tcp://op:xxxxx@plc:4840: connection refused"},
		{StateConnected, nil, ""},
		{StateConnecting, errors.New("EOF"), "EOF"},
	}
	for i, s := range steps {
		src.step <- func() { env.SetState(s.state, s.err) }
		src.step <- func() {} // the previous step has run
		var c ComponentStatus
		for _, cs := range rt.Status().Pipelines[0].Components {
			if cs.ID == "source.s" {
				c = cs
			}
		}
		if c.State != s.state || c.LastError != s.wantErr {
			t.Fatalf("step %d: state %s, last_error %q; want %s, %q", i, c.State, c.LastError, s.state, s.wantErr)
		}
	}
}
