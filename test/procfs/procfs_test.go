package procfs

import (
	"os"
	"runtime"
	"strings"
	"testing"
)

// TestOwnProcess reads this test process, which is certainly resident and has used CPU.
func TestOwnProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		if _, err := RSSKiB(os.Getpid()); err == nil {
			t.Fatal("RSSKiB succeeded without /proc")
		}
		return
	}
	pid := os.Getpid()
	rss, err := RSSKiB(pid)
	if err != nil || rss <= 0 {
		t.Errorf("RSSKiB = %d, %v; want a positive size", rss, err)
	}
	for i := 0; i < 1e7; i++ { // spend a few ticks of CPU
		_ = strings.Repeat("x", i%3)
	}
	if ticks, err := CPUTicks(pid); err != nil || ticks < 0 {
		t.Errorf("CPUTicks = %d, %v", ticks, err)
	}
	b, err := RSSBreakdown(pid)
	if err != nil || !strings.HasPrefix(b, "RSS ") || !strings.Contains(b, "the binary: code ") {
		t.Errorf("RSSBreakdown = %q, %v", b, err)
	}
}

func TestParseKiB(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"   12345 kB", 12345, true},
		{"0 kB", 0, true},
		{"12 MB", 0, false},
		{"", 0, false},
	} {
		got, err := parseKiB(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseKiB(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
