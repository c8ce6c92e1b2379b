// Package procfs reads what the load tools and tests measure of a process from Linux's /proc:
// resident memory (/proc/PID/status), CPU time (/proc/PID/stat) and where the resident memory
// lies (/proc/PID/smaps). On other systems every function returns an error.
package procfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// RSSKiB is the process's resident memory in KiB (VmRSS of /proc/PID/status).
func RSSKiB(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read the RSS of process %d (Linux only): %w", pid, err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return parseKiB(rest)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// CPUTicks is the process's user plus system CPU time in clock ticks (utime and stime of
// /proc/PID/stat).
func CPUTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read the CPU time of process %d (Linux only): %w", pid, err)
	}
	// Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the command name, want 13 or more", pid, len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	return u + s, errors.Join(err1, err2)
}

// RSSBreakdown describes the resident set of process pid from /proc/PID/smaps: anonymous
// memory (heap, stacks, runtime metadata) against file-backed pages, and of those the
// executable's code, read-only data (pclntab, type data, constants) and writable data.
func RSSBreakdown(pid int) (string, error) {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return "", fmt.Errorf("find the executable of process %d (Linux only): %w", pid, err)
	}
	smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return "", fmt.Errorf("read the memory map of process %d: %w", pid, err)
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
		kib, err := parseKiB(value)
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
		return "", fmt.Errorf("read the memory map of process %d: %w", pid, err)
	}
	mib := func(kib int64) float64 { return float64(kib) / 1024 }
	return fmt.Sprintf("RSS %.1f MiB = anonymous %.1f + file-backed %.1f (the binary: code %.1f, read-only data %.1f, data %.1f)",
		mib(rss), mib(anon), mib(rss-anon), mib(code), mib(rodata), mib(data)), nil
}

// parseKiB parses a /proc value such as " 12345 kB".
func parseKiB(v string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %q as kB: %w", strings.TrimSpace(v), err)
	}
	return n, nil
}
