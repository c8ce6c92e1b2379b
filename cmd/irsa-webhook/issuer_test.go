package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/irsa-webhook/irsa-webhook/webhook/serviceaccount"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

// TestIssuerRulesAgree: every place that takes the cluster's issuer accepts and refuses the
// same values: the serve flag --oidc-issuer-url, the trust commands' --issuer, the issuer
// discovered from the API server, and the trust evaluation itself. An issuer one of them
// accepts and another refuses is either a flag that starts a webhook whose every check is
// "cannot check trust", or a working issuer refused at start.
func TestIssuerRulesAgree(t *testing.T) {
	policy, err := trustpolicy.Parse(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"*"},"Action":"sts:AssumeRoleWithWebIdentity"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		issuer string
		accept bool
	}{
		{"EKS issuer", tIssuer, true},
		{"trailing slash", "https://oidc.example.com/id/X/", true},
		{"scheme in capitals", "HTTPS://oidc.example.com", true},
		{"port", "https://oidc.example.com:8443/id/X", true},
		{"without scheme, as IAM writes it", "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE", true},
		{"empty", "", false},
		{"http", "http://oidc.example.com", false},
		{"another scheme", "ftp://oidc.example.com", false},
		{"no host", "https:///id/X", false},
		{"scheme only", "https://", false},
		{"query", "https://oidc.example.com/?a=b", false},
		{"empty query", "https://oidc.example.com/id/X?", false},
		{"fragment", "https://oidc.example.com/id/X#f", false},
		{"user information", "https://user@oidc.example.com/id/X", false},
		{"space in the path", "https://oidc.example.com/id/a b", false},
		{"non-ASCII path", "https://oidc.example.com/id/\u00e9", false},
		{"bad escape", "https://oidc.example.com/id/%zz", false},
		{"bad port", "https://oidc.example.com:https/id/X", false},
		{"quote", `https://oidc.example.com/id/"X"`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			verdicts := map[string]bool{}

			r := requestFlags{trustpolicy.Request{RoleARN: tRole, IssuerURL: tc.issuer, Namespace: "production", ServiceAccount: "s3-writer", Audience: "sts.amazonaws.com"}}
			verdicts["trust check --issuer"] = !mentions(r.validate(), "--issuer")

			o := newTrustOptions()
			o.issuerURL = tc.issuer
			if tc.issuer != "" { // empty means "discover it"; checked above as a missing --issuer
				verdicts["serve --oidc-issuer-url"] = !mentions(o.validate(), "--oidc-issuer-url")
			}

			v := trustpolicy.Evaluate(policy, r.Request)
			refused := false
			for _, f := range v.Findings {
				refused = refused || strings.Contains(f.Message, "issuer URL")
			}
			verdicts["trustpolicy.Evaluate"] = !refused

			_, err := serviceaccount.DiscoverIssuer(context.Background(), discoveryServing(t, tc.issuer))
			verdicts["issuer discovery"] = err == nil

			for where, accepted := range verdicts {
				if accepted != tc.accept {
					t.Errorf("%s: accepted %q = %v, want %v (all: %v)", where, tc.issuer, accepted, tc.accept, verdicts)
				}
			}
		})
	}
}

func mentions(errs []error, flag string) bool {
	for _, err := range errs {
		if strings.Contains(err.Error(), flag) {
			return true
		}
	}
	return false
}

// discoveryServing is a REST client of an API server whose OIDC discovery document names
// issuer.
func discoveryServing(t *testing.T, issuer string) rest.Interface {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": issuer})
	}))
	t.Cleanup(srv.Close)
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return cs.Discovery().RESTClient()
}
