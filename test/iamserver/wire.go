package iamserver

import (
	"crypto/rand"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// STSNamespace is the XML namespace of every STS response.
const STSNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"

// apiError is an answer in the Query protocol's error envelope: the HTTP status, the fault
// type (Sender or Receiver), the code and the message, as AWS sends them.
type apiError struct {
	status int
	typ    string
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

// errorShape is the HTTP status, fault type and default message per error code, as IAM and
// STS send them (the AWS API references' "Common Errors" and per-action error lists).
var errorShape = map[string]struct {
	status int
	typ    string
	msg    string
}{
	CodeNoSuchEntity:               {http.StatusNotFound, "Sender", "The role cannot be found."},
	CodeThrottling:                 {http.StatusBadRequest, "Sender", "Rate exceeded"},
	CodeAccessDenied:               {http.StatusForbidden, "Sender", "Access denied"},
	CodeServiceFailure:             {http.StatusInternalServerError, "Receiver", "The request processing has failed because of an unknown error, exception or failure."},
	CodeServiceUnavailable:         {http.StatusServiceUnavailable, "Receiver", "Service Unavailable"},
	CodeInvalidAction:              {http.StatusBadRequest, "Sender", "The action or operation requested is invalid."},
	CodeValidationError:            {http.StatusBadRequest, "Sender", "Validation error"},
	CodeInvalidInput:               {http.StatusBadRequest, "Sender", "Invalid input"},
	CodeEntityAlreadyExists:        {http.StatusConflict, "Sender", "The entity already exists."},
	CodeLimitExceeded:              {http.StatusConflict, "Sender", "Limit exceeded"},
	CodeMissingAuthenticationToken: {http.StatusForbidden, "Sender", "Request is missing Authentication Token"},
	CodeInvalidClientTokenID:       {http.StatusForbidden, "Sender", "The security token included in the request is invalid."},
	CodeIncompleteSignature:        {http.StatusBadRequest, "Sender", "The request signature does not conform to AWS standards."},
	CodeSignatureDoesNotMatch:      {http.StatusForbidden, "Sender", msgSignatureDoesNotMatch},
	CodeExpiredToken:               {http.StatusForbidden, "Sender", "The security token included in the request is expired"},
	CodeInvalidIdentityToken:       {http.StatusBadRequest, "Sender", "The web identity token that was passed could not be validated by AWS."},
	CodeExpiredTokenException:      {http.StatusBadRequest, "Sender", "The web identity token that was passed is expired or is not valid."},
	CodeIDPCommunicationError:      {http.StatusBadRequest, "Sender", msgIDPUnreachable},
}

const (
	msgSignatureDoesNotMatch = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	msgIDPUnreachable        = "The request could not be fulfilled because the identity provider (IDP) that was asked to verify the incoming identity token could not be reached."
)

// codeError returns the error for code with msg ("" for the code's default message); an
// unknown code (an injected fault) is a 400 Sender error.
func codeError(code, msg string) *apiError {
	shape, ok := errorShape[code]
	if !ok {
		shape.status, shape.typ, shape.msg = http.StatusBadRequest, "Sender", "Injected fault "+code
	}
	if msg == "" {
		msg = shape.msg
	}
	return &apiError{status: shape.status, typ: shape.typ, code: code, msg: msg}
}

type errorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

// writeError answers with IAM's error envelope.
func writeError(w http.ResponseWriter, code, msg string) {
	writeAPIError(w, Namespace, codeError(code, msg))
}

// writeAPIError answers e in the envelope of the service whose namespace is ns.
func writeAPIError(w http.ResponseWriter, ns string, e *apiError) {
	id := newRequestID()
	writeXML(w, e.status, id, errorResponse{Xmlns: ns, Type: e.typ, Code: e.code, Message: e.msg, RequestID: id})
}

// responseMetadata ends every successful Query-protocol answer.
type responseMetadata struct {
	RequestID string `xml:"RequestId"`
}

// writeXML answers like IAM and STS: text/xml, an x-amzn-RequestId header matching the
// body's RequestId, and an indented document.
func writeXML(w http.ResponseWriter, status int, requestID string, v any) {
	body, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "marshal response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("x-amzn-RequestId", requestID)
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// EncodePolicy percent-encodes a policy document the way IAM returns it: RFC 3986, every
// byte except the unreserved A-Z a-z 0-9 - _ . ~ as %XX (UTF-8 bytes, spaces as %20).
// url.QueryEscape already leaves exactly the unreserved set alone and escapes '+' itself,
// so only its space-as-'+' needs undoing.
func EncodePolicy(doc string) string {
	return strings.ReplaceAll(url.QueryEscape(doc), "+", "%20")
}

// newRequestID returns a random RFC 4122 version 4 UUID, IAM's request id format. Written
// here because no module the project depends on directly provides UUIDs.
func newRequestID() string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// validationErrors renders IAM's and STS's message for failed parameter constraints:
// "1 validation error detected: ..." or "N validation errors detected: a; b".
func validationErrors(problems []string) *apiError {
	noun := "error"
	if len(problems) > 1 {
		noun = "errors"
	}
	return codeError(CodeValidationError, fmt.Sprintf("%d validation %s detected: %s", len(problems), noun, strings.Join(problems, "; ")))
}

// nullProblem is the constraint message for a missing required parameter.
func nullProblem(param string) string {
	return fmt.Sprintf("Value null at '%s' failed to satisfy constraint: Member must not be null", param)
}
