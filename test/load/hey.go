package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/irsa-webhook/irsa-webhook/test/procfs"
)

// With -generator hey the load phases are driven by hey (github.com/rakyll/hey, built from
// the Go module proxy by test/tools/build-go-tool.sh) instead of vegeta: a second,
// independent HTTP client (its own connection handling, request loop and timing) against
// the same binaries, so that a throughput or CPU ratio is not an artefact of one generator.
// hey does not verify the serving certificate (it has no CA option); the webhook's answers
// are still checked by status code.
const heyVersion = "v0.1.5"

// buildHey returns the path of the cached hey binary, building it on first use.
func buildHey(ctx context.Context, root string) (string, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(root, "test/tools/build-go-tool.sh"), "hey", "github.com/rakyll/hey", heyVersion).Output()
	if err != nil {
		return "", fmt.Errorf("build hey %s: %w", heyVersion, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// heyPhase is a load phase for hey: workers connections, each limited to qps requests a
// second (0: closed loop), for d.
type heyPhase struct {
	workers int
	qps     float64
	d       time.Duration
}

// heyAttack runs one hey phase against s and measures the server's CPU over it.
func (e *env) heyAttack(ctx context.Context, s server, bodyFile, name string, p heyPhase) (row, error) {
	cpu0, err := procfs.CPUTicks(s.pid)
	if err != nil {
		return row{}, err
	}
	args := []string{"-z", p.d.String(), "-c", strconv.Itoa(p.workers), "-m", "POST", "-T", "application/json", "-D", bodyFile}
	if p.qps > 0 {
		args = append(args, "-q", strconv.FormatFloat(p.qps, 'f', -1, 64))
	}
	if e.http2 {
		args = append(args, "-h2")
	}
	out, err := exec.CommandContext(ctx, e.hey, append(args, s.url)...).Output()
	if err != nil {
		return row{}, fmt.Errorf("hey (%s): %w", name, err)
	}
	cpu1, err := procfs.CPUTicks(s.pid)
	if err != nil {
		return row{}, err
	}
	r, err := parseHey(string(out))
	if err != nil {
		return row{}, fmt.Errorf("hey (%s): %w", name, err)
	}
	r.server, r.name = s.name, name
	if r.requests > 0 {
		r.cpuPerReq = float64(cpu1-cpu0) / clockTicks * 1e6 / float64(r.requests)
	}
	return r, nil
}

var (
	heyRate     = regexp.MustCompile(`(?m)^\s*Requests/sec:\s*([0-9.]+)`)
	heySlowest  = regexp.MustCompile(`(?m)^\s*Slowest:\s*([0-9.]+) secs`)
	heyPct      = regexp.MustCompile(`(?m)^\s*(\d+)%+ in ([0-9.]+) secs`)
	heyStatus   = regexp.MustCompile(`(?m)^\s*\[(\d+)\]\s+(\d+) responses`)
	heyErrorRow = regexp.MustCompile(`(?m)^\s*\[(\d+)\]\s+(.+)$`)
)

// parseHey reads hey's summary: requests a second, latency percentiles, status codes and
// the error distribution (requests without a response).
func parseHey(out string) (row, error) {
	var r row
	m := heyRate.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in hey's output:\n%s", out)
	}
	r.throughput, _ = strconv.ParseFloat(m[1], 64)
	secs := func(s string) time.Duration {
		f, _ := strconv.ParseFloat(s, 64)
		return time.Duration(f * float64(time.Second))
	}
	if m := heySlowest.FindStringSubmatch(out); m != nil {
		r.max = secs(m[1])
	}
	for _, m := range heyPct.FindAllStringSubmatch(out, -1) {
		switch m[1] {
		case "50":
			r.p50 = secs(m[2])
		case "90":
			r.p90 = secs(m[2])
		case "99":
			r.p99 = secs(m[2])
		}
	}
	statusPart, errorPart, _ := strings.Cut(out, "Error distribution:")
	for _, m := range heyStatus.FindAllStringSubmatch(statusPart, -1) {
		n, _ := strconv.Atoi(m[2])
		r.requests += n
		if m[1] != "200" {
			r.errors += n
		}
	}
	for _, m := range heyErrorRow.FindAllStringSubmatch(errorPart, -1) {
		n, _ := strconv.Atoi(m[1])
		r.requests += n
		r.errors += n
	}
	return r, nil
}
