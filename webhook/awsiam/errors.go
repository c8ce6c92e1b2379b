package awsiam

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Error classes. Every error TrustPolicy returns is an *Error whose class is one of these,
// so callers branch with errors.Is(err, awsiam.ErrNotFound) and friends. Their texts are
// short reasons fit for an admission warning ("trust not verified: IAM throttled").
var (
	// ErrNotFound: the role does not exist (IAM NoSuchEntity), or the role IAM returned
	// for the name has another path or account than the ARN asked for.
	ErrNotFound = errors.New("role does not exist")
	// ErrAccessDenied: IAM refused the webhook's call: its credentials lack iam:GetRole
	// on the role, or IAM rejected the credentials themselves.
	ErrAccessDenied = errors.New("access denied")
	// ErrThrottled: IAM throttled the call (after the SDK's bounded retry).
	ErrThrottled = errors.New("IAM throttled")
	// ErrUnavailable: IAM did not answer usefully in time: 5xx, timeouts, refused
	// connections, a caller deadline, or an answer that could not be used.
	ErrUnavailable = errors.New("IAM unavailable")
	// ErrOtherAccount: the role is not in the AWS account of the webhook's credentials (or
	// that account is unknown and IAM has no such role in it). GetRole cannot read roles of
	// other accounts, so this says nothing about whether the role exists or trusts anyone.
	ErrOtherAccount = errors.New("role not readable from the webhook's AWS account")
	// ErrRateLimited: the webhook's own limit on GetRole calls was reached; no call was
	// made, and nothing is cached, so a later check of the role calls IAM.
	ErrRateLimited = errors.New("rate limited")
	// ErrInvalidARN: the role ARN does not parse; no call was made.
	ErrInvalidARN = errors.New("invalid role ARN")
)

// Error is a failed trust-policy lookup: what was attempted (the role ARN), its class
// (one of the Err* sentinels), a human explanation, and the underlying cause.
type Error struct {
	RoleARN string
	Class   error  // ErrNotFound, ErrOtherAccount, ErrAccessDenied, ErrThrottled, ErrUnavailable, ErrRateLimited or ErrInvalidARN
	Detail  string // what went wrong in words, may be empty
	Err     error  // the cause (SDK, network, file system error), may be nil
}

// Error renders `get role "ARN": CLASS: DETAIL: CAUSE`, leaving out empty parts.
func (e *Error) Error() string {
	s := fmt.Sprintf("get role %q: %v", e.RoleARN, e.Class)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + causeText(e.Err)
	}
	return s
}

// causeText renders the SDK's verbose error chain compactly: the API error code and
// message with the request ID, or the failed HTTP request, or the context error.
func causeText(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		s := apiErr.ErrorCode() + ": " + apiErr.ErrorMessage()
		var re *awshttp.ResponseError
		if errors.As(err, &re) && re.ServiceRequestID() != "" {
			s += " (request ID " + re.ServiceRequestID() + ")"
		}
		return s
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Error()
	}
	for _, ctxErr := range []error{context.DeadlineExceeded, context.Canceled} {
		if errors.Is(err, ctxErr) {
			return ctxErr.Error()
		}
	}
	return err.Error()
}

// Unwrap exposes both the class and the cause to errors.Is / errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Class}
	}
	return []error{e.Class, e.Err}
}

// credentialErrorCodes are IAM/STS answers meaning the webhook's credentials themselves
// were refused (rather than lacking a permission).
var credentialErrorCodes = map[string]bool{
	"InvalidClientTokenId":        true,
	"SignatureDoesNotMatch":       true,
	"IncompleteSignature":         true,
	"MissingAuthenticationToken":  true,
	"ExpiredToken":                true,
	"ExpiredTokenException":       true,
	"UnrecognizedClientException": true,
	"InvalidAccessKeyId":          true,
}

// accessDeniedCodes are IAM answers meaning the credentials lack a permission.
var accessDeniedCodes = map[string]bool{
	"AccessDenied":          true,
	"AccessDeniedException": true,
	"UnauthorizedOperation": true,
}

// classify turns an error from GetRole into an *Error. It is the one place that maps SDK
// and network errors to classes.
func classify(roleARN string, err error) *Error {
	e := &Error{RoleARN: roleARN, Err: err}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code := apiErr.ErrorCode()
		_, throttle := retry.DefaultThrottleErrorCodes[code]
		switch {
		case code == "NoSuchEntity":
			e.Class = ErrNotFound
		case accessDeniedCodes[code]:
			e.Class = ErrAccessDenied
			e.Detail = "the webhook's AWS credentials lack permission iam:GetRole on " + roleARN
		case credentialErrorCodes[code]:
			e.Class = ErrAccessDenied
			e.Detail = "IAM rejected the webhook's AWS credentials"
		case throttle:
			e.Class = ErrThrottled
		default:
			e.Class = ErrUnavailable
			if status := httpStatus(err); status < 500 && status != 0 {
				e.Detail = fmt.Sprintf("unexpected IAM error (HTTP %d)", status)
			}
		}
		return e
	}
	e.Class = ErrUnavailable
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		e.Detail = "no answer in time"
	case errors.Is(err, context.Canceled):
		e.Detail = "call canceled"
	}
	return e
}

// httpStatus is the HTTP status of the response behind err, 0 if there was none.
func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.HTTPStatusCode()
	}
	return 0
}

// transient reports whether an error class is worth only a short negative-cache entry.
func transient(class error) bool {
	return errors.Is(class, ErrThrottled) || errors.Is(class, ErrUnavailable)
}
