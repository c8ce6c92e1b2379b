package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// rssBreakdown describes the resident set of process pid from /proc/PID/smaps: anonymous
// memory (heap, stacks, runtime metadata) against file-backed pages, and of those the
// executable's code, read-only data (pclntab, type data, constants) and writable data.
func rssBreakdown(pid int) (string, error) {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return "", err
	}
	smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return "", err
	}
	var rss, anon, code, rodata, data int64 // KiB
	var cur *int64                          // where the current mapping's file-backed Rss goes
	s := bufio.NewScanner(bytes.NewReader(smaps))
	for s.Scan() {
		line := s.Text()
		f := strings.Fields(line)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			// A mapping header: address perms offset dev inode [pathname].
			cur = nil
			if strings.HasSuffix(line, " "+exe) {
				switch {
				case strings.Contains(f[1], "x"):
					cur = &code
				case strings.Contains(f[1], "w"):
					cur = &data
				default:
					cur = &rodata
				}
			}
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok || (key != "Rss" && key != "Anonymous") {
			continue
		}
		kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(value), "kB")), 10, 64)
		if err != nil {
			return "", fmt.Errorf("smaps: %q: %w", line, err)
		}
		if key == "Rss" {
			rss += kib
			if cur != nil {
				*cur += kib
			}
		} else {
			anon += kib
			if cur != nil {
				*cur -= kib // written (copied) pages of the binary count as anonymous
			}
		}
	}
	if err := s.Err(); err != nil {
		return "", err
	}
	mib := func(kib int64) float64 { return float64(kib) / 1024 }
	return fmt.Sprintf("RSS %.1f MiB = anonymous %.1f + file-backed %.1f (the binary: code %.1f, read-only data %.1f, data %.1f)",
		mib(rss), mib(anon), mib(rss-anon), mib(code), mib(rodata), mib(data)), nil
}
