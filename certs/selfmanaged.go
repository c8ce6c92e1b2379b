package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Keys of the Secret that holds the self-managed certificate. tls.crt and tls.key are the
// serving pair (as in a kubernetes.io/tls Secret), ca.crt and ca.key the CA that signed it, and
// ca-previous.crt the CAs replaced by a CA rotation that are still valid: they stay in the
// caBundle so that replicas still serving a certificate from the old CA keep being trusted.
const (
	SecretKeyCACert      = "ca.crt"
	SecretKeyCAKey       = "ca.key"
	SecretKeyCert        = corev1.TLSCertKey
	SecretKeyKey         = corev1.TLSPrivateKeyKey
	SecretKeyPreviousCAs = "ca-previous.crt"
)

// Defaults of the self-managed mode, shared with the flags and the Helm chart.
const (
	// DefaultValidity is the lifetime of a serving certificate (--cert-validity).
	DefaultValidity = 365 * 24 * time.Hour
	// DefaultRenewBefore is how long before its expiry a serving certificate is replaced
	// (--cert-renew-before).
	DefaultRenewBefore = 30 * 24 * time.Hour
	// DefaultCAValidity is the lifetime of the CA.
	DefaultCAValidity = 10 * 365 * 24 * time.Hour
	// DefaultCheckInterval is how often the Secret and the webhook configurations are checked.
	// Each check costs three GETs; it also bounds how long a caBundle reset by someone else
	// (a manifest re-applied with an empty caBundle) stays wrong.
	DefaultCheckInterval = 10 * time.Minute
	// DefaultTimeout bounds one check (every API call of it).
	DefaultTimeout = 30 * time.Second
)

const (
	firstRetryInterval = time.Second // after a failed check; doubled up to maxRetryInterval
	maxRetryInterval   = time.Minute
	maxAttempts        = 5 // per check, for a Secret or a webhook configuration changed concurrently
)

// Options configures a Manager. Durations left zero take their defaults.
type Options struct {
	// Client reads and writes the Secret and the webhook configurations. It needs get and
	// update on the Secret (create only if the Secret may be absent), and get and patch on the
	// two webhook configurations; no list or watch.
	Client kubernetes.Interface
	// Namespace and SecretName name the Secret holding CA and serving certificate. Every
	// replica uses the same Secret: it is how they agree on one CA.
	Namespace  string
	SecretName string
	// DNSNames are the serving certificate's DNS names: those of the webhook's Service
	// (see ServiceDNSNames). IPAddresses are optional IP SANs (local development, tests).
	DNSNames    []string
	IPAddresses []net.IP
	// MutatingWebhookConfiguration and ValidatingWebhookConfiguration are the names of the
	// configurations whose every webhook gets the caBundle. Either may be empty.
	MutatingWebhookConfiguration   string
	ValidatingWebhookConfiguration string
	// CertFile and KeyFile, when set, receive the serving pair (written atomically, only when
	// changed), for a file-based reader such as controller-runtime's certwatcher. Both or
	// neither; GetCertificate serves the same pair from memory.
	CertFile string
	KeyFile  string
	// CACommonName prefixes the CA's common name, followed by "@" and the creation time in
	// Unix seconds. Default: SecretName + "-ca".
	CACommonName string
	// Validity and RenewBefore: lifetime of a serving certificate and how long before its
	// expiry it is replaced. Defaults DefaultValidity, DefaultRenewBefore.
	Validity    time.Duration
	RenewBefore time.Duration
	// CAValidity and CARenewBefore: the same for the CA. Defaults DefaultCAValidity and
	// Validity, so that every serving certificate gets its full validity. CARenewBefore must
	// not be shorter than RenewBefore, or a certificate capped at the CA's expiry would be
	// due again as soon as it is issued.
	CAValidity    time.Duration
	CARenewBefore time.Duration
	// CheckInterval is the time between two checks after a successful one (default
	// DefaultCheckInterval). A failed check is retried after 1s, doubling up to a minute,
	// but never later than CheckInterval.
	CheckInterval time.Duration
	// Timeout bounds one check; default DefaultTimeout.
	Timeout time.Duration
	// Now is the clock of every certificate decision; default time.Now.
	Now func() time.Time
	// Log receives what the Manager does; it never logs key material.
	Log logr.Logger
}

// ServiceDNSNames returns the names the API server may use to call a webhook behind the
// Service: name, name.namespace and name.namespace.svc.
func ServiceDNSNames(service, namespace string) []string {
	return []string{service, service + "." + namespace, service + "." + namespace + ".svc"}
}

// Manager keeps a webhook's serving certificate in a Secret, creates and rotates it and its
// CA, writes the CA into the webhook configurations' caBundle and serves the certificate. It is
// a controller-runtime manager.Runnable that runs on every replica (no leader election): the
// replicas agree on one CA through the Secret's optimistic concurrency.
type Manager struct {
	opts      Options
	injectors []injector // one per webhook configuration named
	files     *pairFiles // nil unless CertFile and KeyFile are set

	mu       sync.RWMutex
	cert     *tls.Certificate // served pair, nil before the first successful check
	certPEM  []byte
	servedCA []byte // the CA certificate of the served pair
	notAfter time.Time
	ready    bool  // the first check completed: Secret, caBundles and serving pair in place
	lastErr  error // of the last check, nil after a successful one
}

// NewManager validates opts, reporting every problem at once, and applies the defaults.
func NewManager(opts Options) (*Manager, error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("configure self-managed certificates: %w", err)
	}
	o.DNSNames = slices.Clone(o.DNSNames)
	o.IPAddresses = slices.Clone(o.IPAddresses)
	m := &Manager{
		opts:      o,
		injectors: caBundleInjectors(o.Client.AdmissionregistrationV1(), o.MutatingWebhookConfiguration, o.ValidatingWebhookConfiguration, o.Log),
	}
	if o.CertFile != "" {
		m.files = &pairFiles{certFile: o.CertFile, keyFile: o.KeyFile, log: o.Log}
	}
	return m, nil
}

func (o Options) withDefaults() Options {
	if o.Validity == 0 {
		o.Validity = DefaultValidity
	}
	if o.RenewBefore == 0 {
		o.RenewBefore = DefaultRenewBefore
	}
	if o.CAValidity == 0 {
		o.CAValidity = DefaultCAValidity
	}
	if o.CARenewBefore == 0 {
		o.CARenewBefore = o.Validity
	}
	if o.CheckInterval == 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.CACommonName == "" {
		o.CACommonName = o.SecretName + "-ca"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

func (o Options) validate() error {
	var errs []error
	if o.Client == nil {
		errs = append(errs, errors.New("no Kubernetes client"))
	}
	if o.Namespace == "" || o.SecretName == "" {
		errs = append(errs, fmt.Errorf("namespace %q and name %q of the Secret must both be set", o.Namespace, o.SecretName))
	}
	if len(o.DNSNames) == 0 && len(o.IPAddresses) == 0 {
		errs = append(errs, errors.New("no DNS names and no IP addresses for the serving certificate"))
	}
	if slices.Contains(o.DNSNames, "") {
		errs = append(errs, fmt.Errorf("DNS names %q contain an empty name", o.DNSNames))
	}
	if (o.CertFile == "") != (o.KeyFile == "") || (o.CertFile != "" && filepath.Clean(o.CertFile) == filepath.Clean(o.KeyFile)) {
		errs = append(errs, fmt.Errorf("certificate file %q and key file %q must both be set, and differ, or both be empty", o.CertFile, o.KeyFile))
	}
	if o.Validity < 0 || o.RenewBefore < 0 || o.RenewBefore >= o.Validity {
		errs = append(errs, fmt.Errorf("renew-before %v must be positive and shorter than the validity %v", o.RenewBefore, o.Validity))
	}
	if o.CAValidity < 0 || o.CARenewBefore < 0 || o.CARenewBefore >= o.CAValidity {
		errs = append(errs, fmt.Errorf("CA renew-before %v must be positive and shorter than the CA validity %v", o.CARenewBefore, o.CAValidity))
	}
	if o.CARenewBefore < o.RenewBefore {
		errs = append(errs, fmt.Errorf("CA renew-before %v must not be shorter than the certificate's renew-before %v", o.CARenewBefore, o.RenewBefore))
	}
	if o.CheckInterval < 0 || o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("check interval %v and timeout %v must be positive", o.CheckInterval, o.Timeout))
	}
	return errors.Join(errs...)
}

// NeedLeaderElection returns false: every replica serves, so every replica keeps its serving
// certificate current.
func (m *Manager) NeedLeaderElection() bool { return false }

// Start checks at once, then every CheckInterval (sooner after a failure), until ctx is done.
// It returns nil when ctx is done: a failed check is retried, never fatal.
func (m *Manager) Start(ctx context.Context) error {
	log := m.opts.Log
	log.Info("managing serving certificate", "secret", m.secretRef(), "dnsNames", m.opts.DNSNames,
		"mutatingWebhookConfiguration", m.opts.MutatingWebhookConfiguration,
		"validatingWebhookConfiguration", m.opts.ValidatingWebhookConfiguration)
	retry := firstRetryInterval
	for {
		err := m.check(ctx)
		wait := m.opts.CheckInterval
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			wait = min(retry, wait)
			retry = min(2*retry, maxRetryInterval)
			log.Error(err, "serving certificate check failed", "retryIn", wait.String())
		} else {
			retry = firstRetryInterval
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Ready returns nil once the first check has completed (Secret populated, every caBundle
// written, serving pair in place) while the served certificate has not expired; otherwise an
// error that says what is missing.
func (m *Manager) Ready() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !m.ready {
		if m.lastErr != nil {
			return fmt.Errorf("serving certificate not ready: %w", m.lastErr)
		}
		return errors.New("serving certificate not ready: first check has not completed")
	}
	if now := m.opts.Now(); !now.Before(m.notAfter) {
		err := fmt.Errorf("serving certificate expired at %s", m.notAfter.UTC().Format(time.RFC3339))
		if m.lastErr != nil {
			err = fmt.Errorf("%w; last renewal failed: %w", err, m.lastErr)
		}
		return err
	}
	return nil
}

// ReadyCheck is Ready as a controller-runtime healthz.Checker.
func (m *Manager) ReadyCheck(*http.Request) error { return m.Ready() }

// GetCertificate serves the current pair, for tls.Config.GetCertificate.
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.cert == nil {
		return nil, errors.New("no serving certificate yet: the first check has not completed")
	}
	return m.cert, nil
}

// check runs one pass: Secret, then caBundles, then the served pair. The caBundles come before
// the pair, so that a new CA is trusted before a certificate it signed is served.
func (m *Manager) check(ctx context.Context) error {
	err := m.checkOnce(ctx)
	m.mu.Lock()
	m.lastErr = err
	if err == nil {
		m.ready = true
	}
	m.mu.Unlock()
	return err
}

func (m *Manager) checkOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	now := m.opts.Now()
	mat, err := m.syncSecret(ctx, now)
	if err != nil {
		return err
	}
	bundle := caBundle(mat, now)
	var errs []error
	for _, inj := range m.injectors {
		if err := inj.inject(ctx, bundle); err != nil {
			errs = append(errs, err)
		}
	}
	// A certificate from the CA already served needs no new trust: it is served even when a
	// configuration could not be updated, so that one missing configuration does not stop
	// renewals. A certificate from a new CA waits until every caBundle holds that CA.
	if len(errs) == 0 || m.servesCA(mat.caCert) {
		if err := m.install(mat); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	m.opts.Log.V(1).Info("serving certificate checked", "secret", m.secretRef())
	return nil
}

// servesCA reports whether the pair served now was issued by caCert.
func (m *Manager) servesCA(caCert []byte) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.cert != nil && bytes.Equal(m.servedCA, caCert)
}

func (m *Manager) secretRef() string { return m.opts.Namespace + "/" + m.opts.SecretName }

// material is what the Secret holds, PEM-encoded.
type material struct {
	caCert, caKey, cert, key, previousCAs []byte
}

func materialFrom(s *corev1.Secret) material {
	if s == nil {
		return material{}
	}
	return material{
		caCert:      s.Data[SecretKeyCACert],
		caKey:       s.Data[SecretKeyCAKey],
		cert:        s.Data[SecretKeyCert],
		key:         s.Data[SecretKeyKey],
		previousCAs: s.Data[SecretKeyPreviousCAs],
	}
}

// into writes mat into data, keeping keys that are not ours.
func (mat material) into(data map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(data)+5)
	for k, v := range data {
		out[k] = v
	}
	out[SecretKeyCACert] = mat.caCert
	out[SecretKeyCAKey] = mat.caKey
	out[SecretKeyCert] = mat.cert
	out[SecretKeyKey] = mat.key
	if len(mat.previousCAs) > 0 {
		out[SecretKeyPreviousCAs] = mat.previousCAs
	} else {
		delete(out, SecretKeyPreviousCAs)
	}
	return out
}

// syncSecret reads the Secret and, when its content must change, writes what plan decided. A
// write that loses against another replica (Conflict, AlreadyExists) re-reads the Secret, so
// the replicas end up using the first writer's CA and certificate.
func (m *Manager) syncSecret(ctx context.Context, now time.Time) (material, error) {
	secrets := m.opts.Client.CoreV1().Secrets(m.opts.Namespace)
	ref := m.secretRef()
	for attempt := 1; ; attempt++ {
		s, err := secrets.Get(ctx, m.opts.SecretName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			s, err = nil, nil
		}
		if err != nil {
			return material{}, fmt.Errorf("get Secret %s: %w", ref, err)
		}
		cur := materialFrom(s)
		next, reason, err := m.plan(cur, now)
		if err != nil {
			return material{}, fmt.Errorf("renew the certificate in Secret %s: %w", ref, err)
		}
		if reason == "" {
			return cur, nil
		}
		if s == nil {
			s = &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: m.opts.Namespace, Name: m.opts.SecretName},
				Type:       corev1.SecretTypeOpaque,
				Data:       next.into(nil),
			}
			_, err = secrets.Create(ctx, s, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) && attempt < maxAttempts {
				m.opts.Log.V(1).Info("secret created concurrently; reading it again", "secret", ref)
				continue
			}
			if err != nil {
				return material{}, fmt.Errorf("create Secret %s, which does not exist: %w", ref, err)
			}
		} else {
			s = s.DeepCopy()
			s.Data = next.into(s.Data)
			_, err = secrets.Update(ctx, s, metav1.UpdateOptions{})
			if apierrors.IsConflict(err) && attempt < maxAttempts {
				m.opts.Log.V(1).Info("secret changed concurrently; reading it again", "secret", ref)
				continue
			}
			if err != nil {
				return material{}, fmt.Errorf("update Secret %s (%s): %w", ref, reason, err)
			}
		}
		m.opts.Log.Info("serving certificate issued", "secret", ref, "reason", reason,
			"notAfter", notAfter(next.cert), "caNotAfter", notAfter(next.caCert))
		return next, nil
	}
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

// plan decides what the Secret must hold at now. An empty reason means cur is kept as it is.
// A CA is replaced when absent, unusable or due; the replaced CA, while still valid, moves to
// the previous CAs. A serving certificate is replaced when absent, unusable, due, not issued by
// the CA, or missing one of our names; in the last case the new one also keeps the old one's
// names, so that replicas of two versions with different names (a rolling update) do not
// replace each other's certificate at every check.
func (m *Manager) plan(cur material, now time.Time) (material, string, error) {
	o := m.opts
	previous := validCerts(cur.previousCAs, now)
	ca, caErr := LoadCA(cur.caCert, cur.caKey)
	var reason string
	switch {
	case len(cur.caCert) == 0 && len(cur.caKey) == 0:
		reason = reasonCAMissing
	case caErr != nil:
		reason = reasonCAInvalid
	default:
		if due, _ := RotationDue(cur.caCert, now, o.CARenewBefore); due {
			reason = reasonCARenewal
		}
	}
	if reason != "" {
		// Certificates the replaced CA signed may still be served until every replica has
		// read the new one: keep trusting it while it is valid.
		previous = slices.Concat(validCerts(cur.caCert, now), previous)
		var err error
		ca, err = NewCA(o.CACommonName+"@"+strconv.FormatInt(now.Unix(), 10), now, o.CAValidity)
		if err != nil {
			return material{}, "", err
		}
		cert, key, err := ca.Issue(o.DNSNames, o.IPAddresses, now, o.Validity)
		if err != nil {
			return material{}, "", err
		}
		return material{caCert: ca.CertPEM(), caKey: ca.KeyPEM(), cert: cert, key: key, previousCAs: bytes.Join(previous, nil)}, reason, nil
	}

	dnsNames, ips := o.DNSNames, o.IPAddresses
	pair, pairErr := tls.X509KeyPair(cur.cert, cur.key)
	switch {
	case len(cur.cert) == 0 || len(cur.key) == 0:
		reason = reasonCertMissing
	case pairErr != nil:
		reason = reasonCertInvalid
	default:
		if due, _ := RotationDue(cur.cert, now, o.RenewBefore); due {
			reason = reasonCertRenewal
		} else if ca.Verify(cur.cert, now) != nil {
			reason = reasonCertForeign
		} else if !Matches(cur.cert, m.hostnames()) {
			reason = reasonCertNames
			dnsNames = union(dnsNames, pair.Leaf.DNSNames, func(a, b string) bool { return a == b })
			ips = union(ips, pair.Leaf.IPAddresses, net.IP.Equal)
		}
	}
	if reason == reasonNothingToChange {
		return cur, "", nil
	}
	cert, key, err := ca.Issue(dnsNames, ips, now, o.Validity)
	if err != nil {
		return material{}, "", err
	}
	return material{caCert: cur.caCert, caKey: cur.caKey, cert: cert, key: key, previousCAs: bytes.Join(previous, nil)}, reason, nil
}

// hostnames are the names a client may verify the serving certificate for.
func (m *Manager) hostnames() []string {
	names := slices.Clone(m.opts.DNSNames)
	for _, ip := range m.opts.IPAddresses {
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

// install serves mat's pair and writes it to the files, each only when it changed.
func (m *Manager) install(mat material) error {
	m.mu.RLock()
	same := bytes.Equal(m.certPEM, mat.cert)
	m.mu.RUnlock()
	if !same {
		pair, err := tls.X509KeyPair(mat.cert, mat.key)
		if err != nil {
			return fmt.Errorf("load serving certificate from Secret %s: %w", m.secretRef(), err)
		}
		m.mu.Lock()
		m.cert, m.certPEM, m.servedCA, m.notAfter = &pair, slices.Clone(mat.cert), slices.Clone(mat.caCert), pair.Leaf.NotAfter
		m.mu.Unlock()
		m.opts.Log.Info("serving certificate loaded", "secret", m.secretRef(), "notAfter", pair.Leaf.NotAfter.UTC().Format(time.RFC3339), "dnsNames", pair.Leaf.DNSNames)
	}
	if m.files == nil {
		return nil
	}
	return m.files.write(mat.cert, mat.key)
}
