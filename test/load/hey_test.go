package main

import (
	"testing"
	"time"
)

// Summaries as hey v0.1.5 prints them (trimmed to the lines parseHey reads, and the
// histogram, whose bracketed counts must not be taken for status codes).
const (
	heyMixed = `
Summary:
  Total:	10.0132 secs
  Slowest:	0.0679 secs
  Fastest:	0.0019 secs
  Average:	0.0180 secs
  Requests/sec:	9436.2107

Response time histogram:
  0.002 [1]	|■■■■
  0.008 [9]	|■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■

Latency distribution:
  10%% in 0.0022 secs
  50%% in 0.0028 secs
  90%% in 0.0066 secs
  99%% in 0.0130 secs

Status code distribution:
  [200]	94390 responses
  [429]	11 responses

Error distribution:
  [3]	Post "https://127.0.0.1:35301/mutate-v1-pod": context deadline exceeded
`
	heyRefused = `
Summary:
  Total:	0.0382 secs
  Slowest:	0.0000 secs
  Requests/sec:	104.6924

Status code distribution:

Error distribution:
  [4]	Get "http://127.0.0.1:18778/": dial tcp 127.0.0.1:18778: connect: connection refused
`
)

func TestParseHey(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    row
		wantErr bool
	}{
		{name: "answers, refusals and errors", out: heyMixed, want: row{requests: 94404, errors: 14, throughput: 9436.2107,
			p50: 2800 * time.Microsecond, p90: 6600 * time.Microsecond, p99: 13 * time.Millisecond, max: 67900 * time.Microsecond}},
		{name: "nothing answered", out: heyRefused, want: row{requests: 4, errors: 4, throughput: 104.6924}},
		{name: "not hey's summary", out: "flag provided but not defined: -x\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseHey(tc.out)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %t", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			round := func(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
			got.p50, got.p90, got.p99, got.max = round(got.p50), round(got.p90), round(got.p99), round(got.max)
			if got != tc.want {
				t.Errorf("parseHey:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
