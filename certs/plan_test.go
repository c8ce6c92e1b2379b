package certs

import (
	"bytes"
	"crypto/tls"
	"slices"
	"testing"
	"time"
)

func TestPlan(t *testing.T) {
	r := renewal{
		caCommonName: testSecret + "-ca",
		dnsNames:     testDNSNames,
		validity:     testValidity, renewBefore: testRenewBefore,
		caValidity: testCAValidity, caRenewBefore: testCARenewBefore,
	}
	// fresh is what a first check writes at t0.
	fresh, reason, err := r.plan(material{}, t0)
	if err != nil || reason != reasonCAMissing {
		t.Fatalf("plan(empty) = reason %q, error %v; want %q", reason, err, reasonCAMissing)
	}
	otherCA := mustCA(t, testCAValidity)
	otherCert, otherKey, err := otherCA.Issue(testDNSNames, nil, t0, testValidity)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := LoadCA(fresh.caCert, fresh.caKey)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(names []string) (cert, key []byte) {
		cert, key, err := ca.Issue(names, nil, t0, testValidity)
		if err != nil {
			t.Fatal(err)
		}
		return cert, key
	}
	with := func(f func(*material)) material {
		mat := fresh
		f(&mat)
		return mat
	}
	leafRenewal := t0.Add(testValidity - testRenewBefore)
	caRenewal := t0.Add(testCAValidity - testCARenewBefore)

	tests := []struct {
		name       string
		cur        material
		now        time.Time
		wantReason string
		wantSameCA bool
		// wantPrevious is how many previous CAs the result keeps.
		wantPrevious int
		// wantNames are names the new certificate must hold besides ours.
		wantNames []string
	}{
		{name: "valid is kept", cur: fresh, now: t0, wantSameCA: true},
		{name: "valid just before the renewal", cur: fresh, now: leafRenewal.Add(-time.Second), wantSameCA: true},
		{name: "certificate due", cur: fresh, now: leafRenewal, wantReason: reasonCertRenewal, wantSameCA: true},
		{name: "certificate expired", cur: fresh, now: t0.Add(testValidity + time.Hour), wantReason: reasonCertRenewal, wantSameCA: true},
		{name: "certificate missing", cur: with(func(m *material) { m.cert, m.key = nil, nil }), now: t0, wantReason: reasonCertMissing, wantSameCA: true},
		{name: "key of another certificate", cur: with(func(m *material) { m.key = otherKey }), now: t0, wantReason: reasonCertInvalid, wantSameCA: true},
		{name: "certificate from another CA", cur: with(func(m *material) { m.cert, m.key = otherCert, otherKey }), now: t0, wantReason: reasonCertForeign, wantSameCA: true},
		{
			name: "certificate lacks one of our names",
			cur: with(func(m *material) {
				m.cert, m.key = issue([]string{testDNSNames[0], "old-name.irsa-system.svc"})
			}),
			now: t0, wantReason: reasonCertNames, wantSameCA: true, wantNames: []string{"old-name.irsa-system.svc"},
		},
		{
			name: "certificate with more names than ours is kept",
			cur: with(func(m *material) {
				m.cert, m.key = issue(append(slices.Clone(testDNSNames), "extra.example"))
			}),
			now: t0, wantSameCA: true,
		},
		{name: "CA missing with a certificate", cur: with(func(m *material) { m.caCert, m.caKey = nil, nil }), now: t0, wantReason: reasonCAMissing},
		{name: "CA key of another CA", cur: with(func(m *material) { m.caKey = otherCA.KeyPEM() }), now: t0, wantReason: reasonCAInvalid, wantPrevious: 1},
		{name: "CA garbage", cur: with(func(m *material) { m.caCert, m.caKey = []byte("x"), []byte("y") }), now: t0, wantReason: reasonCAInvalid},
		{name: "CA due keeps the old CA", cur: fresh, now: caRenewal, wantReason: reasonCARenewal, wantPrevious: 1},
		{name: "CA expired is not kept", cur: fresh, now: t0.Add(testCAValidity + time.Hour), wantReason: reasonCARenewal},
		{
			name: "CA due keeps earlier previous CAs still valid",
			cur:  with(func(m *material) { m.previousCAs = otherCA.CertPEM() }),
			now:  caRenewal, wantReason: reasonCARenewal, wantPrevious: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, reason, err := r.plan(tt.cur, tt.now)
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			if reason != tt.wantReason {
				t.Errorf("reason = %q, want %q", reason, tt.wantReason)
			}
			if tt.wantReason == "" {
				if !bytes.Equal(next.cert, tt.cur.cert) || !bytes.Equal(next.caCert, tt.cur.caCert) {
					t.Errorf("kept material differs from the current one")
				}
				return
			}
			if got := bytes.Equal(next.caCert, tt.cur.caCert); got != tt.wantSameCA {
				t.Errorf("same CA = %v, want %v", got, tt.wantSameCA)
			}
			if got := len(validCerts(next.previousCAs, tt.now)); got != tt.wantPrevious {
				t.Errorf("previous CAs = %d, want %d", got, tt.wantPrevious)
			}
			if bytes.Equal(next.cert, tt.cur.cert) {
				t.Fatalf("certificate not replaced")
			}
			newCA, err := LoadCA(next.caCert, next.caKey)
			if err != nil {
				t.Fatalf("new CA: %v", err)
			}
			if err := newCA.Verify(next.cert, tt.now); err != nil {
				t.Errorf("new certificate: %v", err)
			}
			if _, err := tls.X509KeyPair(next.cert, next.key); err != nil {
				t.Errorf("new pair: %v", err)
			}
			if !Matches(next.cert, append(slices.Clone(testDNSNames), tt.wantNames...)) {
				t.Errorf("new certificate names %q, want %q and %q", mustParse(t, next.cert).DNSNames, testDNSNames, tt.wantNames)
			}
			if cn := mustParse(t, next.cert).Subject.CommonName; cn != testDNSNames[0] {
				t.Errorf("common name %q, want %q", cn, testDNSNames[0])
			}
			if due, _ := RotationDue(next.cert, tt.now, testRenewBefore); due {
				t.Errorf("new certificate is due at once")
			}
			again, reason, err := r.plan(next, tt.now)
			if err != nil || reason != "" || !bytes.Equal(again.cert, next.cert) {
				t.Errorf("plan(new) = reason %q, error %v; want it kept", reason, err)
			}
		})
	}
}

func TestCABundle(t *testing.T) {
	caA := mustCA(t, 10*24*time.Hour)
	caB := mustCA(t, 20*24*time.Hour)
	caC := mustCA(t, 30*24*time.Hour)
	tests := []struct {
		name string
		mat  material
		now  time.Time
		want [][]byte
	}{
		{name: "current only", mat: material{caCert: caC.CertPEM()}, now: t0, want: [][]byte{caC.CertPEM()}},
		{
			name: "current then previous",
			mat:  material{caCert: caC.CertPEM(), previousCAs: slices.Concat(caB.CertPEM(), caA.CertPEM())},
			now:  t0, want: [][]byte{caC.CertPEM(), caB.CertPEM(), caA.CertPEM()},
		},
		{
			name: "expired previous dropped",
			mat:  material{caCert: caC.CertPEM(), previousCAs: slices.Concat(caB.CertPEM(), caA.CertPEM())},
			now:  t0.Add(15 * 24 * time.Hour), want: [][]byte{caC.CertPEM(), caB.CertPEM()},
		},
		{
			name: "garbage in previous dropped",
			mat:  material{caCert: caC.CertPEM(), previousCAs: slices.Concat([]byte("junk\n"), caB.CertPEM())},
			now:  t0, want: [][]byte{caC.CertPEM(), caB.CertPEM()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := caBundle(tt.mat, tt.now)
			if want := bytes.Join(tt.want, nil); !bytes.Equal(got, want) {
				t.Errorf("caBundle has %d certificates, want %d (or another order)", len(pemCerts(t, got)), len(tt.want))
			}
		})
	}
}
