package controlplane

import (
	"strings"
	"sync"
)

// Warnings collects the warnings the API server sends one client, the webhooks' admission
// warnings among them: set it as a rest.Config's WarningHandler.
type Warnings struct {
	mu   sync.Mutex
	msgs []string
}

// HandleWarningHeader implements rest.WarningHandler.
func (w *Warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

// Take returns the warnings so far that start with prefix ("" for all) and forgets all of
// them.
func (w *Warnings) Take(prefix string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, m := range w.msgs {
		if strings.HasPrefix(m, prefix) {
			out = append(out, m)
		}
	}
	w.msgs = nil
	return out
}
