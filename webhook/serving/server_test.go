package serving_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/irsa-webhook/irsa-webhook/certs"
	"github.com/irsa-webhook/irsa-webhook/webhook/serving"
)

// start serves a hook answering 200 on /hook over TLS on a free loopback port and returns
// its address and a client TLS configuration trusting it.
func start(t *testing.T, http2 bool) (string, *tls.Config) {
	t.Helper()
	now := time.Now()
	ca, err := certs.NewCA("serving-test", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(nil, []net.IP{net.IPv4(127, 0, 0, 1)}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := serving.New(serving.Options{
		Host: "127.0.0.1", Port: port, EnableHTTP2: http2, Log: logr.Discard(),
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.Certificates = []tls.Certificate{pair} }},
	})
	s.Register("/hook", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	errc := make(chan error, 1)
	go func() { errc <- s.Start(t.Context()) }()
	t.Cleanup(func() {
		if err := <-errc; err != nil {
			t.Errorf("Start: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for s.StartedChecker()(nil) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("server not started: %v", s.StartedChecker()(nil))
		}
		time.Sleep(10 * time.Millisecond)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM())
	return fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func TestALPN(t *testing.T) {
	tests := []struct {
		name   string
		http2  bool
		offer  []string
		wantAL string
	}{
		{"h2 offered, HTTP/2 off: http/1.1", false, []string{"h2", "http/1.1"}, "http/1.1"},
		{"only h2 offered, HTTP/2 off: refused", false, []string{"h2"}, ""},
		{"h2 offered, --enable-http2: h2", true, []string{"h2", "http/1.1"}, "h2"},
		{"http/1.1 offered, --enable-http2: http/1.1", true, []string{"http/1.1"}, "http/1.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, cfg := start(t, tc.http2)
			cfg.NextProtos = tc.offer
			conn, err := tls.Dial("tcp", addr, cfg)
			if tc.wantAL == "" {
				if err == nil {
					conn.Close()
					t.Fatalf("handshake offering only %q accepted, want refused", tc.offer)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if got := conn.ConnectionState().NegotiatedProtocol; got != tc.wantAL {
				t.Errorf("negotiated %q, want %q", got, tc.wantAL)
			}
		})
	}
}

// TestHeaderCap: headers past MaxHeaderBytes (and Go's 4 KiB of slack) are refused with 431;
// ordinary headers are served.
func TestHeaderCap(t *testing.T) {
	addr, cfg := start(t, false)
	tests := []struct {
		name   string
		header int
		want   int
	}{
		{"ordinary headers", 512, http.StatusOK},
		{"headers over the cap", serving.MaxHeaderBytes + 8<<10, http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", addr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(conn, "GET /hook HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", strings.Repeat("a", tc.header))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("HTTP %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

// TestSlowHeadersAreCut: a client that never finishes its headers is disconnected after
// ReadHeaderTimeout.
func TestSlowHeadersAreCut(t *testing.T) {
	addr, cfg := start(t, false)
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	began := time.Now()
	fmt.Fprint(conn, "POST /hook HTTP/1.1\r\nHost: x\r\n") // and nothing more
	_ = conn.SetReadDeadline(time.Now().Add(serving.ReadHeaderTimeout + 10*time.Second))
	_, err = conn.Read(make([]byte, 1))
	if took := time.Since(began); err == nil || took > serving.ReadHeaderTimeout+5*time.Second {
		t.Errorf("connection with unfinished headers: read %v after %v, want closed within about %v", err, took, serving.ReadHeaderTimeout)
	}
}
