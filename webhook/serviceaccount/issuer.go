package serviceaccount

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/client-go/rest"

	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
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
	if _, err := trustpolicy.IssuerPath(doc.Issuer); err != nil {
		return "", fmt.Errorf("issuer in /.well-known/openid-configuration: %w", err)
	}
	return doc.Issuer, nil
}
