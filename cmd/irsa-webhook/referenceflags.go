package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
)

// The reference webhook's flags (aws/amazon-eks-pod-identity-webhook: its main.go and the klog
// flags it adds) are accepted by serve, so that a Deployment written for the reference starts
// this binary unchanged. Those of the same name and meaning (--port, --kubeconfig,
// --annotation-prefix, --token-audience, --token-mount-path, --token-expiration,
// --aws-default-region, --sts-regional-endpoint, --watch-config-map, --tls-cipher-suites,
// --tls-min-version, --compose-role-arn, -v) are serve's own. Every other one is
//   - mapped: it sets this binary's equivalent, and one deprecation line names that flag;
//   - ignored: it tunes something this binary does its own way; one warning line says so;
//   - refused: it asks for a feature irsa-webhook deliberately lacks; start-up fails, so
//     that no pod silently goes without the credentials it was meant to get.
// docs/migrating.md has the same table for people.

// migratingDoc is where refusals point.
const migratingDoc = "docs/migrating.md"

// The reference's defaults where they differ from serve's: a command line without a
// subcommand (the reference's) starts from them.
const (
	referencePort        = 443
	referenceTLSCertFile = "/etc/webhook/certs/tls.crt"
	referenceTLSKeyFile  = "/etc/webhook/certs/tls.key"
	referenceMetricsPort = 9999
	referenceNamespace   = "eks"
	referenceName        = "pod-identity-webhook" // its Service and TLS Secret
	// referencePodWebhookPath is the pod mutation's path in the reference's webhook
	// configuration; serve answers on it as on podWebhookPath.
	referencePodWebhookPath = "/mutate"
)

// referenceFlags hold the values of the reference's flags that are not serve's own.
type referenceFlags struct {
	fs                                *pflag.FlagSet // to tell which were given
	tlsCert, tlsKey                   string
	metricsPort                       int
	kubeAPI                           string
	inCluster                         bool
	namespace, serviceName, tlsSecret string
	lookupGracePeriod                 time.Duration
	containerCredentialsConfig        string
	version                           bool
	notices                           []flagNotice // set by apply, logged once the logger exists
}

// flagNotice is one line about a reference flag: mapped (use names the new flag) or ignored.
type flagNotice struct {
	flag, use, reason string
}

// ignoredReferenceFlags are accepted and ignored: name, whether it is a bool (takes no
// value), and why it has no effect here.
var ignoredReferenceFlags = []struct {
	name   string
	isBool bool
	reason string
}{
	{"resync-period", false, "the ServiceAccount and ConfigMap caches are kept current by watches; there is no periodic resync"},
	{"enable-debugging-handlers", true, "the reference's cache dump and fault-injection handlers are not served; --enable-profiling serves Go's pprof behind authentication"},
	// klog's output flags: this binary logs with zap, always to stderr (--log-format json|console).
	{"logtostderr", true, klogReason}, {"alsologtostderr", true, klogReason}, {"log_dir", false, klogReason},
	{"log_file", false, klogReason}, {"log_file_max_size", false, klogReason}, {"legacy_stderr_threshold_behavior", true, klogReason},
	{"add_dir_header", true, klogReason}, {"skip_headers", true, klogReason}, {"skip_log_headers", true, klogReason},
	{"one_output", true, klogReason}, {"stderrthreshold", false, klogReason}, {"alsologtostderrthreshold", false, klogReason},
	{"vmodule", false, klogReason}, {"log_backtrace_at", false, klogReason},
	// They only configure the container-credentials mode, which --watch-container-credentials-config
	// turns on (and which is refused).
	{"container-credentials-audience", false, containerCredentialsReason},
	{"container-credentials-token-mount-path", false, containerCredentialsReason},
	{"container-credentials-token-volume-name", false, containerCredentialsReason},
	{"container-credentials-token-path", false, containerCredentialsReason},
	{"container-credentials-full-uri", false, containerCredentialsReason},
}

const (
	klogReason                 = "klog's output flag: logs go to stderr, structured by zap (--log-format json|console, --log-level or -v)"
	containerCredentialsReason = "configures EKS Pod Identity's container-credentials mode, which irsa-webhook does not have (see " + migratingDoc + ")"
)

// addFlags registers the reference's flags, hidden from --help.
func (r *referenceFlags) addFlags(fs *pflag.FlagSet) {
	r.fs = fs
	ref := "the reference webhook's flag; "
	fs.StringVar(&r.tlsCert, "tls-cert", referenceTLSCertFile, ref+"use --tls-cert-file")
	fs.StringVar(&r.tlsKey, "tls-key", referenceTLSKeyFile, ref+"use --tls-key-file")
	fs.IntVar(&r.metricsPort, "metrics-port", referenceMetricsPort, ref+"use --metrics-bind-address")
	fs.StringVar(&r.kubeAPI, "kube-api", "", ref+"the API server's URL; use --kubeconfig")
	fs.BoolVar(&r.inCluster, "in-cluster", false, ref+"false: certificate files (--cert-mode=file); true: --cert-mode=self-managed")
	fs.StringVar(&r.namespace, "namespace", referenceNamespace, ref+"use --cert-namespace and --config-map-namespace")
	fs.StringVar(&r.serviceName, "service-name", referenceName, ref+"use --cert-service-name")
	fs.StringVar(&r.tlsSecret, "tls-secret", referenceName, ref+"use --cert-secret-name")
	fs.DurationVar(&r.lookupGracePeriod, "service-account-lookup-grace-period", 0, ref+"use --service-account-lookup-timeout")
	fs.StringVar(&r.containerCredentialsConfig, "watch-container-credentials-config", "", ref+"EKS Pod Identity's container-credentials mode: refused")
	fs.BoolVar(&r.version, "version", false, "print the version and exit")
	for _, f := range ignoredReferenceFlags {
		if f.isBool {
			fs.Bool(f.name, false, ref+"ignored: "+f.reason)
		} else {
			fs.String(f.name, "", ref+"ignored: "+f.reason)
		}
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if strings.HasPrefix(f.Usage, ref) || f.Name == "version" {
			_ = fs.MarkHidden(f.Name)
		}
	})
}

func (r *referenceFlags) given(name string) bool { return r.fs != nil && r.fs.Changed(name) }

// apply sets o from the reference flags given, and returns the problems (usage errors). The
// lines to log are left in r.notices.
func (r *referenceFlags) apply(o *serveOptions) []error {
	var errs []error
	// mapTo applies a mapped flag unless its replacement was given too.
	mapTo := func(old, use string, set func()) {
		if !r.given(old) {
			return
		}
		if r.given(use) {
			errs = append(errs, fmt.Errorf("--%s and --%s both given: keep --%s", old, use, use))
			return
		}
		set()
		r.notices = append(r.notices, flagNotice{flag: "--" + old, use: "--" + use})
	}
	mapTo("tls-cert", "tls-cert-file", func() { o.tlsCertFile = r.tlsCert })
	mapTo("tls-key", "tls-key-file", func() { o.tlsKeyFile = r.tlsKey })
	mapTo("metrics-port", "metrics-bind-address", func() {
		if r.metricsPort < 1 || r.metricsPort > 65535 {
			errs = append(errs, fmt.Errorf("--metrics-port %d must be within 1-65535", r.metricsPort))
		}
		o.metricsAddress = ":" + strconv.Itoa(r.metricsPort)
	})
	if r.given("kube-api") { // with --kubeconfig too, as the reference: the server's URL over the kubeconfig's
		o.kubeAPI = r.kubeAPI
		r.notices = append(r.notices, flagNotice{flag: "--kube-api", use: "--kubeconfig"})
	}
	mapTo("service-name", "cert-service-name", func() { o.cert.serviceName = r.serviceName })
	mapTo("tls-secret", "cert-secret-name", func() { o.cert.secretName = r.tlsSecret })
	if r.given("namespace") {
		if r.given("cert-namespace") || r.given("config-map-namespace") {
			errs = append(errs, fmt.Errorf("--namespace with --cert-namespace or --config-map-namespace: keep the latter"))
		} else {
			o.cert.namespace, o.mapping.namespace = r.namespace, r.namespace
			r.notices = append(r.notices, flagNotice{flag: "--namespace", use: "--cert-namespace, --config-map-namespace"})
		}
	}
	mapTo("service-account-lookup-grace-period", "service-account-lookup-timeout", func() {
		switch {
		case r.lookupGracePeriod < 0:
			errs = append(errs, fmt.Errorf("--service-account-lookup-grace-period %s must not be negative", r.lookupGracePeriod))
		case r.lookupGracePeriod > 0:
			o.saLookupTimeout = r.lookupGracePeriod
		default: // 0, the reference's "do not wait": a miss here always gets a bounded live GET
			r.notices = append(r.notices, flagNotice{flag: "--service-account-lookup-grace-period=0",
				reason: fmt.Sprintf("a ServiceAccount missing from the cache is always looked up, within --service-account-lookup-timeout (%s)", o.saLookupTimeout)})
		}
	})
	mapTo("in-cluster", "cert-mode", func() {
		if !r.inCluster {
			o.cert.mode = certModeFile
			return
		}
		// The reference's in-cluster mode had its certificate signed through a CSR; here the
		// webhook is its own CA and must write that CA into the webhook configuration.
		o.cert.mode = certModeSelfManaged
		if o.cert.serviceName == "" && len(o.cert.dnsNames) == 0 {
			o.cert.serviceName = r.serviceName
		}
		if o.cert.secretName == "" {
			o.cert.secretName = r.tlsSecret
		}
		if o.cert.mutatingWebhookCfg == "" {
			errs = append(errs, fmt.Errorf("--in-cluster=true (a certificate the webhook obtains itself) needs --mutating-webhook-configuration: the name of the MutatingWebhookConfiguration whose caBundle irsa-webhook keeps; or use --in-cluster=false with certificate files (see %s)", migratingDoc))
		}
	})
	if r.containerCredentialsConfig != "" {
		errs = append(errs, fmt.Errorf("--watch-container-credentials-config: EKS Pod Identity's container-credentials mode is not supported by irsa-webhook, and the pods it lists would start without credentials; keep a webhook that has it for them, or map their ServiceAccounts to IAM roles (see %s)", migratingDoc))
	}
	for _, f := range ignoredReferenceFlags {
		if r.given(f.name) {
			r.notices = append(r.notices, flagNotice{flag: "--" + f.name, reason: f.reason})
		}
	}
	return errs
}

// logNotices writes one line per reference flag that was mapped or ignored.
func (r *referenceFlags) logNotices(log *zap.Logger) {
	for _, n := range r.notices {
		if n.use != "" {
			log.Warn("deprecated flag of the reference webhook, applied: use the new flag", zap.String("flag", n.flag), zap.String("use", n.use))
			continue
		}
		log.Warn("flag of the reference webhook ignored", zap.String("flag", n.flag), zap.String("reason", n.reason))
	}
}

// useReferenceDefaults makes o start from the reference's defaults where they differ from
// serve's: for a command line written for the reference (no subcommand).
func (o *serveOptions) useReferenceDefaults() {
	o.port = referencePort
	o.tlsCertFile, o.tlsKeyFile = referenceTLSCertFile, referenceTLSKeyFile
	o.metricsAddress = ":" + strconv.Itoa(referenceMetricsPort)
	// The reference has no probe port: /healthz and /readyz are on the webhook's port.
	o.healthAddress = "0"
	if os.Getenv("POD_NAMESPACE") == "" {
		o.cert.namespace, o.mapping.namespace = referenceNamespace, referenceNamespace
	}
	o.referenceDefaults = true
}
