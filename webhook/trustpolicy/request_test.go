package trustpolicy

import (
	"strings"
	"testing"
)

// TestIssuerPath: the issuer's IAM form, or why it is refused. Which values every caller
// accepts alike is TestIssuerRulesAgree (cmd/irsa-webhook).
func TestIssuerPath(t *testing.T) {
	cases := []struct {
		name, issuer string
		want         string // the provider URL; "" when refused
		wantErr      string
	}{
		{name: "EKS", issuer: "https://" + testIssuer, want: testIssuer},
		{name: "trailing slashes", issuer: "https://" + testIssuer + "//", want: testIssuer},
		{name: "scheme in capitals", issuer: "HTTPS://oidc.example.com", want: "oidc.example.com"},
		{name: "without scheme", issuer: testIssuer, want: testIssuer},
		{name: "port kept", issuer: "https://oidc.example.com:8443/x", want: "oidc.example.com:8443/x"},
		{name: "letter case kept", issuer: "https://OIDC.example.com/ID", want: "OIDC.example.com/ID"},
		{name: "empty", wantErr: "issuer URL is empty"},
		{name: "http", issuer: "http://oidc.example.com", wantErr: "must use https"},
		{name: "no host", issuer: "https:///x", wantErr: "has no host"},
		{name: "query", issuer: "https://oidc.example.com?x", wantErr: "no spaces, query or fragment"},
		{name: "tab", issuer: "https://oidc.example.com/\t", wantErr: "no spaces, query or fragment"},
		{name: "user", issuer: "https://u:p@oidc.example.com", wantErr: "user information"},
		{name: "bad escape", issuer: "https://oidc.example.com/%2", wantErr: "is not a URL"},
		{name: "bad port", issuer: "oidc.example.com:x/y", wantErr: "is not a URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := IssuerPath(tc.issuer)
			switch {
			case tc.wantErr == "" && (err != nil || got != tc.want):
				t.Errorf("IssuerPath(%q) = %q, %v; want %q", tc.issuer, got, err, tc.want)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("IssuerPath(%q) = %q, %v; want an error containing %q", tc.issuer, got, err, tc.wantErr)
			}
		})
	}
}
