package iamserver

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
	"time"
)

func (s *Server) getRole(w http.ResponseWriter, name string) {
	s.mu.Lock()
	s.calls[name]++
	s.mu.Unlock()
	code := s.takeFault()
	s.mu.Lock()
	rl, found := s.roles[strings.ToLower(name)]
	s.mu.Unlock()

	switch {
	case name == "":
		writeAPIError(w, Namespace, validationErrors([]string{nullProblem("roleName")}))
	case !validRoleName(name):
		writeError(w, CodeValidationError, fmt.Sprintf("1 validation error detected: Value '%s' at 'roleName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+", name))
	case code == CodeNoSuchEntity || (code == "" && !found):
		writeError(w, CodeNoSuchEntity, fmt.Sprintf("The role with name %s cannot be found.", name))
	case code == CodeAccessDenied:
		writeError(w, CodeAccessDenied, fmt.Sprintf(
			"User: %s is not authorized to perform: iam:GetRole on resource: role %s because no identity-based policy allows the iam:GetRole action",
			principalARN, name))
	case code != "":
		writeError(w, code, "")
	default:
		writeGetRole(w, rl)
	}
}

// checkSigned reports why a request is not SigV4-signed ("" if it is). It checks the
// shape of the Authorization header (or presigned query) and the credential scope's
// service; it does not verify the signature.
func checkSigned(r *http.Request, service string) string {
	authz := r.Header.Get("Authorization")
	if authz == "" {
		if r.URL.Query().Get("X-Amz-Algorithm") == "AWS4-HMAC-SHA256" && r.URL.Query().Get("X-Amz-Signature") != "" {
			return ""
		}
		return "Request is missing Authentication Token"
	}
	rest, ok := strings.CutPrefix(authz, "AWS4-HMAC-SHA256 ")
	if !ok {
		return "Authorization header requires the AWS4-HMAC-SHA256 algorithm."
	}
	fields := map[string]string{}
	for _, f := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if fields[k] == "" {
			return fmt.Sprintf("Authorization header requires '%s' parameter.", k)
		}
	}
	// Credential=AKID/20060102/us-east-1/iam/aws4_request
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[3] != service || scope[4] != "aws4_request" {
		return fmt.Sprintf("Credential should be scoped to correct service: '%s'. ", service)
	}
	if r.Header.Get("X-Amz-Date") == "" && r.Header.Get("Date") == "" {
		return "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
	}
	return ""
}

// validRoleName is IAM's pattern for GetRole's RoleName: [\w+=,.@-]+, at most 64.
func validRoleName(name string) bool {
	if len(name) > 64 {
		return false
	}
	for _, c := range []byte(name) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_+=,.@-", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// Wire shapes of IAM's GetRole response.
type getRoleResponse struct {
	XMLName  xml.Name         `xml:"GetRoleResponse"`
	Xmlns    string           `xml:"xmlns,attr"`
	Role     xmlRole          `xml:"GetRoleResult>Role"`
	Metadata responseMetadata `xml:"ResponseMetadata"`
}

type xmlRole struct {
	Path                     string `xml:"Path"`
	AssumeRolePolicyDocument string `xml:"AssumeRolePolicyDocument"`
	MaxSessionDuration       int    `xml:"MaxSessionDuration"`
	RoleID                   string `xml:"RoleId"`
	RoleLastUsed             string `xml:"RoleLastUsed"`
	RoleName                 string `xml:"RoleName"`
	Arn                      string `xml:"Arn"`
	CreateDate               string `xml:"CreateDate"`
}

func writeGetRole(w http.ResponseWriter, rl role) {
	id := newRequestID()
	writeXML(w, http.StatusOK, id, getRoleResponse{
		Xmlns: Namespace,
		Role: xmlRole{
			Path:                     rl.path,
			AssumeRolePolicyDocument: EncodePolicy(rl.policy),
			MaxSessionDuration:       defaultMaxSessionDuration,
			RoleID:                   rl.id,
			RoleName:                 rl.name,
			Arn:                      rl.arn,
			CreateDate:               rl.created.Format(time.RFC3339),
		},
		Metadata: responseMetadata{RequestID: id},
	})
}

// roleID renders IAM's role id shape ("AROA" + 17 upper-case letters and digits) from a
// digest, so a role's id is stable for its ARN.
func roleID(sum []byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	var b strings.Builder
	b.WriteString("AROA")
	for i := 0; i < 17; i++ {
		b.WriteByte(alphabet[sum[i]%32])
	}
	return b.String()
}
