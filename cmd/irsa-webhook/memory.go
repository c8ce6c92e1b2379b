package main

import (
	"context"
	"time"

	"github.com/go-logr/logr"
)

// Start-up touches far more of the binary than serving does: every package's init, the
// registration of every built-in API group in client-go's scheme (linked in through
// controller-runtime), flag parsing, the informer's first list. Those read-only pages of
// code and data stay mapped, and counted in the resident set, for the life of the process
// although serving never reads them again. Once the webhook is ready, releaseStartupPages
// unmaps the executable's read-only pages (those no write ever copied; see memory_linux.go,
// and --release-startup-pages to turn it off); the ones serving uses are mapped again from the
// page cache on their next use (minor faults, no disk read), the others are left to the
// kernel, which can reclaim them like any clean file cache.

// readyPollInterval is how often releaseWhenReady checks readiness.
const readyPollInterval = 250 * time.Millisecond

// releaseWhenReady waits until ready reports true (or ctx ends), then releases the pages
// start-up alone needed and logs the resident set before and after.
func releaseWhenReady(ctx context.Context, ready func() bool, log logr.Logger) {
	t := time.NewTicker(readyPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !ready() {
			continue
		}
		before := residentBytes()
		released, err := releaseStartupPages()
		if err != nil {
			log.Error(err, "cannot release the start-up pages of the binary")
			return
		}
		if released > 0 {
			log.Info("released the start-up pages of the binary", "mappedBytes", released, "rssBefore", before, "rssAfter", residentBytes())
		}
		return
	}
}
