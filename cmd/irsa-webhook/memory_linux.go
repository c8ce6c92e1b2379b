package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// releaseStartupPages drops this process's mappings of the pages of its own executable that
// are never written (code, read-only data, symbol and type tables) with MADV_DONTNEED: the
// contents do not change, the next access maps the page again from the page cache. Only
// private, non-writable mappings holding no private copy of any page are released: writable
// mappings (data, bss, the heap) are left alone, and so is a read-only mapping that was
// written before it was made read-only (a position-independent build's relocated RELRO
// segment) or patched by a debugger, since MADV_DONTNEED would bring back the file's bytes.
// It returns the bytes of the mappings released.
func releaseStartupPages() (int64, error) {
	if traced() {
		return 0, nil
	}
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	ranges, err := cleanReadOnlyMappings(smaps, exe)
	if err != nil {
		return 0, err
	}
	var released int64
	for _, r := range ranges {
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, r.start, r.end-r.start, syscall.MADV_DONTNEED); errno != 0 {
			return released, fmt.Errorf("madvise %#x-%#x: %w", r.start, r.end, errno)
		}
		released += int64(r.end - r.start)
	}
	return released, nil
}

type addrRange struct{ start, end uintptr }

// cleanReadOnlyMappings returns the mappings of /proc/self/smaps (contents given) of the
// file path that are private, not writable, and hold no anonymous (copied-on-write) page.
func cleanReadOnlyMappings(smaps []byte, path string) ([]addrRange, error) {
	var out []addrRange
	var cur *addrRange // the current mapping, while it is a candidate
	sawAnonymous := false
	flush := func() error {
		if cur != nil && !sawAnonymous {
			return fmt.Errorf("smaps: no Anonymous line for the mapping %#x-%#x", cur.start, cur.end)
		}
		return nil
	}
	s := bufio.NewScanner(bytes.NewReader(smaps))
	for s.Scan() {
		line := s.Text()
		key, value, isField := strings.Cut(line, ":")
		if isField && !strings.Contains(key, " ") && !strings.Contains(key, "-") {
			// A "Key: value" line of the current mapping.
			if cur != nil && key == "Anonymous" {
				sawAnonymous = true
				if kb := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(value), "kB")); kb == "0" {
					out = append(out, *cur)
				}
				cur = nil
			}
			continue
		}
		if err := flush(); err != nil {
			return nil, err
		}
		cur, sawAnonymous = nil, false
		// A mapping: address perms offset dev inode pathname; the pathname may hold spaces.
		f := strings.SplitN(line, " ", 6)
		if len(f) < 6 || strings.TrimLeft(f[5], " ") != path {
			continue
		}
		perms := f[1]
		if len(perms) != 4 || perms[1] == 'w' || perms[3] != 'p' {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("unexpected line in /proc/self/smaps: %q", line)
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("unexpected line in /proc/self/smaps: %q", line)
		}
		cur = &addrRange{uintptr(start), uintptr(end)}
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// traced reports whether a debugger or tracer is attached (TracerPid in /proc/self/status).
func traced() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return true // cannot tell: do nothing
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "TracerPid:"); ok {
			return strings.TrimSpace(v) != "0"
		}
	}
	return true
}

// residentBytes is the process's resident set size (VmRSS), 0 if unknown.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}
