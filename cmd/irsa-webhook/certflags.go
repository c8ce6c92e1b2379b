package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/irsa-webhook/irsa-webhook/certs"
)

// Serving-certificate modes.
const (
	certModeFile        = "file"
	certModeSelfManaged = "self-managed"
)

// certOptions configure where the serving certificate comes from.
type certOptions struct {
	mode, secretName, namespace, serviceName string
	dnsNames                                 listFlag
	mutatingWebhookCfg, validatingWebhookCfg string
	validity, renewBefore                    time.Duration
}

func newCertOptions() certOptions {
	return certOptions{mode: certModeFile, namespace: os.Getenv("POD_NAMESPACE"), validity: certs.DefaultValidity, renewBefore: certs.DefaultRenewBefore}
}

func (c *certOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.mode, "cert-mode", c.mode, "serving certificate: file (--tls-cert-file, --tls-key-file) or self-managed (created, stored in --cert-secret-name, renewed and written into the webhook configurations' caBundle)")
	fs.StringVar(&c.secretName, "cert-secret-name", c.secretName, "self-managed: Secret holding the CA and serving certificate (get and update rights; shared by all replicas)")
	fs.StringVar(&c.namespace, "cert-namespace", c.namespace, "self-managed: namespace of the Secret and the Service (default: $POD_NAMESPACE)")
	fs.StringVar(&c.serviceName, "cert-service-name", c.serviceName, "self-managed: Service of the webhook; the certificate is for <service>, <service>.<namespace> and <service>.<namespace>.svc unless --cert-dns-names is set")
	fs.Var(&c.dnsNames, "cert-dns-names", "self-managed: comma-separated DNS names of the serving certificate, instead of the Service's names")
	fs.StringVar(&c.mutatingWebhookCfg, "mutating-webhook-configuration", c.mutatingWebhookCfg, "self-managed: MutatingWebhookConfiguration whose caBundle is written; empty for none")
	fs.StringVar(&c.validatingWebhookCfg, "validating-webhook-configuration", c.validatingWebhookCfg, "self-managed: ValidatingWebhookConfiguration whose caBundle is written; empty for none")
	fs.DurationVar(&c.validity, "cert-validity", c.validity, "self-managed: lifetime of the serving certificate")
	fs.DurationVar(&c.renewBefore, "cert-renew-before", c.renewBefore, "self-managed: renew the serving certificate this long before it expires")
}

func (c *certOptions) validate() []error {
	switch c.mode {
	case certModeFile:
		return nil
	case certModeSelfManaged:
	default:
		return []error{fmt.Errorf("--cert-mode %q must be %s or %s", c.mode, certModeFile, certModeSelfManaged)}
	}
	var errs []error
	if c.secretName == "" || c.namespace == "" {
		errs = append(errs, errors.New("--cert-mode=self-managed needs --cert-secret-name and --cert-namespace (or POD_NAMESPACE)"))
	}
	if c.serviceName == "" && len(c.dnsNames) == 0 {
		errs = append(errs, errors.New("--cert-mode=self-managed needs --cert-service-name or --cert-dns-names"))
	}
	if c.mutatingWebhookCfg == "" && c.validatingWebhookCfg == "" {
		errs = append(errs, errors.New("--cert-mode=self-managed needs --mutating-webhook-configuration or --validating-webhook-configuration: the API server must get the CA"))
	}
	if c.validity <= 0 || c.renewBefore <= 0 || c.renewBefore >= c.validity {
		errs = append(errs, fmt.Errorf("--cert-renew-before %s must be positive and shorter than --cert-validity %s", c.renewBefore, c.validity))
	}
	return errs
}

// servingCertificate returns the serving certificate's source (a Runnable for the manager),
// its GetCertificate, and a readiness check (nil in file mode: loading the files is the check).
func (c *certOptions) servingCertificate(cfg *rest.Config, certFile, keyFile string, log logr.Logger) (manager.Runnable, func(*tls.ClientHelloInfo) (*tls.Certificate, error), healthz.Checker, error) {
	if c.mode != certModeSelfManaged {
		watcher, err := certwatcher.New(certFile, keyFile)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("load serving certificate: %w", err)
		}
		return watcher, watcher.GetCertificate, nil, nil
	}
	// A typed client, not the manager's: its cached reads would list and watch Secrets, which
	// the chart does not allow (get and update on one Secret only).
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create client for self-managed certificates: %w", err)
	}
	dnsNames := []string(c.dnsNames)
	if len(dnsNames) == 0 {
		dnsNames = certs.ServiceDNSNames(c.serviceName, c.namespace)
	}
	m, err := certs.NewManager(certs.Options{
		Client: client, Namespace: c.namespace, SecretName: c.secretName, DNSNames: dnsNames,
		MutatingWebhookConfiguration: c.mutatingWebhookCfg, ValidatingWebhookConfiguration: c.validatingWebhookCfg,
		CertFile: certFile, KeyFile: keyFile, Validity: c.validity, RenewBefore: c.renewBefore, Log: log,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return m, m.GetCertificate, m.ReadyCheck, nil
}
