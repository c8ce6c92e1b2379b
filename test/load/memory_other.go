//go:build !linux

package main

import "errors"

// rssBreakdown needs /proc/PID/smaps (Linux).
func rssBreakdown(int) (string, error) {
	return "", errors.New("RSS breakdown: Linux only")
}
