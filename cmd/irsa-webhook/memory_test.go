package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

func TestReleaseWhenReadyWaits(t *testing.T) {
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		releaseWhenReady(ctx, func() bool { calls.Add(1); return false }, logr.Discard())
		close(done)
	}()
	time.Sleep(3 * readyPollInterval)
	select {
	case <-done:
		t.Fatal("returned before ready and before its context ended")
	default:
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("did not return when its context ended")
	}
	if calls.Load() < 2 {
		t.Errorf("readiness checked %d times in %s, want it polled", calls.Load(), 3*readyPollInterval)
	}

	// Ready on the third check: returns after releasing.
	calls.Store(0)
	finished := make(chan struct{})
	go func() {
		releaseWhenReady(context.Background(), func() bool { return calls.Add(1) >= 3 }, logr.Discard())
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		t.Fatal("did not return once ready")
	}
	if calls.Load() != 3 {
		t.Errorf("readiness checked %d times, want 3 (stop at the first true)", calls.Load())
	}
}
