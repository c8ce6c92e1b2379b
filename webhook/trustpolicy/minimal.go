package trustpolicy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Minimal returns the smallest trust policy that lets exactly r's service account, with
// tokens from r's issuer for r's audience, assume r's role: one Allow statement for the
// role account's OIDC provider of the issuer, with StringEquals on sub and aud. It is
// JSON indented by two spaces, without a trailing newline. r.Audience must be set.
func Minimal(r Request) (string, error) {
	c, problems := newRequestContext(r)
	if r.Audience == "" {
		problems = append(problems, "audience is empty")
	}
	if len(problems) > 0 {
		return "", fmt.Errorf("build minimal trust policy: %s", strings.Join(problems, "; "))
	}
	type statement struct {
		Effect    string                       `json:"Effect"`
		Principal map[string]string            `json:"Principal"`
		Action    string                       `json:"Action"`
		Condition map[string]map[string]string `json:"Condition"`
	}
	doc := struct {
		Version   string      `json:"Version"`
		Statement []statement `json:"Statement"`
	}{
		Version: Version2012,
		Statement: []statement{{
			Effect:    "Allow",
			Principal: map[string]string{"Federated": c.provider()},
			Action:    Action,
			Condition: map[string]map[string]string{"StringEquals": {
				c.issuer + ":sub": c.sub,
				c.issuer + ":aud": r.Audience,
			}},
		}},
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return "", fmt.Errorf("build minimal trust policy: %w", err)
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}
