package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"slices"
	"strconv"
	"time"
)

// material is what the Secret holds, PEM-encoded.
type material struct {
	caCert, caKey, cert, key, previousCAs []byte
}

// Reasons for writing the Secret, logged as "reason".
const (
	reasonCAMissing       = "caMissing"
	reasonCAInvalid       = "caInvalid"
	reasonCARenewal       = "caRenewal"
	reasonCertMissing     = "certificateMissing"
	reasonCertInvalid     = "certificateInvalid"
	reasonCertRenewal     = "certificateRenewal"
	reasonCertForeign     = "certificateNotFromCA"
	reasonCertNames       = "certificateNamesChanged"
	reasonNothingToChange = ""
)

// renewal is everything besides the Secret's content and the time that decides what the Secret
// must hold: the names to serve and the lifetimes. Its plan is pure apart from the randomness of
// new keys.
type renewal struct {
	caCommonName                                     string
	dnsNames                                         []string
	ips                                              []net.IP
	validity, renewBefore, caValidity, caRenewBefore time.Duration
}

// newRenewal takes the renewal inputs from validated options with their defaults applied.
func newRenewal(o Options) renewal {
	return renewal{
		caCommonName:  o.CACommonName,
		dnsNames:      slices.Clone(o.DNSNames),
		ips:           slices.Clone(o.IPAddresses),
		validity:      o.Validity,
		renewBefore:   o.RenewBefore,
		caValidity:    o.CAValidity,
		caRenewBefore: o.CARenewBefore,
	}
}

// plan decides what the Secret must hold at now. An empty reason means cur is kept as it is.
// A CA is replaced when absent, unusable or due; the replaced CA, while still valid, moves to
// the previous CAs. A serving certificate is replaced when absent, unusable, due, not issued by
// the CA, or missing one of our names; in the last case the new one also keeps the old one's
// names, so that replicas of two versions with different names (a rolling update) do not
// replace each other's certificate at every check.
func (r renewal) plan(cur material, now time.Time) (material, string, error) {
	previous := validCerts(cur.previousCAs, now)
	ca, caErr := LoadCA(cur.caCert, cur.caKey)
	var reason string
	switch {
	case len(cur.caCert) == 0 && len(cur.caKey) == 0:
		reason = reasonCAMissing
	case caErr != nil:
		reason = reasonCAInvalid
	default:
		if due, _ := RotationDue(cur.caCert, now, r.caRenewBefore); due {
			reason = reasonCARenewal
		}
	}
	if reason != "" {
		// Certificates the replaced CA signed may still be served until every replica has
		// read the new one: keep trusting it while it is valid.
		previous = slices.Concat(validCerts(cur.caCert, now), previous)
		var err error
		ca, err = NewCA(r.caCommonName+"@"+strconv.FormatInt(now.Unix(), 10), now, r.caValidity)
		if err != nil {
			return material{}, "", err
		}
		cert, key, err := ca.Issue(r.dnsNames, r.ips, now, r.validity)
		if err != nil {
			return material{}, "", err
		}
		return material{caCert: ca.CertPEM(), caKey: ca.KeyPEM(), cert: cert, key: key, previousCAs: bytes.Join(previous, nil)}, reason, nil
	}

	dnsNames, ips := r.dnsNames, r.ips
	pair, pairErr := tls.X509KeyPair(cur.cert, cur.key)
	switch {
	case len(cur.cert) == 0 || len(cur.key) == 0:
		reason = reasonCertMissing
	case pairErr != nil:
		reason = reasonCertInvalid
	default:
		if due, _ := RotationDue(cur.cert, now, r.renewBefore); due {
			reason = reasonCertRenewal
		} else if ca.Verify(cur.cert, now) != nil {
			reason = reasonCertForeign
		} else if !Matches(cur.cert, r.hostnames()) {
			reason = reasonCertNames
			dnsNames = union(dnsNames, pair.Leaf.DNSNames, func(a, b string) bool { return a == b })
			ips = union(ips, pair.Leaf.IPAddresses, net.IP.Equal)
		}
	}
	if reason == reasonNothingToChange {
		return cur, "", nil
	}
	cert, key, err := ca.Issue(dnsNames, ips, now, r.validity)
	if err != nil {
		return material{}, "", err
	}
	return material{caCert: cur.caCert, caKey: cur.caKey, cert: cert, key: key, previousCAs: bytes.Join(previous, nil)}, reason, nil
}

// hostnames are the names a client may verify the serving certificate for.
func (r renewal) hostnames() []string {
	names := slices.Clone(r.dnsNames)
	for _, ip := range r.ips {
		names = append(names, ip.String())
	}
	return names
}

func union[T any](ours, theirs []T, eq func(a, b T) bool) []T {
	out := slices.Clone(ours)
	for _, t := range theirs {
		if !slices.ContainsFunc(out, func(o T) bool { return eq(o, t) }) {
			out = append(out, t)
		}
	}
	return out
}

// caBundle is the current CA followed by the previous CAs still valid at now.
func caBundle(mat material, now time.Time) []byte {
	return bytes.Join(slices.Concat([][]byte{mat.caCert}, validCerts(mat.previousCAs, now)), nil)
}

// validCerts returns, PEM-encoded one by one, the certificates in data valid at now. Other PEM
// blocks and unparsable certificates are dropped.
func validCerts(data []byte, now time.Time) [][]byte {
	var out [][]byte
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return out
		}
		if block.Type != pemCertificate {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil || now.Before(c.NotBefore) || !now.Before(c.NotAfter) {
			continue
		}
		out = append(out, pem.EncodeToMemory(block))
	}
}

// notAfter returns the expiry of the first certificate in certPEM, for logs.
func notAfter(certPEM []byte) string {
	c, err := parseCert(certPEM)
	if err != nil {
		return ""
	}
	return c.NotAfter.UTC().Format(time.RFC3339)
}
