package iamserver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	amzDateFormat = "20060102T150405Z"
	// maxSigningSkew is how far a request's X-Amz-Date may be from the server's clock.
	maxSigningSkew = 15 * time.Minute
	maxAuthzLen    = 4 << 10
)

// authorization is a parsed "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..."
// header.
type authorization struct {
	accessKeyID, date, region, service string
	signedHeaders                      []string
	signature                          string
}

// awsMessage is an error whose text is AWS's own message, sent as it is (AWS's messages are
// sentences, capitalised and ending with a period, unlike Go error strings).
type awsMessage string

func (m awsMessage) Error() string { return string(m) }

// parseAuthorization parses a SigV4 Authorization header; the error text is what AWS says in
// its IncompleteSignature answer.
func parseAuthorization(h string) (authorization, error) {
	var a authorization
	if len(h) > maxAuthzLen {
		return a, awsMessage(fmt.Sprintf("Authorization header is longer than %d bytes.", maxAuthzLen))
	}
	rest, ok := strings.CutPrefix(h, "AWS4-HMAC-SHA256 ")
	if !ok {
		return a, awsMessage("Authorization header requires the AWS4-HMAC-SHA256 algorithm.")
	}
	fields := map[string]string{}
	for _, f := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	var missing []string
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if fields[k] == "" {
			missing = append(missing, fmt.Sprintf("Authorization header requires '%s' parameter.", k))
		}
	}
	if len(missing) > 0 {
		return a, awsMessage(strings.Join(missing, " "))
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[0] == "" || scope[4] != "aws4_request" {
		return a, awsMessage("Credential should have form: <access key>/<date>/<region>/<service>/aws4_request.")
	}
	a.accessKeyID, a.date, a.region, a.service = scope[0], scope[1], scope[2], scope[3]
	a.signedHeaders = strings.Split(fields["SignedHeaders"], ";")
	a.signature = fields["Signature"]
	return a, nil
}

// verifySignature recomputes the SigV4 signature of r (whose body was body) with creds using
// aws-sdk-go-v2's signer, and compares it with the one r carries. The signer signs every
// header it does not ignore, so the copy it signs holds exactly the headers the client
// listed in SignedHeaders; a client that signed a header aws-sdk-go-v2 never signs (such as
// User-Agent) gets SignatureDoesNotMatch here, which AWS would accept. Presigned (query
// string) requests are not supported.
func verifySignature(r *http.Request, body []byte, a authorization, creds aws.Credentials, signingTime time.Time) bool {
	copyURL := &url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	req := &http.Request{Method: r.Method, URL: copyURL, Host: r.Host, Header: http.Header{}}
	for _, name := range a.signedHeaders {
		switch name {
		case "host":
		case "content-length":
			req.ContentLength = int64(len(body))
		default:
			if v, ok := r.Header[http.CanonicalHeaderKey(name)]; ok {
				req.Header[http.CanonicalHeaderKey(name)] = v
			}
		}
	}
	if creds.SessionToken == "" {
		// The signer adds X-Amz-Security-Token itself when the credentials have one.
		req.Header.Del("X-Amz-Security-Token")
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), a.service, a.region, signingTime); err != nil {
		return false
	}
	want, err := parseAuthorization(req.Header.Get("Authorization"))
	if err != nil {
		return false
	}
	return hmac.Equal([]byte(want.signature), []byte(a.signature))
}

// authenticate checks that r is SigV4-signed for service with a key this server knows, at a
// time within maxSigningSkew of now, and returns that key. The error is AWS's answer.
func (s *Server) authenticate(r *http.Request, body []byte, service string, now time.Time) (accessKey, *apiError) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if r.URL.Query().Get("X-Amz-Signature") != "" {
			return accessKey{}, codeError(CodeIncompleteSignature, "Presigned requests are not supported by this test endpoint; sign the Authorization header.")
		}
		return accessKey{}, codeError(CodeMissingAuthenticationToken, "Request is missing Authentication Token")
	}
	a, err := parseAuthorization(h)
	if err != nil {
		return accessKey{}, codeError(CodeIncompleteSignature, err.Error())
	}
	if a.service != service {
		return accessKey{}, codeError(CodeSignatureDoesNotMatch, fmt.Sprintf("Credential should be scoped to correct service: '%s'. ", service))
	}
	dateHeader := r.Header.Get("X-Amz-Date")
	if dateHeader == "" {
		return accessKey{}, codeError(CodeIncompleteSignature, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	signingTime, err := time.Parse(amzDateFormat, dateHeader)
	if err != nil || a.date != signingTime.Format("20060102") {
		return accessKey{}, codeError(CodeIncompleteSignature, fmt.Sprintf("Date must be in ISO-8601 'basic format' and match the credential scope. Got '%s'.", dateHeader))
	}

	s.mu.Lock()
	key, known := s.keys[a.accessKeyID]
	s.mu.Unlock()
	switch {
	case !known:
		return accessKey{}, codeError(CodeInvalidClientTokenID, "")
	case key.sessionToken != "" && !hmac.Equal([]byte(r.Header.Get("X-Amz-Security-Token")), []byte(key.sessionToken)):
		return accessKey{}, codeError(CodeInvalidClientTokenID, "")
	case key.sessionToken == "" && r.Header.Get("X-Amz-Security-Token") != "":
		return accessKey{}, codeError(CodeInvalidClientTokenID, "")
	case !key.expires.IsZero() && !now.Before(key.expires):
		return accessKey{}, codeError(CodeExpiredToken, "")
	}
	creds := aws.Credentials{AccessKeyID: a.accessKeyID, SecretAccessKey: key.secret, SessionToken: key.sessionToken}
	if !verifySignature(r, body, a, creds, signingTime) {
		return accessKey{}, codeError(CodeSignatureDoesNotMatch, msgSignatureDoesNotMatch)
	}
	switch {
	case signingTime.Before(now.Add(-maxSigningSkew)):
		return accessKey{}, codeError(CodeSignatureDoesNotMatch, fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - 15 min.)",
			dateHeader, now.Add(-maxSigningSkew).UTC().Format(amzDateFormat), now.UTC().Format(amzDateFormat)))
	case signingTime.After(now.Add(maxSigningSkew)):
		return accessKey{}, codeError(CodeSignatureDoesNotMatch, fmt.Sprintf("Signature not yet current: %s is still later than %s (%s + 15 min.)",
			dateHeader, now.Add(maxSigningSkew).UTC().Format(amzDateFormat), now.UTC().Format(amzDateFormat)))
	}
	return key, nil
}
