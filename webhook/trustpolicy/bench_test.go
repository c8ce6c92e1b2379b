package trustpolicy

import (
	"net/url"
	"testing"
)

// Run with: go test ./webhook/trustpolicy/ -run '^$' -bench . -benchmem

func BenchmarkEvaluate(b *testing.B) {
	cases := []struct {
		name string
		doc  string
		req  func(*Request)
	}{
		{name: "minimal trusted", doc: fill(eksDocsPolicy)},
		{name: "minimal not trusted", doc: fill(eksDocsPolicy), req: namespace("staging")},
		{name: "terraform two clusters", doc: fill(terraformPolicy)},
		{name: "undetermined", doc: withCondition(fill(`{"StringEquals":{"ISSUER:sub":"system:serviceaccount:production:s3-writer"},"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}`))},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			p := mustParse(b, tc.doc)
			r := testRequest()
			if tc.req != nil {
				tc.req(&r)
			}
			b.ReportAllocs()
			for b.Loop() {
				Evaluate(p, r)
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	cases := []struct{ name, doc string }{
		{"EKS docs JSON", fill(eksDocsPolicy)},
		{"terraform JSON", fill(terraformPolicy)},
		{"GetRole URL-encoded", url.QueryEscape(fill(terraformPolicy))},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.doc)))
			for b.Loop() {
				if _, err := Parse(tc.doc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
