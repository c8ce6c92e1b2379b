package controlplane

import (
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
	"time"

	"github.com/irsa-webhook/irsa-webhook/certs"
)

// issueClient creates a client certificate (ExtKeyUsage ClientAuth) signed by ca. Kubernetes
// reads the user name from the common name and the groups from the organizations
// (O=system:masters is admin). Only this harness needs client certificates, so the product's
// certs package issues serving certificates only; this signs with the CA's exported PEM.
func issueClient(ca *certs.CA, commonName string, orgs []string, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if commonName == "" {
		return nil, nil, errors.New("issue client certificate: common name is empty")
	}
	certPEM, keyPEM, err = signClient(ca, commonName, orgs, now, validity)
	if err != nil {
		return nil, nil, fmt.Errorf("issue client certificate for %q: %w", commonName, err)
	}
	return certPEM, keyPEM, nil
}

func signClient(ca *certs.CA, commonName string, orgs []string, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if validity <= 0 {
		return nil, nil, fmt.Errorf("validity %v is not positive", validity)
	}
	if !now.Before(ca.NotAfter()) {
		return nil, nil, fmt.Errorf("CA expired at %s", ca.NotAfter().UTC().Format(time.RFC3339))
	}
	caBlock, _ := pem.Decode(ca.CertPEM())
	caKeyBlock, _ := pem.Decode(ca.KeyPEM())
	if caBlock == nil || caKeyBlock == nil {
		return nil, nil, errors.New("CA certificate or key is not PEM")
	}
	caCert, err := x509.ParseCertificate(caBlock.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(caKeyBlock.Bytes) // certs.NewCA writes PKCS#8
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA key: %w", err)
	}
	caKey, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("CA key %T cannot sign", parsed)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ECDSA P-256 key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial number: %w", err)
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.NotAfter()) {
		notAfter = ca.NotAfter() // never outlive the CA
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: append([]string(nil), orgs...)},
		NotBefore:             now.Add(-certs.ClockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign with CA %q: %w", caCert.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal ECDSA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}
