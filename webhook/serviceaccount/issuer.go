package serviceaccount

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"

	"k8s.io/client-go/rest"
)

// DiscoverIssuer reads this cluster's service-account issuer from the API server's OIDC
// discovery document (/.well-known/openid-configuration).
func DiscoverIssuer(ctx context.Context, c rest.Interface) (string, error) {
	raw, err := c.Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	if err != nil {
		return "", fmt.Errorf("get /.well-known/openid-configuration: %w", err)
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return "", fmt.Errorf("decode /.well-known/openid-configuration: %w", err)
	}
	if err := ValidIssuer(doc.Issuer); err != nil {
		return "", fmt.Errorf("issuer in /.well-known/openid-configuration: %w", err)
	}
	return doc.Issuer, nil
}

// ValidIssuer checks an issuer URL the way IAM does for OIDC providers: https, a host, no
// query or fragment.
func ValidIssuer(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("issuer %q is not a URL: %w", s, err)
	}
	if u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("issuer %q must be an https URL with a host and no query, fragment or user", s)
	}
	return nil
}
