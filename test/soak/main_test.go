package main

import (
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	// samples builds one sample a minute for 30 minutes with RSS and goroutines from f.
	samples := func(f func(minute int) (rssKiB int64, goroutines int)) []sample {
		var out []sample
		for m := 1; m <= 30; m++ {
			rss, g := f(m)
			out = append(out, sample{at: time.Duration(m) * time.Minute, rssKiB: rss, goroutines: g})
		}
		return out
	}
	tests := []struct {
		name     string
		samples  []sample
		duration time.Duration
		wantFlat bool
	}{
		{"flat", samples(func(int) (int64, int) { return 40 << 10, 60 }), 30 * time.Minute, true},
		{"warm-up growth before minute 5 is ignored", samples(func(m int) (int64, int) { return int64(min(m, 5)) * 10 << 10, 50 + min(m, 5) }), 30 * time.Minute, true},
		{"RSS up 9%", samples(func(m int) (int64, int) { return 100<<10 + int64(max(0, m-20))*(9<<10)/10, 60 }), 30 * time.Minute, true},
		{"RSS up 12%", samples(func(m int) (int64, int) { return 100<<10 + int64(max(0, m-20))*(12<<10)/10, 60 }), 30 * time.Minute, false},
		{"goroutines up 5", samples(func(m int) (int64, int) { return 40 << 10, 60 + min(5, max(0, m-20)) }), 30 * time.Minute, true},
		{"goroutines up 6", samples(func(m int) (int64, int) { return 40 << 10, 60 + min(6, max(0, m-20)) }), 30 * time.Minute, false},
		{"a 3-minute run: minute 1 against minutes 2-3", samples(func(int) (int64, int) { return 40 << 10, 60 })[:3], 3 * time.Minute, true},
		{"no samples cannot be judged", nil, 30 * time.Minute, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := judge(tc.samples, tc.duration)
			if v.flat != tc.wantFlat {
				t.Errorf("flat = %v, want %v: %q", v.flat, tc.wantFlat, v.lines)
			}
		})
	}
}
