// Package admission is the HTTP side of the webhook: it reads an AdmissionReview, calls a
// Handler and writes the answer.
//
// It is written here rather than taken from controller-runtime's admission.Webhook on
// purpose: that adapter answers a malformed request with HTTP 200 and a denial, logs every
// bad request at error level, and decodes through the generic runtime codec. Here a
// malformed request gets a real 4xx with a one-line reason, the review is decoded once with
// encoding/json (the pod itself stays raw until its handler needs it), and a panic in a
// handler becomes an allowed answer with a warning: the webhook must never be the reason a
// pod cannot be created. controller-runtime still serves it (TLS, certificate reload,
// request metrics) through its webhook server.
package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxBodyBytes bounds a request body: an AdmissionReview holds at most two objects of
// etcd's 1.5 MiB limit each (stored as JSON at up to twice that), plus the envelope.
const MaxBodyBytes = 7 << 20

// Handler answers one admission request. It must set Allowed (and Patch, Warnings,
// Result as needed); UID and patch type are filled in by Serve.
type Handler interface {
	Handle(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	return f(ctx, req)
}

// Server is an http.Handler for one webhook path.
type Server struct {
	name    string
	handler Handler
	log     logr.Logger
	metrics *Metrics
}

// NewServer returns the HTTP adapter for handler; name is the metric label ("pod", "serviceaccount").
func NewServer(name string, h Handler, log logr.Logger, m *Metrics) *Server {
	return &Server{name: name, handler: h, log: log.WithValues("webhook", name), metrics: m}
}

// ErrBadRequest marks request errors that are the client's fault.
var ErrBadRequest = errors.New("bad request")

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	review, status, err := readReview(w, r)
	if err != nil {
		s.metrics.observe(s.name, ResultBadRequest, start)
		s.log.V(1).Info("rejected malformed admission request", "status", status, "reason", err.Error(), "remoteAddr", r.RemoteAddr)
		http.Error(w, err.Error(), status)
		return
	}
	resp := s.handle(r.Context(), review.Request)
	resp.UID = review.Request.UID
	if len(resp.Patch) > 0 {
		pt := admissionv1.PatchTypeJSONPatch
		resp.PatchType = &pt
	}
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
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

// handle calls the handler, turning a panic into an allowed, unchanged answer.
func (s *Server) handle(ctx context.Context, req *admissionv1.AdmissionRequest) (resp *admissionv1.AdmissionResponse) {
	defer func() {
		if p := recover(); p != nil {
			s.metrics.Panics.WithLabelValues(s.name).Inc()
			s.log.Error(fmt.Errorf("panic: %v", p), "handler panicked; request allowed unchanged",
				"kind", req.Kind.Kind, "namespace", req.Namespace, "name", req.Name, "uid", req.UID)
			resp = AllowWithWarnings("irsa-webhook: internal error; admitted unchanged")
		}
	}()
	resp = s.handler.Handle(ctx, req)
	if resp == nil {
		resp = AllowWithWarnings("irsa-webhook: internal error (no answer); admitted unchanged")
	}
	return resp
}

func readReview(w http.ResponseWriter, r *http.Request) (*admissionv1.AdmissionReview, int, error) {
	if r.Method != http.MethodPost {
		return nil, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed: admission reviews are POSTed", r.Method)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("content type %q not supported: want application/json", r.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body exceeds %d bytes", MaxBodyBytes)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("read request body: %w", err)
	}
	review, err := DecodeReview(body)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	return review, http.StatusOK, nil
}

// DecodeReview parses and checks an AdmissionReview v1 request body.
func DecodeReview(body []byte) (*admissionv1.AdmissionReview, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("request body is empty: want an AdmissionReview")
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, fmt.Errorf("decode AdmissionReview: %w", err)
	}
	if gvk := review.GroupVersionKind(); gvk != admissionv1.SchemeGroupVersion.WithKind("AdmissionReview") {
		return nil, fmt.Errorf("decode AdmissionReview: got apiVersion %q kind %q, want admission.k8s.io/v1 AdmissionReview", review.APIVersion, review.Kind)
	}
	if review.Request == nil {
		return nil, fmt.Errorf("decode AdmissionReview: request is missing")
	}
	if review.Request.UID == "" {
		return nil, fmt.Errorf("decode AdmissionReview: request.uid is missing")
	}
	return &review, nil
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
