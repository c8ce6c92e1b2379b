// Package serving is the webhook's HTTPS server: controller-runtime's webhook.Server with
// the limits an unauthenticated port needs.
//
// controller-runtime's DefaultServer builds its http.Server internally (pkg/internal/
// httpserver: a 32s header timeout, no read or write timeout, 1 MiB of headers) and offers
// HTTP/2 by default; none of that can be configured. Per-request deadlines set with
// http.ResponseController from the handler would come too late for the header phase and
// could not cap header size, so this package implements the small webhook.Server interface
// itself: registration (with controller-runtime's per-path request metrics) stays
// DefaultServer's, only Start builds the http.Server, with the limits below. The serving
// certificate comes from the caller's GetCertificate (controller-runtime's certwatcher, or
// the self-managed certificate manager), which reloads it.
package serving

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// Limits of the webhook's HTTP server. The API server is the only legitimate client: it
// sends a request's headers and body at once over the cluster network and gives up after
// the webhook's timeoutSeconds (at most 30s, the API's maximum), so a request not read,
// handled and answered within 30s is useless to it. The read and write bounds are that
// maximum, so that they never cut a request the API server still waits for, even on a
// CPU-starved node (a load run on an overloaded machine, with 5s and 10s bounds, had
// requests cut); they end a client that trickles bytes, and with it its share of
// admission.MaxBodyBytesInFlight, which bounds the memory meanwhile.
const (
	// ReadHeaderTimeout bounds the time to read a request's headers, from their first byte
	// (a kept-alive connection waits for that under IdleTimeout). The API server's are a few
	// hundred bytes, sent at once.
	ReadHeaderTimeout = 10 * time.Second
	// ReadTimeout bounds the time to read a whole request, headers and body. A body still
	// arriving after it is answered 400 and its connection closed.
	ReadTimeout = 30 * time.Second
	// WriteTimeout bounds reading the body, handling and writing the answer.
	WriteTimeout = 30 * time.Second
	// IdleTimeout closes keep-alive connections idle this long: as long as the API server's
	// own idle timeout (90s), so that it, not the webhook, ends idle connections and never
	// sends a request on a connection being closed.
	IdleTimeout = 90 * time.Second
	// MaxHeaderBytes caps a request's headers (Go adds 4 KiB of slack): the API server's are
	// a few hundred bytes.
	MaxHeaderBytes = 16 << 10
	// shutdownTimeout bounds how long in-flight requests may finish once the context ends;
	// the caller's graceful-shutdown period is the real bound.
	shutdownTimeout = time.Minute
	// dialTimeout bounds the readiness check's connection to the server itself.
	dialTimeout = 5 * time.Second
)

// Protocols offered in the TLS handshake (ALPN).
var (
	http1Only = []string{"http/1.1"}
	// withHTTP2: multiplexed streams let one connection hold many requests (and were the
	// channel of the 2023 rapid-reset attacks, CVE-2023-44487), so HTTP/2 is opt-in, as
	// controller-runtime and kubebuilder advise.
	withHTTP2 = []string{"h2", "http/1.1"}
)

// Options configure a Server.
type Options struct {
	Host string // empty: all addresses
	Port int
	// TLSOpts set the certificate (GetCertificate), versions and cipher suites.
	TLSOpts []func(*tls.Config)
	// EnableHTTP2 offers h2 in ALPN besides http/1.1.
	EnableHTTP2 bool
	Log         logr.Logger
}

// Server is a webhook.Server with bounded timeouts and headers and HTTP/1.1 by default.
type Server struct {
	webhook.Server // Register, WebhookMux, NeedLeaderElection: controller-runtime's
	opts           Options
	mux            *http.ServeMux
	started        atomic.Bool
}

var _ webhook.Server = (*Server)(nil)

// New returns a Server; hooks are registered on it as on controller-runtime's.
func New(o Options) *Server {
	mux := http.NewServeMux()
	return &Server{
		// Only for Register: it wraps each hook in controller-runtime's request metrics
		// (controller_runtime_webhook_requests_total, _in_flight, latency) on mux.
		Server: webhook.NewServer(webhook.Options{Host: o.Host, Port: o.Port, WebhookMux: mux}),
		opts:   o,
		mux:    mux,
	}
}

// TLSConfig is the server's TLS configuration: opts applied, then ALPN.
func (s *Server) TLSConfig() *tls.Config {
	cfg := &tls.Config{}
	for _, op := range s.opts.TLSOpts {
		op(cfg)
	}
	cfg.NextProtos = http1Only
	if s.opts.EnableHTTP2 {
		cfg.NextProtos = withHTTP2
	}
	return cfg
}

// HTTPServer is the http.Server Start runs, with the package's limits.
func (s *Server) HTTPServer(ctx context.Context) *http.Server {
	srv := &http.Server{
		Handler:           s.mux,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
	if !s.opts.EnableHTTP2 {
		// Not only left out of ALPN: the server does not speak it at all.
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	return srv
}

func (s *Server) addr() string { return net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port)) }

// Start serves until ctx ends, then shuts down gracefully.
func (s *Server) Start(ctx context.Context) error {
	cfg := s.TLSConfig()
	if cfg.GetCertificate == nil && len(cfg.Certificates) == 0 {
		return errors.New("start webhook server: no serving certificate (TLSOpts must set GetCertificate)")
	}
	l, err := tls.Listen("tcp", s.addr(), cfg)
	if err != nil {
		return fmt.Errorf("start webhook server: listen on %s: %w", s.addr(), err)
	}
	srv := s.HTTPServer(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			s.opts.Log.Error(err, "shut down webhook server")
		}
	}()
	s.opts.Log.Info("serving webhooks", "address", l.Addr().String(), "http2", s.opts.EnableHTTP2)
	s.started.Store(true)
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve webhooks: %w", err)
	}
	<-stopped
	return nil
}

// StartedChecker is healthy once the server accepts TLS connections.
func (s *Server) StartedChecker() healthz.Checker {
	return func(*http.Request) error {
		if !s.started.Load() {
			return errors.New("webhook server has not been started yet")
		}
		d := &net.Dialer{Timeout: dialTimeout} // an empty host dials the local system
		// Only whether the listener answers a handshake: the certificate is the cert
		// source's readiness check.
		conn, err := tls.DialWithDialer(d, "tcp", s.addr(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // see above
		if err != nil {
			return fmt.Errorf("webhook server is not reachable: %w", err)
		}
		return conn.Close()
	}
}
