package iamserver

import (
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzRequest sends arbitrary STS and IAM requests (action, token, Authorization header,
// extra form) to the handler: every answer must be a well-formed XML document with a status
// AWS uses, never a panic.
func FuzzRequest(f *testing.F) {
	seeds := []struct{ version, action, token, authz, extra string }{
		{stsAPIVersion, "AssumeRoleWithWebIdentity", "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJpc3MiOiJodHRwczovL2EifQ.c2ln", "", "RoleArn=arn:aws:iam::123456789012:role/r&RoleSessionName=s1"},
		{stsAPIVersion, "AssumeRoleWithWebIdentity", "a.b.c", "", "RoleArn=x&RoleSessionName=&DurationSeconds=99999999999999999999"},
		{stsAPIVersion, "GetCallerIdentity", "", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=00", ""},
		{stsAPIVersion, "GetCallerIdentity", "", "AWS4-HMAC-SHA256 Credential=////, SignedHeaders=;;;, Signature=", ""},
		{APIVersion, actCreateProvider, "", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00", "Url=https://a.test&ClientIDList.member.1=x&ThumbprintList.member.1=zz&Tags.member.1.Key=k"},
		{APIVersion, actGetProvider, "", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00", "OpenIDConnectProviderArn=arn:aws:iam::123456789012:oidc-provider/"},
	}
	for _, s := range seeds {
		f.Add(s.version, s.action, s.token, s.authz, s.extra)
	}
	srv := New()
	defer srv.Close()
	srv.PutRole("arn:aws:iam::123456789012:role/r", `{"Version":"2012-10-17","Statement":[]}`)
	srv.PutOIDCProvider(CallerAccount, "https://a", "aud")
	srv.SetIssuerEndpoint("https://a", IssuerEndpoint{DiscoveryURL: "https://127.0.0.1:1/"})
	f.Fuzz(func(t *testing.T, version, action, token, authz, extra string) {
		form, err := url.ParseQuery(extra)
		if err != nil {
			form = url.Values{}
		}
		form.Set("Version", version)
		form.Set("Action", action)
		form.Set("WebIdentityToken", token)
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Amz-Date", "20260102T030405Z")
		if authz != "" && !strings.ContainsAny(authz, "\r\n") {
			req.Header.Set("Authorization", authz)
		}
		rec := httptest.NewRecorder()
		srv.handler.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 400, 403, 404, 409, 500, 503:
		default:
			t.Fatalf("status %d", rec.Code)
		}
		var doc struct{ XMLName xml.Name }
		if err := xml.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			t.Fatalf("answer is not XML (%v): %s", err, rec.Body.String())
		}
	})
}
