package iamserver_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
)

func decodeXML(resp *http.Response, v any) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	return xml.Unmarshal(body, v)
}

func TestGetCallerIdentityLongTermKey(t *testing.T) {
	srv := iamserver.New()
	defer srv.Close()
	srv.AddAccessKey("AKIDOTHER", "other-secret")
	for _, key := range [][2]string{{iamserver.DefaultAccessKeyID, iamserver.DefaultSecretAccessKey}, {"AKIDOTHER", "other-secret"}} {
		out, err := newSTS(srv, credentials.NewStaticCredentialsProvider(key[0], key[1], "")).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
		if err != nil {
			t.Fatalf("GetCallerIdentity with %s: %v", key[0], err)
		}
		if aws.ToString(out.Account) != iamserver.CallerAccount || aws.ToString(out.Arn) == "" || aws.ToString(out.UserId) == "" {
			t.Errorf("GetCallerIdentity with %s = %s %s %s", key[0], aws.ToString(out.Account), aws.ToString(out.Arn), aws.ToString(out.UserId))
		}
	}
}

// signedRequest is a GetCallerIdentity request signed with aws-sdk-go-v2's signer, then
// changed by mutate (after signing).
func signedRequest(t *testing.T, srv *iamserver.Server, creds aws.Credentials, service string, at time.Time, mutate func(*http.Request, *string)) *http.Request {
	t.Helper()
	body := "Action=GetCallerIdentity&Version=2011-06-15"
	req, err := http.NewRequest(http.MethodPost, srv.URL()+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), service, "us-east-1", at); err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(req, &body)
		req.Body = io.NopCloser(strings.NewReader(body))
		req.ContentLength = int64(len(body))
	}
	return req
}

func TestGetCallerIdentitySignature(t *testing.T) {
	longTerm := aws.Credentials{AccessKeyID: iamserver.DefaultAccessKeyID, SecretAccessKey: iamserver.DefaultSecretAccessKey}
	now := time.Now()
	tests := []struct {
		name       string
		creds      aws.Credentials
		service    string
		at         time.Time
		mutate     func(*http.Request, *string)
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{name: "signed with a registered key", creds: longTerm, wantStatus: 200},
		{name: "unsigned", mutate: func(r *http.Request, _ *string) { r.Header.Del("Authorization") },
			wantStatus: 403, wantCode: "MissingAuthenticationToken", wantMsg: "Request is missing Authentication Token"},
		{name: "wrong secret", creds: aws.Credentials{AccessKeyID: iamserver.DefaultAccessKeyID, SecretAccessKey: "not-the-secret"},
			wantStatus: 403, wantCode: "SignatureDoesNotMatch", wantMsg: "does not match the signature you provided"},
		{name: "body changed after signing", creds: longTerm, mutate: func(_ *http.Request, b *string) { *b += "&X=1" },
			wantStatus: 403, wantCode: "SignatureDoesNotMatch"},
		{name: "signed header changed after signing", creds: longTerm, mutate: func(r *http.Request, _ *string) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") },
			wantStatus: 403, wantCode: "SignatureDoesNotMatch"},
		{name: "unknown access key", creds: aws.Credentials{AccessKeyID: "AKIDUNKNOWN", SecretAccessKey: "secret"},
			wantStatus: 403, wantCode: "InvalidClientTokenId", wantMsg: "The security token included in the request is invalid."},
		{name: "scoped to IAM", creds: longTerm, service: "iam", wantStatus: 403, wantCode: "SignatureDoesNotMatch", wantMsg: "'sts'"},
		{name: "signed 20 minutes ago", creds: longTerm, at: now.Add(-20 * time.Minute), wantStatus: 403, wantCode: "SignatureDoesNotMatch", wantMsg: "Signature expired"},
		{name: "signed 20 minutes ahead", creds: longTerm, at: now.Add(20 * time.Minute), wantStatus: 403, wantCode: "SignatureDoesNotMatch", wantMsg: "not yet current"},
		{name: "not SigV4", mutate: func(r *http.Request, _ *string) { r.Header.Set("Authorization", "AWS AKIDEXAMPLE:c2ln") },
			wantStatus: 400, wantCode: "IncompleteSignature"},
		{name: "no signature field", creds: longTerm, mutate: func(r *http.Request, _ *string) {
			before, _, _ := strings.Cut(r.Header.Get("Authorization"), ", Signature=")
			r.Header.Set("Authorization", before)
		}, wantStatus: 400, wantCode: "IncompleteSignature", wantMsg: "'Signature'"},
		{name: "no date", creds: longTerm, mutate: func(r *http.Request, _ *string) { r.Header.Del("X-Amz-Date") }, wantStatus: 400, wantCode: "IncompleteSignature"},
		{name: "long-term key with a session token", creds: aws.Credentials{AccessKeyID: iamserver.DefaultAccessKeyID, SecretAccessKey: iamserver.DefaultSecretAccessKey, SessionToken: "forged"},
			wantStatus: 403, wantCode: "InvalidClientTokenId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := iamserver.New()
			defer srv.Close()
			if tt.service == "" {
				tt.service = "sts"
			}
			if tt.at.IsZero() {
				tt.at = now
			}
			creds := tt.creds
			if creds.AccessKeyID == "" {
				creds = longTerm
			}
			resp, err := http.DefaultClient.Do(signedRequest(t, srv, creds, tt.service, tt.at, tt.mutate))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantCode == "" {
				return
			}
			var got struct {
				XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ ErrorResponse"`
				Type    string   `xml:"Error>Type"`
				Code    string   `xml:"Error>Code"`
				Message string   `xml:"Error>Message"`
				ReqID   string   `xml:"RequestId"`
			}
			if err := decodeXML(resp, &got); err != nil {
				t.Fatal(err)
			}
			if got.Type != "Sender" || got.Code != tt.wantCode || !strings.Contains(got.Message, tt.wantMsg) || len(got.ReqID) != 36 {
				t.Errorf("error %+v, want Sender %s containing %q", got, tt.wantCode, tt.wantMsg)
			}
		})
	}
}

// TestSessionCredentials checks what GetCallerIdentity makes of issued credentials: the
// session token is required and must match, and they expire.
func TestSessionCredentials(t *testing.T) {
	idp := newTestIDP(t)
	srv := iamserver.New()
	defer srv.Close()
	srv.PutRole(unitRole, minimalPolicy(t, unitRole, idpIssuer, "production", "s3-writer"))
	srv.PutOIDCProvider(iamserver.CallerAccount, idpIssuer, unitAud)
	srv.SetIssuerEndpoint(idpIssuer, idp.endpoint())
	out, err := newSTS(srv, nil).AssumeRoleWithWebIdentity(t.Context(), &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(unitRole), RoleSessionName: aws.String("s" + "1"), WebIdentityToken: aws.String(sign(t, idp.key, idp.kid, validClaims())),
		DurationSeconds: aws.Int32(900),
	})
	if err != nil {
		t.Fatal(err)
	}
	id, secret, token := aws.ToString(out.Credentials.AccessKeyId), aws.ToString(out.Credentials.SecretAccessKey), aws.ToString(out.Credentials.SessionToken)
	call := func(token string) (string, int) {
		_, err := newSTS(srv, credentials.NewStaticCredentialsProvider(id, secret, token)).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
		return apiError(err)
	}
	if code, _ := call(token); code != "" {
		t.Fatalf("with the session token: %s", code)
	}
	for name, tok := range map[string]string{"without the session token": "", "with another session token": token[:len(token)-4] + "AAAA"} {
		if code, status := call(tok); code != "InvalidClientTokenId" || status != 403 {
			t.Errorf("%s: %q %d, want InvalidClientTokenId 403", name, code, status)
		}
	}
	// Past their expiry (900 s) the credentials are refused as expired, before the signing
	// time (the real time, now 15 minutes behind the server's clock) is looked at.
	srv.SetClock(func() time.Time { return aws.ToTime(out.Credentials.Expiration).Add(time.Second) })
	if code, status := call(token); code != "ExpiredToken" || status != 403 {
		t.Errorf("after expiry: %q %d, want ExpiredToken 403", code, status)
	}
}
