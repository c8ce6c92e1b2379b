package main

import (
	"bufio"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestCleanReadOnlyMappings(t *testing.T) {
	const exe = "/usr/local/bin/irsa webhook"
	mapping := func(header string, anonKB int) string {
		return header + "\nSize:               4 kB\nRss:                4 kB\nAnonymous:          " + strconv.Itoa(anonKB) + " kB\nVmFlags: rd mr mw me\n"
	}
	smaps := mapping("00400000-01578000 r-xp 00000000 fe:00 10011275                           "+exe, 0) +
		mapping("01578000-026a2000 r--p 01178000 fe:00 10011275                           "+exe, 0) +
		// Read-only now, but written before (a PIE build's relocated RELRO, or a breakpoint):
		// releasing it would bring back the file's bytes.
		mapping("026a2000-026b0000 r--p 022a2000 fe:00 10011275                           "+exe, 8) +
		mapping("026b0000-02730000 rw-p 022b0000 fe:00 10011275                           "+exe, 0) +
		mapping("02730000-04781000 rw-p 00000000 00:00 0 ", 12) +
		mapping("7f0000000000-7f0000001000 r-xp 00000000 fe:00 42                         "+exe+" (deleted)", 0) +
		mapping("7f0000001000-7f0000002000 r--s 00000000 fe:00 10011275                   "+exe, 0) +
		mapping("7f0000002000-7f0000003000 r--p 00000000 fe:00 43                         /usr/local/bin/irsa", 0) +
		mapping("7fff89a23000-7fff89a44000 rw-p 00000000 00:00 0                          [stack]", 16)
	got, err := cleanReadOnlyMappings([]byte(smaps), exe)
	if err != nil {
		t.Fatal(err)
	}
	want := []addrRange{{0x400000, 0x1578000}, {0x1578000, 0x26a2000}}
	if !slices.Equal(got, want) {
		t.Errorf("cleanReadOnlyMappings = %x, want %x (private, not writable, no page copied, this path only)", got, want)
	}
	if _, err := cleanReadOnlyMappings([]byte("zz-yy r-xp 0 0:0 1 "+exe+"\n"), exe); err == nil {
		t.Error("a malformed address range was accepted")
	}
	if _, err := cleanReadOnlyMappings([]byte("00400000-01578000 r-xp 00000000 fe:00 1 "+exe+"\nRss: 4 kB\n"), exe); err == nil {
		t.Error("a candidate mapping without an Anonymous line was accepted")
	}
}

// written lives in the executable's writable data mapping (initialised, so file-backed):
// releasing must never discard what the process wrote there.
var written = [3 * 4096]byte{1: 1}

func TestReleaseStartupPages(t *testing.T) {
	if traced() {
		t.Skip("under a debugger, releaseStartupPages does nothing by design")
	}
	for i := range written {
		written[i] = byte(i%251) + 1
	}
	ro, rw := exeResidentKiB(t)
	if ro == 0 || rw == 0 {
		t.Fatalf("no resident pages found for the test binary (read-only %d KiB, writable %d KiB)", ro, rw)
	}
	released, err := releaseStartupPages()
	if err != nil {
		t.Fatal(err)
	}
	roAfter, rwAfter := exeResidentKiB(t)
	t.Logf("executable's read-only pages: %d KiB resident before, %d after; writable: %d, %d; %d bytes of mappings released", ro, roAfter, rw, rwAfter, released)
	if released <= 0 {
		t.Errorf("released %d bytes", released)
	}
	// What this test ran since the release is mapped again: far less than the whole start-up.
	if roAfter >= ro/2 {
		t.Errorf("read-only pages resident: %d KiB before, %d after: not released", ro, roAfter)
	}
	if rwAfter < rw {
		t.Errorf("writable pages resident: %d KiB before, %d after: writable mappings must be left alone", rw, rwAfter)
	}
	for i, b := range written {
		if b != byte(i%251)+1 {
			t.Fatalf("written[%d] = %d after the release: a written page was discarded", i, b)
		}
	}
}

// exeResidentKiB sums the Rss of this executable's read-only and writable mappings.
func exeResidentKiB(t *testing.T) (readOnly, writable int) {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cur *int
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if fields := strings.Fields(line); len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			cur = nil
			if strings.HasSuffix(line, " "+exe) {
				if fields[1][1] == 'w' {
					cur = &writable
				} else {
					cur = &readOnly
				}
			}
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok && cur != nil {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("smaps: %q: %v", line, err)
			}
			*cur += n
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return readOnly, writable
}
