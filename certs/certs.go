// Package certs creates the small PKI a webhook needs: a CA, serving certificates for given DNS
// names and IPs, and the decision whether a certificate must be rotated.
//
// Everything here is pure: the current time is passed in, nothing is read from or written to
// disk, and only the standard library's crypto is used. Keys are ECDSA P-256 and PEM-encoded as
// PKCS#8 ("PRIVATE KEY"); LoadCA also accepts SEC1 EC and PKCS#1 RSA keys so that a CA created
// elsewhere can be used.
package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// ClockSkew is how far before `now` every certificate's NotBefore is set, so that a peer whose
// clock is slightly behind ours still accepts a certificate issued a moment ago.
const ClockSkew = time.Hour

// PEM block types written and read by this package.
const (
	pemCertificate  = "CERTIFICATE"
	pemPKCS8Key     = "PRIVATE KEY"
	pemECKey        = "EC PRIVATE KEY"
	pemPKCS1RSAKey  = "RSA PRIVATE KEY"
	serialNumberLen = 128 // bits; RFC 5280 allows up to 20 octets
)

// CA is a certificate authority that issues serving certificates.
type CA struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	keyPEM  []byte
}

// NewCA creates a self-signed CA valid from now-ClockSkew until now+validity.
func NewCA(commonName string, now time.Time, validity time.Duration) (*CA, error) {
	if commonName == "" {
		return nil, errors.New("create CA: common name is empty")
	}
	if validity <= 0 {
		return nil, fmt.Errorf("create CA %q: validity %v is not positive", commonName, validity)
	}
	key, keyPEM, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("create CA %q: %w", commonName, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("create CA %q: %w", commonName, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // issues leaf certificates only
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA %q: sign certificate: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("create CA %q: parse created certificate: %w", commonName, err)
	}
	return &CA{cert: cert, key: key, certPEM: encodeCert(der), keyPEM: keyPEM}, nil
}

// LoadCA reads a CA from PEM. The certificate must be a CA certificate and the key must be the
// certificate's private key.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("load CA: certificate %q is not a CA certificate", cert.Subject.CommonName)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA %q: %w", cert.Subject.CommonName, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("load CA %q: private key does not match the certificate's public key", cert.Subject.CommonName)
	}
	return &CA{
		cert:    cert,
		key:     key,
		certPEM: bytes.Clone(certPEM),
		keyPEM:  bytes.Clone(keyPEM),
	}, nil
}

// CertPEM returns the CA certificate, PEM-encoded: the caBundle of a webhook configuration.
func (ca *CA) CertPEM() []byte { return bytes.Clone(ca.certPEM) }

// KeyPEM returns the CA private key, PEM-encoded.
func (ca *CA) KeyPEM() []byte { return bytes.Clone(ca.keyPEM) }

// NotAfter returns the end of the CA's validity.
func (ca *CA) NotAfter() time.Time { return ca.cert.NotAfter }

// Issue creates a serving certificate (ExtKeyUsage ServerAuth) whose SANs are dnsNames and ips.
// The subject common name is the first DNS name (or IP). The certificate never outlives the CA:
// NotAfter is the earlier of now+validity and the CA's NotAfter.
func (ca *CA) Issue(dnsNames []string, ips []net.IP, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if len(dnsNames) == 0 && len(ips) == 0 {
		return nil, nil, errors.New("issue serving certificate: no DNS names and no IPs given")
	}
	for _, n := range dnsNames {
		if n == "" {
			return nil, nil, fmt.Errorf("issue serving certificate for %q: empty DNS name", dnsNames)
		}
	}
	var cn string
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	} else {
		cn = ips[0].String()
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    append([]string(nil), dnsNames...),
		IPAddresses: append([]net.IP(nil), ips...),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	certPEM, keyPEM, err = ca.issue(tmpl, now, validity)
	if err != nil {
		return nil, nil, fmt.Errorf("issue serving certificate for %q %v: %w", dnsNames, ips, err)
	}
	return certPEM, keyPEM, nil
}

// Verify checks that certPEM was issued by this CA and is valid at now.
func (ca *CA) Verify(certPEM []byte, now time.Time) error {
	cert, err := parseCert(certPEM)
	if err != nil {
		return fmt.Errorf("verify certificate against CA %q: %w", ca.cert.Subject.CommonName, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	_, err = cert.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return fmt.Errorf("verify certificate %q against CA %q: %w", cert.Subject.CommonName, ca.cert.Subject.CommonName, err)
	}
	return nil
}

func (ca *CA) issue(tmpl *x509.Certificate, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if validity <= 0 {
		return nil, nil, fmt.Errorf("validity %v is not positive", validity)
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	notBefore := now.Add(-ClockSkew)
	if !notAfter.After(notBefore) || !now.Before(ca.cert.NotAfter) {
		return nil, nil, fmt.Errorf("CA %q expired at %s", ca.cert.Subject.CommonName, ca.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	key, keyPEM, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	if tmpl.SerialNumber, err = newSerial(); err != nil {
		return nil, nil, err
	}
	tmpl.NotBefore = notBefore
	tmpl.NotAfter = notAfter
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate with CA %q: %w", ca.cert.Subject.CommonName, err)
	}
	return encodeCert(der), keyPEM, nil
}

// RotationDue reports whether certPEM must be replaced at now: it is due when the certificate
// is expired, expires within renewBefore (now >= NotAfter-renewBefore), or is not yet valid.
// A certificate that cannot be parsed is due too, and the error says why.
func RotationDue(certPEM []byte, now time.Time, renewBefore time.Duration) (bool, error) {
	if renewBefore < 0 {
		return true, fmt.Errorf("decide certificate rotation: renewBefore %v is negative", renewBefore)
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return true, fmt.Errorf("decide certificate rotation: %w", err)
	}
	if now.Before(cert.NotBefore) {
		return true, nil
	}
	return !now.Before(cert.NotAfter.Add(-renewBefore)), nil
}

// Matches reports whether certPEM parses and its SANs cover every name in dnsNames (wildcard
// SANs and IP SANs count, as in TLS hostname verification).
func Matches(certPEM []byte, dnsNames []string) bool {
	cert, err := parseCert(certPEM)
	if err != nil {
		return false
	}
	for _, n := range dnsNames {
		if cert.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}

func newKey() (crypto.Signer, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ECDSA P-256 key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal ECDSA key: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: pemPKCS8Key, Bytes: der}), nil
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), serialNumberLen))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return serial, nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der})
}

// parseCert parses the first CERTIFICATE block of certPEM.
func parseCert(certPEM []byte) (*x509.Certificate, error) {
	rest := certPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("parse certificate: no PEM CERTIFICATE block found")
		}
		if block.Type != pemCertificate {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		return cert, nil
	}
}

// parseKey parses the first private-key block of keyPEM (PKCS#8, SEC1 EC or PKCS#1 RSA).
func parseKey(keyPEM []byte) (crypto.Signer, error) {
	rest := keyPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("parse private key: no PEM private key block found")
		}
		switch block.Type {
		case pemPKCS8Key:
			key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse PKCS#8 private key: %w", err)
			}
			signer, ok := key.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("parse PKCS#8 private key: %T cannot sign", key)
			}
			return signer, nil
		case pemECKey:
			key, err := x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse EC private key: %w", err)
			}
			return key, nil
		case pemPKCS1RSAKey:
			key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse RSA private key: %w", err)
			}
			return key, nil
		}
	}
}
