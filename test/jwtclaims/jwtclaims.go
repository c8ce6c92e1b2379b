// Package jwtclaims reads the claims of a Kubernetes service-account token (a JWT) the way STS
// looks at them: issuer, subject, audiences and lifetime, plus the kubernetes.io claims that
// bind it to a pod. It is for tests and the local demo.
//
// Written by hand because no module this project may use parses JWTs: decoding is base64url
// and JSON (RFC 7519), and VerifyRS256 checks the one algorithm the test control plane signs
// with against the JWKS the API server publishes (RFC 7517, RSA keys only).
package jwtclaims

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
)

// Claims are the registered claims of a service-account token and its kubernetes.io claims.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  []string
	IssuedAt  time.Time
	NotBefore time.Time
	Expiry    time.Time
	// Kubernetes holds the "kubernetes.io" claim: namespace, service account, bound pod.
	Kubernetes Kubernetes
}

// Kubernetes is the "kubernetes.io" claim of a service-account token.
type Kubernetes struct {
	Namespace      string `json:"namespace"`
	ServiceAccount Ref    `json:"serviceaccount"`
	Pod            *Ref   `json:"pod,omitempty"`
}

// Ref names an object a token is bound to.
type Ref struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// Lifetime is Expiry minus IssuedAt.
func (c Claims) Lifetime() time.Duration { return c.Expiry.Sub(c.IssuedAt) }

// HasAudience reports whether aud is among the token's audiences.
func (c Claims) HasAudience(aud string) bool { return slices.Contains(c.Audience, aud) }

// Decode returns the claims of a compact JWT without verifying its signature.
func Decode(token string) (Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, fmt.Errorf("decode JWT: %d dot-separated parts, want 3", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return Claims{}, fmt.Errorf("decode JWT payload: %w", err)
	}
	var raw struct {
		Iss        string          `json:"iss"`
		Sub        string          `json:"sub"`
		Aud        json.RawMessage `json:"aud"`
		Iat        int64           `json:"iat"`
		Nbf        int64           `json:"nbf"`
		Exp        int64           `json:"exp"`
		Kubernetes Kubernetes      `json:"kubernetes.io"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return Claims{}, fmt.Errorf("decode JWT claims: %w", err)
	}
	aud, err := audiences(raw.Aud)
	if err != nil {
		return Claims{}, err
	}
	return Claims{
		Issuer:     raw.Iss,
		Subject:    raw.Sub,
		Audience:   aud,
		IssuedAt:   unix(raw.Iat),
		NotBefore:  unix(raw.Nbf),
		Expiry:     unix(raw.Exp),
		Kubernetes: raw.Kubernetes,
	}, nil
}

// audiences reads "aud", which RFC 7519 allows to be a string or an array of strings.
func audiences(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("decode JWT aud claim %s: want a string or an array of strings", raw)
	}
	return many, nil
}

func unix(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// VerifyRS256 checks that token is signed with RS256 by the key its header's kid names in
// jwks (the body of the API server's /openid/v1/jwks), as an OIDC relying party such as STS
// would. It checks the signature only, not the claims.
func VerifyRS256(token string, jwks []byte) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return fmt.Errorf("verify JWT: %d dot-separated parts, want 3", len(parts))
	}
	headerJSON, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return fmt.Errorf("verify JWT: decode header: %w", err)
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(headerJSON, &header); err != nil {
		return fmt.Errorf("verify JWT: decode header: %w", err)
	}
	if header.Alg != "RS256" {
		return fmt.Errorf("verify JWT: alg %q, want RS256", header.Alg)
	}
	key, err := rsaKey(jwks, header.Kid)
	if err != nil {
		return fmt.Errorf("verify JWT: %w", err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("verify JWT: decode signature: %w", err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig); err != nil {
		return fmt.Errorf("verify JWT signed by key %q: %w", header.Kid, err)
	}
	return nil
}

// rsaKey finds the RSA key kid in a JWK set.
func rsaKey(jwks []byte, kid string) (*rsa.PublicKey, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			N   string `json:"n"`
			E   string `json:"e"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &set); err != nil {
		return nil, fmt.Errorf("decode JWKS: %w", err)
	}
	for _, k := range set.Keys {
		if k.Kid != kid {
			continue
		}
		if k.Kty != "RSA" {
			return nil, fmt.Errorf("JWKS key %q has kty %q, want RSA", kid, k.Kty)
		}
		n, errN := base64.RawURLEncoding.DecodeString(k.N)
		e, errE := base64.RawURLEncoding.DecodeString(k.E)
		if err := errors.Join(errN, errE); err != nil {
			return nil, fmt.Errorf("decode JWKS key %q: %w", kid, err)
		}
		exp := new(big.Int).SetBytes(e)
		if !exp.IsInt64() || exp.Int64() < 3 || exp.Int64() > 1<<31-1 {
			return nil, fmt.Errorf("JWKS key %q has an unusable exponent", kid)
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp.Int64())}, nil
	}
	return nil, fmt.Errorf("no key %q in the JWKS (%d keys)", kid, len(set.Keys))
}
