// Package admission is the HTTP side of the webhook: it reads an AdmissionReview, calls a
// Handler and writes the answer.
//
// It is written here rather than taken from controller-runtime's admission.Webhook on
// purpose: that adapter answers a malformed request with HTTP 200 and a denial, logs every
// bad request at error level, and decodes through the generic runtime codec. Here a
// malformed request gets a real 4xx with a one-line reason, the review and its objects are
// decoded in one pass with encoding/json/v2 into types holding only what the handler reads
// (a pod's resources, probes and the rest are skipped, not parsed), and a panic in a
// handler is answered by the webhook's own internal-error policy: allowed with a warning
// by default (the webhook must never be the reason a pod cannot be created), denied for a
// check configured to fail closed. controller-runtime still serves it (TLS, certificate reload,
// request metrics) through its webhook server.
package admission

import (
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	jsonv2 "encoding/json/v2"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	admissionv1beta1 "k8s.io/api/admission/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Request is an admission request with its objects decoded into T: only the fields a
// handler reads, in one pass over the body (see the package comment).
type Request[T any] struct {
	UID         types.UID                   `json:"uid"`
	Kind        metav1.GroupVersionKind     `json:"kind"`
	Resource    metav1.GroupVersionResource `json:"resource"`
	SubResource string                      `json:"subResource,omitempty"`
	Name        string                      `json:"name,omitempty"`
	Namespace   string                      `json:"namespace,omitempty"`
	Operation   admissionv1.Operation       `json:"operation"`
	DryRun      *bool                       `json:"dryRun,omitempty"`
	Object      T                           `json:"object"`
	OldObject   T                           `json:"oldObject"`
	// ObjectError is set when the envelope decoded but an object did not decode into T;
	// the handler decides what that means (the pod handler admits unchanged with a warning).
	ObjectError error `json:"-"`
}

// IsDryRun reports whether the request must have no side effects.
func (r *Request[T]) IsDryRun() bool { return r.DryRun != nil && *r.DryRun }

type Review[T any] struct {
	metav1.TypeMeta `json:",inline"`
	Request         *Request[T] `json:"request"`
}

// Handler answers one admission request. It must set Allowed (and Patch, Warnings,
// Result as needed); UID and patch type are filled in by the Server.
type Handler[T any] interface {
	Handle(ctx context.Context, req *Request[T]) *admissionv1.AdmissionResponse
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc[T any] func(ctx context.Context, req *Request[T]) *admissionv1.AdmissionResponse

// Handle calls f.
func (f HandlerFunc[T]) Handle(ctx context.Context, req *Request[T]) *admissionv1.AdmissionResponse {
	return f(ctx, req)
}

// OnInternalError is a webhook's answer when its handler panics or returns no answer.
type OnInternalError int

const (
	// AdmitOnInternalError allows the request unchanged, with a warning: the pod webhook's
	// policy, always (the webhook must never be the reason a pod cannot be created).
	AdmitOnInternalError OnInternalError = iota
	// DenyOnInternalError denies the request: for a check configured to fail closed, an
	// error of its own must not let through what it could not verify.
	DenyOnInternalError
)

// answer is the response to an internal error under policy p.
func (p OnInternalError) answer(what string) *admissionv1.AdmissionResponse {
	if p == DenyOnInternalError {
		return Deny(http.StatusInternalServerError, metav1.StatusReasonInternalError,
			"irsa-webhook: internal error ("+what+"); denied because this check fails closed")
	}
	return AllowWithWarnings("irsa-webhook: internal error (" + what + "); admitted unchanged")
}

// Server is an http.Handler for one webhook path.
type Server[T any] struct {
	name            string
	handler         Handler[T]
	log             logr.Logger
	metrics         *Metrics
	onInternalError OnInternalError
	bodies          *BodyBudget // shared by every Server of the process (see body.go)
}

// NewServer returns the HTTP adapter for handler; name is the metric label ("pod",
// "serviceaccount"). Internal errors are admitted (AdmitOnInternalError) unless
// SetOnInternalError says otherwise.
func NewServer[T any](name string, h Handler[T], log logr.Logger, m *Metrics) *Server[T] {
	return &Server[T]{name: name, handler: h, log: log.WithValues("webhook", name), metrics: m, bodies: sharedBodies}
}

// WithBodyBudget makes s charge its request bodies to b instead of the process-wide budget
// of MaxBodyBytesInFlight (for tests).
func (s *Server[T]) WithBodyBudget(b *BodyBudget) *Server[T] {
	s.bodies = b
	return s
}

// SetOnInternalError sets how the server answers when its handler panics or returns no
// answer. Call it before serving.
func (s *Server[T]) SetOnInternalError(p OnInternalError) *Server[T] {
	s.onInternalError = p
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server[T]) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rv, status, err := readReview[T](w, r, s.bodies)
	if err != nil {
		result := ResultBadRequest
		if status == http.StatusTooManyRequests {
			result = ResultOverloaded
		}
		s.metrics.observe(s.name, result, start)
		s.log.V(1).Info("rejected malformed admission request", "status", status, "reason", err.Error(), "remoteAddr", r.RemoteAddr)
		http.Error(w, err.Error(), status)
		return
	}
	resp := s.handle(r.Context(), rv.Request)
	resp.UID = rv.Request.UID
	resp.Warnings = boundWarnings(resp.Warnings)
	if len(resp.Patch) > 0 {
		pt := admissionv1.PatchTypeJSONPatch
		resp.PatchType = &pt
	}
	out := admissionv1.AdmissionReview{TypeMeta: rv.TypeMeta, Response: resp}
	body, err := json.Marshal(&out)
	if err != nil { // cannot happen for these types; answer explicitly rather than hang
		s.metrics.observe(s.name, ResultError, start)
		http.Error(w, "encode admission response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
	s.metrics.observe(s.name, resultOf(resp), start)
}

// handle calls the handler, turning a panic or a missing answer into the server's
// internal-error answer.
func (s *Server[T]) handle(ctx context.Context, req *Request[T]) (resp *admissionv1.AdmissionResponse) {
	defer func() {
		if p := recover(); p != nil {
			s.metrics.Panics.WithLabelValues(s.name).Inc()
			resp = s.onInternalError.answer("panic")
			s.log.Error(fmt.Errorf("panic: %v", p), "handler panicked; answered by the internal-error policy", "allowed", resp.Allowed,
				"kind", req.Kind.Kind, "namespace", req.Namespace, "name", req.Name, "uid", req.UID)
		}
	}()
	resp = s.handler.Handle(ctx, req)
	if resp == nil {
		resp = s.onInternalError.answer("no answer")
	}
	return resp
}

func readReview[T any](w http.ResponseWriter, r *http.Request, budget *BodyBudget) (*Review[T], int, error) {
	if r.Method != http.MethodPost {
		return nil, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed: admission reviews are POSTed", r.Method)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("content type %q not supported: want application/json", r.Header.Get("Content-Type"))
	}
	if r.ContentLength > MaxBodyBytes { // refused before a byte of it is read
		return nil, refuseBody(w, errBodyTooLarge), errBodyTooLarge
	}
	body, err := readBody(r.Body, r.ContentLength, MaxBodyBytes, budget)
	defer body.release()
	if err != nil {
		if errors.Is(err, errBodyTooLarge) || errors.Is(err, errBodiesInFlight) {
			return nil, refuseBody(w, err), err
		}
		return nil, http.StatusBadRequest, err
	}
	rv, err := DecodeReview[T](body.bytes())
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	return rv, http.StatusOK, nil
}

// Warnings quote user input (names, annotation values, parse errors); these bounds keep an
// answer readable and well inside the API server's limits on warning headers.
const (
	maxWarnings      = 8
	maxWarningLength = 512
)

// boundWarnings cuts long warnings (at a UTF-8 boundary) and drops those past maxWarnings.
func boundWarnings(ws []string) []string {
	if len(ws) > maxWarnings {
		ws = append(ws[:maxWarnings-1:maxWarnings-1], fmt.Sprintf("irsa-webhook: %d more warnings not shown", len(ws)-maxWarnings+1))
	}
	for i, w := range ws {
		if len(w) > maxWarningLength {
			cut := maxWarningLength
			for cut > 0 && !utf8.RuneStart(w[cut]) {
				cut--
			}
			ws[i] = w[:cut] + "…"
		}
	}
	return ws
}

// decodeOptions: encoding/json/v2 validates and decodes in one pass (v1 scans the whole
// body once to validate, then again to decode), and matches field names exactly, as the
// API server's own decoder does. The API server never sends duplicate names or invalid
// UTF-8; both are accepted anyway (the last duplicate wins, bad bytes become U+FFFD), as
// encoding/json v1 did, so a quirk in a request never turns into a refused pod.
var decodeOptions = jsonv2.JoinOptions(jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))

// Unmarshal decodes JSON into v as the webhook decodes the objects of an AdmissionReview:
// the same decoder and options, so that field names match exactly (a "ServiceAccountName"
// key is not spec.serviceAccountName) and a duplicate name is read the same way. The mutate
// command reads manifests with it, so that it can never see a pod differently from the webhook.
func Unmarshal(data []byte, v any) error { return jsonv2.Unmarshal(data, v, decodeOptions) }

// The AdmissionReview versions a webhook configuration may ask for (admissionReviewVersions).
// Their requests and responses have the same JSON shape, so one decoder and one answer type
// serve both; the answer carries the request's apiVersion (ServeHTTP copies its TypeMeta), as
// the API server decodes it into the version it sent. v1beta1 is what the reference webhook's
// deploy/ files register.
var (
	reviewV1      = admissionv1.SchemeGroupVersion.WithKind("AdmissionReview")
	reviewV1beta1 = admissionv1beta1.SchemeGroupVersion.WithKind("AdmissionReview")
)

// DecodeReview parses and checks an AdmissionReview request body (admission.k8s.io/v1 or
// v1beta1), decoding its objects into T. An envelope that is fine around an object that
// does not fit T is not an error: the request comes back with ObjectError set.
func DecodeReview[T any](body []byte) (*Review[T], error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("request body is empty: want an AdmissionReview")
	}
	var rv Review[T]
	if err := jsonv2.Unmarshal(body, &rv, decodeOptions); err != nil {
		// Slow path, errors only: is it the envelope or the object?
		var raw Review[jsontext.Value]
		if rawErr := jsonv2.Unmarshal(body, &raw, decodeOptions); rawErr != nil {
			return nil, fmt.Errorf("decode AdmissionReview: %w", rawErr)
		}
		rv = Review[T]{TypeMeta: raw.TypeMeta}
		if raw.Request != nil {
			q := raw.Request
			rv.Request = &Request[T]{UID: q.UID, Kind: q.Kind, Resource: q.Resource, SubResource: q.SubResource, Name: q.Name,
				Namespace: q.Namespace, Operation: q.Operation, DryRun: q.DryRun, ObjectError: err}
		}
	}
	if gvk := rv.GroupVersionKind(); gvk != reviewV1 && gvk != reviewV1beta1 {
		return nil, fmt.Errorf("decode AdmissionReview: got apiVersion %.64q kind %.64q, want %s or %s AdmissionReview",
			rv.APIVersion, rv.Kind, reviewV1.GroupVersion(), reviewV1beta1.GroupVersion())
	}
	if rv.Request == nil {
		return nil, fmt.Errorf("decode AdmissionReview: request is missing")
	}
	if rv.Request.UID == "" {
		return nil, fmt.Errorf("decode AdmissionReview: request.uid is missing")
	}
	return &rv, nil
}

// Allow returns an allowed answer with optional warnings.
func AllowWithWarnings(warnings ...string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: true, Warnings: warnings}
}

// Deny returns a denial with an HTTP-style code and a message for the user.
func Deny(code int32, reason metav1.StatusReason, msg string, warnings ...string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{
		Allowed:  false,
		Warnings: warnings,
		Result:   &metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: reason, Message: msg},
	}
}
