package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
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
//
// Each check goes through the Manager's parts in order: the Secret store (secretstore.go) reads
// the Secret and writes what the pure renewal plan (plan.go) decides; the caBundle injectors
// (cabundle.go) write the CA into the webhook configurations; then the pair is served and
// written to files (files.go).
type Manager struct {
	opts      Options
	renewal   renewal     // decides what the Secret must hold
	secret    secretStore // the Secret every replica shares
	injectors []injector  // one per webhook configuration named
	files     *pairFiles  // nil unless CertFile and KeyFile are set

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
		renewal:   newRenewal(o),
		secret:    secretStore{secrets: o.Client.CoreV1().Secrets(o.Namespace), namespace: o.Namespace, name: o.SecretName, log: o.Log},
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
	mat, err := m.secret.update(ctx, func(cur material) (material, string, error) { return m.renewal.plan(cur, now) })
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

func (m *Manager) secretRef() string { return m.secret.ref() }

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
