package controlplane

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/irsa-webhook/irsa-webhook/certs"
)

func TestIssueClient(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ca, err := certs.NewCA("test-ca", t0, 24*time.Hour)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	tests := []struct {
		name     string
		cn       string
		orgs     []string
		now      time.Time
		validity time.Duration
		wantErr  string
	}{
		{name: "cluster admin", cn: "admin", orgs: []string{"system:masters"}, now: t0, validity: time.Hour},
		{name: "no groups", cn: "alice", now: t0, validity: time.Hour},
		{name: "two groups", cn: "bob", orgs: []string{"dev", "ops"}, now: t0, validity: time.Hour},
		{name: "capped at the CA's expiry", cn: "carol", now: t0, validity: 48 * time.Hour},
		{name: "empty common name", cn: "", orgs: []string{"system:masters"}, now: t0, validity: time.Hour, wantErr: "common name is empty"},
		{name: "expired CA", cn: "dave", now: t0.Add(25 * time.Hour), validity: time.Hour, wantErr: "CA expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, keyPEM, err := issueClient(ca, tt.cn, tt.orgs, tt.now, tt.validity)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("issueClient error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("issueClient: %v", err)
			}
			block, _ := pem.Decode(certPEM)
			if block == nil {
				t.Fatalf("certificate is not PEM: %q", certPEM)
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatalf("parse certificate: %v", err)
			}
			if cert.Subject.CommonName != tt.cn || !slices.Equal(cert.Subject.Organization, tt.orgs) {
				t.Errorf("subject = %q %q, want %q %q", cert.Subject.CommonName, cert.Subject.Organization, tt.cn, tt.orgs)
			}
			if len(cert.DNSNames)+len(cert.IPAddresses) != 0 {
				t.Errorf("client certificate has SANs %v %v", cert.DNSNames, cert.IPAddresses)
			}
			if cert.NotAfter.After(ca.NotAfter()) {
				t.Errorf("NotAfter %v is after the CA's %v", cert.NotAfter, ca.NotAfter())
			}
			if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
				t.Errorf("certificate and key do not form a TLS key pair: %v", err)
			}
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(ca.CertPEM())
			if _, err := cert.Verify(x509.VerifyOptions{
				Roots: roots, CurrentTime: tt.now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			}); err != nil {
				t.Errorf("x509 Verify for ClientAuth: %v", err)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: tt.now}); err == nil {
				t.Errorf("client certificate verified for ServerAuth, want an ExtKeyUsage error")
			}
		})
	}
}
