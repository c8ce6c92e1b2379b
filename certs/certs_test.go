package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// t0 is the fixed "now" of every test.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustCA(t *testing.T, validity time.Duration) *CA {
	t.Helper()
	ca, err := NewCA("test-ca", t0, validity)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

func mustParse(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	cert, err := parseCert(certPEM)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	return cert
}

func TestNewCA(t *testing.T) {
	tests := []struct {
		name     string
		cn       string
		validity time.Duration
		wantErr  string
	}{
		{name: "one year", cn: "irsa-webhook-ca", validity: 365 * 24 * time.Hour},
		{name: "one minute", cn: "short", validity: time.Minute},
		{name: "empty common name", cn: "", validity: time.Hour, wantErr: "common name is empty"},
		{name: "zero validity", cn: "ca", validity: 0, wantErr: "not positive"},
		{name: "negative validity", cn: "ca", validity: -time.Hour, wantErr: "not positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca, err := NewCA(tt.cn, t0, tt.validity)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewCA error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewCA: %v", err)
			}
			cert := mustParse(t, ca.CertPEM())
			if !cert.IsCA || !cert.BasicConstraintsValid {
				t.Errorf("IsCA = %v, BasicConstraintsValid = %v, want both true", cert.IsCA, cert.BasicConstraintsValid)
			}
			if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
				t.Errorf("KeyUsage %b lacks CertSign", cert.KeyUsage)
			}
			if cert.Subject.CommonName != tt.cn {
				t.Errorf("CommonName = %q, want %q", cert.Subject.CommonName, tt.cn)
			}
			if want := t0.Add(-time.Hour); !cert.NotBefore.Equal(want) {
				t.Errorf("NotBefore = %v, want %v", cert.NotBefore, want)
			}
			if want := t0.Add(tt.validity); !cert.NotAfter.Equal(want) || !ca.NotAfter().Equal(want) {
				t.Errorf("NotAfter = %v (method %v), want %v", cert.NotAfter, ca.NotAfter(), want)
			}
			pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
			if !ok || pub.Curve != elliptic.P256() {
				t.Errorf("public key is %T, want ECDSA P-256", cert.PublicKey)
			}
			if err := cert.CheckSignatureFrom(cert); err != nil {
				t.Errorf("CA is not self-signed: %v", err)
			}
			if _, err := parseKey(ca.KeyPEM()); err != nil {
				t.Errorf("KeyPEM does not parse: %v", err)
			}
		})
	}
}

func TestLoadCA(t *testing.T) {
	ca := mustCA(t, 24*time.Hour)
	other := mustCA(t, 24*time.Hour)
	leafPEM, leafKeyPEM, err := ca.Issue([]string{"leaf.test"}, nil, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := parseKey(ca.KeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(ecKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	sec1PEM := pem.EncodeToMemory(&pem.Block{Type: pemECKey, Bytes: sec1})
	rsaCertPEM, rsaKeyPEM := rsaCA(t)

	tests := []struct {
		name    string
		certPEM []byte
		keyPEM  []byte
		wantErr string
	}{
		{name: "round trip PKCS#8", certPEM: ca.CertPEM(), keyPEM: ca.KeyPEM()},
		{name: "SEC1 EC key", certPEM: ca.CertPEM(), keyPEM: sec1PEM},
		{name: "RSA CA made elsewhere", certPEM: rsaCertPEM, keyPEM: rsaKeyPEM},
		{name: "key of another CA", certPEM: ca.CertPEM(), keyPEM: other.KeyPEM(), wantErr: "does not match"},
		{name: "leaf certificate", certPEM: leafPEM, keyPEM: leafKeyPEM, wantErr: "not a CA"},
		{name: "garbage certificate", certPEM: []byte("nope"), keyPEM: ca.KeyPEM(), wantErr: "no PEM CERTIFICATE"},
		{name: "no key", certPEM: ca.CertPEM(), keyPEM: nil, wantErr: "no PEM private key"},
		{name: "corrupt key", certPEM: ca.CertPEM(), keyPEM: pem.EncodeToMemory(&pem.Block{Type: pemPKCS8Key, Bytes: []byte{1, 2}}), wantErr: "PKCS#8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loaded, err := LoadCA(tt.certPEM, tt.keyPEM)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadCA error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadCA: %v", err)
			}
			// A loaded CA must be able to issue certificates that verify against it.
			certPEM, _, err := loaded.Issue([]string{"after.load"}, nil, t0, time.Hour)
			if err != nil {
				t.Fatalf("Issue after LoadCA: %v", err)
			}
			if err := loaded.Verify(certPEM, t0); err != nil {
				t.Errorf("Verify after LoadCA: %v", err)
			}
			if string(loaded.CertPEM()) != string(tt.certPEM) || string(loaded.KeyPEM()) != string(tt.keyPEM) {
				t.Errorf("CertPEM/KeyPEM do not return what was loaded")
			}
		})
	}
}

// rsaCA builds an RSA CA the way another tool would, to prove LoadCA is not limited to ours.
func rsaCA(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(7),
		Subject:               pkix.Name{CommonName: "rsa-ca"},
		NotBefore:             t0.Add(-time.Hour),
		NotAfter:              t0.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: pemPKCS1RSAKey, Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

func TestIssue(t *testing.T) {
	ca := mustCA(t, 48*time.Hour)
	loopback := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	tests := []struct {
		name         string
		ca           *CA
		dnsNames     []string
		ips          []net.IP
		now          time.Time
		validity     time.Duration
		wantCN       string
		wantNotAfter time.Time
		wantErr      string
	}{
		{
			name:         "service DNS names",
			ca:           ca,
			dnsNames:     []string{"irsa-webhook.irsa-system.svc", "irsa-webhook.irsa-system.svc.cluster.local"},
			now:          t0,
			validity:     24 * time.Hour,
			wantCN:       "irsa-webhook.irsa-system.svc",
			wantNotAfter: t0.Add(24 * time.Hour),
		},
		{
			name:         "loopback IPs only",
			ca:           ca,
			ips:          loopback,
			now:          t0,
			validity:     time.Hour,
			wantCN:       "127.0.0.1",
			wantNotAfter: t0.Add(time.Hour),
		},
		{
			name:         "names and IPs",
			ca:           ca,
			dnsNames:     []string{"localhost"},
			ips:          loopback,
			now:          t0.Add(time.Hour),
			validity:     time.Hour,
			wantCN:       "localhost",
			wantNotAfter: t0.Add(2 * time.Hour),
		},
		{
			name:         "capped at the CA's NotAfter",
			ca:           ca,
			dnsNames:     []string{"long.test"},
			now:          t0,
			validity:     365 * 24 * time.Hour,
			wantCN:       "long.test",
			wantNotAfter: t0.Add(48 * time.Hour),
		},
		{name: "no names", ca: ca, now: t0, validity: time.Hour, wantErr: "no DNS names and no IPs"},
		{name: "empty name", ca: ca, dnsNames: []string{"a.test", ""}, now: t0, validity: time.Hour, wantErr: "empty DNS name"},
		{name: "zero validity", ca: ca, dnsNames: []string{"a.test"}, now: t0, validity: 0, wantErr: "not positive"},
		{name: "CA expired", ca: ca, dnsNames: []string{"a.test"}, now: t0.Add(49 * time.Hour), validity: time.Hour, wantErr: "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, keyPEM, err := tt.ca.Issue(tt.dnsNames, tt.ips, tt.now, tt.validity)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Issue error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			cert := mustParse(t, certPEM)
			if cert.IsCA {
				t.Errorf("serving certificate is a CA")
			}
			if cert.Subject.CommonName != tt.wantCN {
				t.Errorf("CommonName = %q, want %q", cert.Subject.CommonName, tt.wantCN)
			}
			if !slices.Equal(cert.DNSNames, tt.dnsNames) {
				t.Errorf("DNSNames = %q, want %q", cert.DNSNames, tt.dnsNames)
			}
			if !slices.EqualFunc(cert.IPAddresses, tt.ips, net.IP.Equal) {
				t.Errorf("IPAddresses = %v, want %v", cert.IPAddresses, tt.ips)
			}
			if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
				t.Errorf("ExtKeyUsage = %v, want [ServerAuth]", cert.ExtKeyUsage)
			}
			if want := tt.now.Add(-ClockSkew); !cert.NotBefore.Equal(want) {
				t.Errorf("NotBefore = %v, want %v", cert.NotBefore, want)
			}
			if !cert.NotAfter.Equal(tt.wantNotAfter) {
				t.Errorf("NotAfter = %v, want %v", cert.NotAfter, tt.wantNotAfter)
			}
			if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
				t.Errorf("certificate and key do not form a TLS key pair: %v", err)
			}

			// The chain verifies against the CA for every SAN, as a TLS client would check it.
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(tt.ca.CertPEM()) {
				t.Fatal("CA PEM not accepted by CertPool")
			}
			for _, host := range sans(cert) {
				_, err := cert.Verify(x509.VerifyOptions{
					Roots:       roots,
					DNSName:     host,
					CurrentTime: tt.now,
					KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
				})
				if err != nil {
					t.Errorf("x509 Verify for %q: %v", host, err)
				}
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: cert.NotAfter.Add(time.Second)}); err == nil {
				t.Errorf("x509 Verify after NotAfter succeeded, want an expiry error")
			}
			if _, err := cert.Verify(x509.VerifyOptions{
				Roots: roots, CurrentTime: tt.now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			}); err == nil {
				t.Errorf("serving certificate verified for ClientAuth, want an ExtKeyUsage error")
			}
		})
	}
}

func sans(cert *x509.Certificate) []string {
	out := slices.Clone(cert.DNSNames)
	for _, ip := range cert.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

func TestVerify(t *testing.T) {
	ca := mustCA(t, 24*time.Hour)
	other := mustCA(t, 24*time.Hour)
	certPEM, _, err := ca.Issue([]string{"a.test"}, nil, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		ca      *CA
		certPEM []byte
		now     time.Time
		wantErr bool
	}{
		{name: "issued by this CA", ca: ca, certPEM: certPEM, now: t0},
		{name: "issued by another CA", ca: other, certPEM: certPEM, now: t0, wantErr: true},
		{name: "expired", ca: ca, certPEM: certPEM, now: t0.Add(2 * time.Hour), wantErr: true},
		{name: "within clock skew before issue", ca: ca, certPEM: certPEM, now: t0.Add(-30 * time.Minute)},
		{name: "garbage", ca: ca, certPEM: []byte("garbage"), now: t0, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.ca.Verify(tt.certPEM, tt.now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Verify error = %v, want error: %v", err, tt.wantErr)
			}
		})
	}
}

func TestRotationDue(t *testing.T) {
	ca := mustCA(t, 365*24*time.Hour)
	// Issued at t0 for 24h: NotBefore t0-1h, NotAfter t0+24h.
	certPEM, _, err := ca.Issue([]string{"webhook.test"}, nil, t0, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	notAfter := t0.Add(24 * time.Hour)
	const renew = time.Hour
	tests := []struct {
		name        string
		certPEM     []byte
		now         time.Time
		renewBefore time.Duration
		want        bool
		wantErr     bool
	}{
		{name: "just issued", certPEM: certPEM, now: t0, renewBefore: renew, want: false},
		{name: "one nanosecond before the renewal window", certPEM: certPEM, now: notAfter.Add(-renew - time.Nanosecond), renewBefore: renew, want: false},
		{name: "renewal window starts", certPEM: certPEM, now: notAfter.Add(-renew), renewBefore: renew, want: true},
		{name: "inside the renewal window", certPEM: certPEM, now: notAfter.Add(-time.Minute), renewBefore: renew, want: true},
		{name: "at NotAfter", certPEM: certPEM, now: notAfter, renewBefore: renew, want: true},
		{name: "expired", certPEM: certPEM, now: notAfter.Add(time.Hour), renewBefore: renew, want: true},
		{name: "zero renewBefore one nanosecond before expiry", certPEM: certPEM, now: notAfter.Add(-time.Nanosecond), renewBefore: 0, want: false},
		{name: "zero renewBefore at expiry", certPEM: certPEM, now: notAfter, renewBefore: 0, want: true},
		{name: "renewBefore longer than validity", certPEM: certPEM, now: t0, renewBefore: 48 * time.Hour, want: true},
		{name: "at NotBefore", certPEM: certPEM, now: t0.Add(-ClockSkew), renewBefore: renew, want: false},
		{name: "not yet valid", certPEM: certPEM, now: t0.Add(-ClockSkew - time.Nanosecond), renewBefore: renew, want: true},
		{name: "negative renewBefore", certPEM: certPEM, now: t0, renewBefore: -time.Second, want: true, wantErr: true},
		{name: "empty", certPEM: nil, now: t0, renewBefore: renew, want: true, wantErr: true},
		{name: "not PEM", certPEM: []byte("not a certificate"), now: t0, renewBefore: renew, want: true, wantErr: true},
		{name: "PEM with corrupt DER", certPEM: pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: []byte{0x30, 0x01}}), now: t0, renewBefore: renew, want: true, wantErr: true},
		{name: "key only", certPEM: ca.KeyPEM(), now: t0, renewBefore: renew, want: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RotationDue(tt.certPEM, tt.now, tt.renewBefore)
			if (err != nil) != tt.wantErr {
				t.Fatalf("RotationDue error = %v, want error: %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("RotationDue = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMatches(t *testing.T) {
	ca := mustCA(t, 24*time.Hour)
	svc := []string{"irsa-webhook.irsa-system.svc", "irsa-webhook.irsa-system.svc.cluster.local"}
	certPEM, keyPEM, err := ca.Issue(svc, []net.IP{net.ParseIP("127.0.0.1")}, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wildPEM, _, err := ca.Issue([]string{"*.irsa-system.svc"}, nil, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		certPEM  []byte
		dnsNames []string
		want     bool
	}{
		{name: "exactly the SANs", certPEM: certPEM, dnsNames: svc, want: true},
		{name: "a subset", certPEM: certPEM, dnsNames: svc[:1], want: true},
		{name: "IP SAN", certPEM: certPEM, dnsNames: []string{"127.0.0.1"}, want: true},
		{name: "no names asked", certPEM: certPEM, dnsNames: nil, want: true},
		{name: "a name not covered", certPEM: certPEM, dnsNames: append(slices.Clone(svc), "irsa-webhook.other.svc"), want: false},
		{name: "renamed service", certPEM: certPEM, dnsNames: []string{"new-name.irsa-system.svc"}, want: false},
		{name: "wildcard covers one label", certPEM: wildPEM, dnsNames: []string{"irsa-webhook.irsa-system.svc"}, want: true},
		{name: "wildcard does not cover two labels", certPEM: wildPEM, dnsNames: []string{"a.b.irsa-system.svc"}, want: false},
		{name: "garbage", certPEM: []byte("garbage"), dnsNames: svc, want: false},
		{name: "key instead of certificate", certPEM: keyPEM, dnsNames: nil, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Matches(tt.certPEM, tt.dnsNames); got != tt.want {
				t.Errorf("Matches(%q) = %v, want %v", tt.dnsNames, got, tt.want)
			}
		})
	}
}
