//go:build !linux

package main

// releaseStartupPages is Linux only (madvise on the executable's mappings).
func releaseStartupPages() (int64, error) { return 0, nil }

// residentBytes is not measured outside Linux.
func residentBytes() int64 { return 0 }
