package jwtclaims_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/irsa-webhook/irsa-webhook/test/jwtclaims"
)

var b64 = base64.RawURLEncoding

// sign builds a compact RS256 JWT.
func sign(t *testing.T, key *rsa.PrivateKey, header, claims string) string {
	t.Helper()
	in := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(claims))
	digest := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64.EncodeToString(sig)
}

func jwks(t *testing.T, kid string, pub *rsa.PublicKey) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": b64.EncodeToString(pub.N.Bytes()),
		"e": b64.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const saClaims = `{"aud":["sts.amazonaws.com"],"exp":1800086400,"iat":1800000000,"nbf":1800000000,` +
	`"iss":"https://oidc.example.test/id/X","sub":"system:serviceaccount:production:s3-writer",` +
	`"kubernetes.io":{"namespace":"production","serviceaccount":{"name":"s3-writer","uid":"u1"},"pod":{"name":"my-app","uid":"u2"}}}`

func TestDecode(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		token   string
		wantAud []string
		wantErr string
	}{
		{name: "service-account token", token: sign(t, key, `{"alg":"RS256","kid":"k1"}`, saClaims), wantAud: []string{"sts.amazonaws.com"}},
		{name: "aud as a string", token: sign(t, key, `{"alg":"RS256"}`, `{"aud":"a","sub":"s"}`), wantAud: []string{"a"}},
		{name: "no aud", token: sign(t, key, `{"alg":"RS256"}`, `{"sub":"s"}`)},
		{name: "two parts", token: "a.b", wantErr: "2 dot-separated parts"},
		{name: "payload not base64", token: "a.!!.c", wantErr: "decode JWT payload"},
		{name: "payload not JSON", token: "a." + b64.EncodeToString([]byte("nope")) + ".c", wantErr: "decode JWT claims"},
		{name: "aud a number", token: "a." + b64.EncodeToString([]byte(`{"aud":1}`)) + ".c", wantErr: "want a string or an array"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := jwtclaims.Decode(tc.token)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Decode error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !slices.Equal(c.Audience, tc.wantAud) {
				t.Errorf("Audience = %q, want %q", c.Audience, tc.wantAud)
			}
		})
	}

	c, err := jwtclaims.Decode(tests[0].token)
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != "https://oidc.example.test/id/X" || c.Subject != "system:serviceaccount:production:s3-writer" {
		t.Errorf("iss, sub = %q, %q", c.Issuer, c.Subject)
	}
	if !c.IssuedAt.Equal(time.Unix(1800000000, 0)) || c.Lifetime() != 24*time.Hour || !c.NotBefore.Equal(c.IssuedAt) {
		t.Errorf("iat %v nbf %v lifetime %v", c.IssuedAt, c.NotBefore, c.Lifetime())
	}
	if !c.HasAudience("sts.amazonaws.com") || c.HasAudience("other") {
		t.Errorf("HasAudience wrong for %q", c.Audience)
	}
	if k := c.Kubernetes; k.Namespace != "production" || k.ServiceAccount.Name != "s3-writer" || k.Pod == nil || k.Pod.Name != "my-app" {
		t.Errorf("kubernetes.io claim = %+v", k)
	}
}

func TestVerifyRS256(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	good := sign(t, key, `{"alg":"RS256","kid":"k1"}`, saClaims)
	parts := strings.Split(good, ".")
	tests := []struct {
		name    string
		token   string
		jwks    []byte
		wantErr string
	}{
		{name: "valid", token: good, jwks: jwks(t, "k1", &key.PublicKey)},
		{name: "signed by another key", token: good, jwks: jwks(t, "k1", &other.PublicKey), wantErr: "verification error"},
		{name: "unknown kid", token: good, jwks: jwks(t, "k2", &key.PublicKey), wantErr: `no key "k1"`},
		{name: "claims changed", token: parts[0] + "." + b64.EncodeToString([]byte(`{"sub":"system:serviceaccount:x:y"}`)) + "." + parts[2], jwks: jwks(t, "k1", &key.PublicKey), wantErr: "verification error"},
		{name: "alg none", token: b64.EncodeToString([]byte(`{"alg":"none","kid":"k1"}`)) + "." + parts[1] + ".", jwks: jwks(t, "k1", &key.PublicKey), wantErr: `alg "none"`},
		{name: "JWKS not JSON", token: good, jwks: []byte("<html>"), wantErr: "decode JWKS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := jwtclaims.VerifyRS256(tc.token, tc.jwks)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("VerifyRS256: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("VerifyRS256 error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}
