package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap/zapcore"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/sacache"
	"github.com/irsa-webhook/irsa-webhook/webhook/serviceaccount"
)

// Serving defaults, shared with the Helm chart's values.
const (
	defaultPort               = 9443
	defaultMetricsAddress     = ":8080"
	defaultHealthAddress      = ":8081"
	defaultTLSCertFile        = "/etc/irsa-webhook/tls/tls.crt"
	defaultTLSKeyFile         = "/etc/irsa-webhook/tls/tls.key"
	defaultTLSMinVersion      = "1.2"
	defaultShutdownGrace      = 20 * time.Second
	defaultShutdownDelay      = 5 * time.Second
	podWebhookPath            = "/mutate-v1-pod"
	serviceAccountWebhookPath = "/validate-v1-serviceaccount"
	// maxVerbosity bounds -v: klog's levels above 10 are not used by any Kubernetes component.
	maxVerbosity = 10
)

// excludedNamespacesUsage is the help of --excluded-namespaces (serve and mutate).
const excludedNamespacesUsage = "comma-separated namespaces whose pods are never mutated and whose ServiceAccounts are never checked, " +
	"whatever the webhook configurations send; default $POD_NAMESPACE, the webhook's own namespace (kube-system is covered unless listed)"

// defaultExcludedNamespaces is the default of --excluded-namespaces, for serve and mutate
// alike: the webhook's own namespace ($POD_NAMESPACE, from the downward API), whose pods must
// never wait for the webhook itself; none when it is unset. kube-system is not excluded: the
// add-ons that need AWS credentials most run there.
func defaultExcludedNamespaces() listFlag {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return listFlag{ns}
	}
	return listFlag{}
}

type serveOptions struct {
	defaults           irsa.Defaults
	kubeconfig         string
	kubeAPI            string // the reference's --kube-api: the API server's URL, over the kubeconfig's
	bindAddress        string
	port               int
	tlsCertFile        string
	tlsKeyFile         string
	tlsMinVersion      string
	tlsCipherSuites    listFlag
	metricsAddress     string
	healthAddress      string
	logFormat          string
	logLevel           string
	verbosity          verbosity
	excludedNamespaces listFlag
	saLookupTimeout    time.Duration
	shutdownGrace      time.Duration
	shutdownDelay      time.Duration
	profiling          bool
	metricsSecure      bool
	enableHTTP2        bool
	mutatePods         bool
	trust              trustOptions
	cert               certOptions
	mapping            mappingOptions
	compose            composeOptions
	reference          referenceFlags
	referenceDefaults  bool // started without a subcommand: the reference's defaults
}

func newServeOptions() *serveOptions {
	return &serveOptions{
		defaults:           irsa.NewDefaults(),
		port:               defaultPort,
		tlsCertFile:        defaultTLSCertFile,
		tlsKeyFile:         defaultTLSKeyFile,
		tlsMinVersion:      defaultTLSMinVersion,
		metricsAddress:     defaultMetricsAddress,
		healthAddress:      defaultHealthAddress,
		logFormat:          "json",
		logLevel:           "info",
		excludedNamespaces: defaultExcludedNamespaces(),
		saLookupTimeout:    sacache.DefaultLiveLookupBudget,
		shutdownGrace:      defaultShutdownGrace,
		shutdownDelay:      defaultShutdownDelay,
		metricsSecure:      true,
		mutatePods:         true,
		trust:              newTrustOptions(),
		cert:               newCertOptions(),
		mapping:            newMappingOptions(),
	}
}

func (o *serveOptions) addFlags(fs *pflag.FlagSet) {
	addMutationFlags(fs, &o.defaults)
	fs.StringVar(&o.kubeconfig, "kubeconfig", o.kubeconfig, "kubeconfig file; empty uses the in-cluster configuration")
	fs.StringVar(&o.bindAddress, "bind-address", o.bindAddress, "address the webhook server listens on; empty means all")
	fs.IntVar(&o.port, "port", o.port, "port of the webhook server (HTTPS)")
	fs.StringVar(&o.tlsCertFile, "tls-cert-file", o.tlsCertFile, "serving certificate (PEM); reloaded when the file changes")
	fs.StringVar(&o.tlsKeyFile, "tls-key-file", o.tlsKeyFile, "serving key (PEM); reloaded when the file changes")
	fs.StringVar(&o.tlsMinVersion, "tls-min-version", o.tlsMinVersion, "minimum TLS version: 1.2 or 1.3")
	fs.Var(&o.tlsCipherSuites, "tls-cipher-suites", "comma-separated TLS 1.2 cipher suites (Go names); empty uses Go's secure defaults; insecure suites are refused")
	fs.StringVar(&o.metricsAddress, "metrics-bind-address", o.metricsAddress, "address of the Prometheus /metrics endpoint; 0 disables it")
	fs.StringVar(&o.healthAddress, "health-probe-bind-address", o.healthAddress, "address of the /healthz and /readyz endpoints")
	fs.StringVar(&o.logFormat, "log-format", o.logFormat, "log format: json or console")
	fs.StringVar(&o.logLevel, "log-level", o.logLevel, "log level: debug, info, warn or error")
	fs.VarP(&o.verbosity, "v", "v", "klog-style verbosity; when given it replaces --log-level: 0 is info, 1 is debug, N logs V(N) lines too (zap level -N)")
	fs.Var(&o.excludedNamespaces, "excluded-namespaces", excludedNamespacesUsage)
	fs.DurationVar(&o.saLookupTimeout, "service-account-lookup-timeout", o.saLookupTimeout, "budget of the live GET made when a pod's ServiceAccount is not in the cache yet")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace-period", o.shutdownGrace, "how long in-flight requests may take to finish on SIGTERM, after the shutdown delay (keep it at 5s or more: idle keep-alive connections count as busy for up to 5s)")
	fs.BoolVar(&o.enableHTTP2, "enable-http2", o.enableHTTP2, "offer HTTP/2 on the webhook port; off by default (HTTP/1.1 only): one HTTP/2 connection multiplexes many requests, the vector of the 2023 rapid-reset attacks")
	fs.BoolVar(&o.metricsSecure, "metrics-secure", o.metricsSecure, "serve /metrics over HTTPS (the webhook's certificate) to callers whose bearer token the API server accepts and whose identity may get the path; false serves plain HTTP to anyone, for local runs only")
	fs.BoolVar(&o.profiling, "enable-profiling", o.profiling, "serve Go's pprof profiles under /debug/pprof/ on the metrics address, behind the same authentication and authorization as /metrics (without --metrics-secure only on a loopback address)")
	fs.DurationVar(&o.shutdownDelay, "shutdown-delay", o.shutdownDelay, "on SIGTERM, report not ready but keep serving this long before stopping, so the API server stops sending requests first")
	fs.BoolVar(&o.mutatePods, "mutate-pods", o.mutatePods, "serve the pod mutation; false serves only the ServiceAccount trust check (next to another webhook that injects credentials, such as EKS's own)")
	o.trust.addFlags(fs)
	o.cert.addFlags(fs)
	o.mapping.addFlags(fs)
	o.compose.addFlags(fs)
	o.reference.addFlags(fs)
}

// verbosity is klog's -v N, which kubectl and the reference webhook accept.
type verbosity struct {
	n   int
	set bool // given on the command line: then it replaces --log-level
}

func (v *verbosity) String() string { return strconv.Itoa(v.n) }
func (v *verbosity) Type() string   { return "int" }

func (v *verbosity) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("want a number: %w", err)
	}
	v.n, v.set = n, true
	return nil
}

// zapLevel is the zap level of --log-level, or of -v when given: klog's -v N is logr's V(N),
// which zap logs at level -N (so -v 0 is info and -v 1 is debug).
func (o *serveOptions) zapLevel() zapcore.Level {
	if o.verbosity.set {
		return zapcore.Level(-o.verbosity.n)
	}
	lvl, _ := zapcore.ParseLevel(o.logLevel) // checked by validate
	return lvl
}

// validate reports every problem at once, extra (from the reference's flags) included.
func (o *serveOptions) validate(extra ...error) error {
	errs := o.defaults.Validate()
	if o.port < 1 || o.port > 65535 {
		errs = append(errs, fmt.Errorf("--port %d must be within 1-65535", o.port))
	}
	if o.tlsCertFile == "" || o.tlsKeyFile == "" {
		errs = append(errs, errors.New("--tls-cert-file and --tls-key-file are required"))
	}
	if _, err := tlsVersion(o.tlsMinVersion); err != nil {
		errs = append(errs, err)
	}
	if _, err := cipherSuites(o.tlsCipherSuites); err != nil {
		errs = append(errs, err)
	}
	if !slices.Contains([]string{"json", "console"}, o.logFormat) {
		errs = append(errs, fmt.Errorf("--log-format %q must be json or console", o.logFormat))
	}
	if _, err := zapcore.ParseLevel(o.logLevel); err != nil || !slices.Contains([]string{"debug", "info", "warn", "error"}, o.logLevel) {
		errs = append(errs, fmt.Errorf("--log-level %q must be debug, info, warn or error", o.logLevel))
	}
	if o.verbosity.n < 0 || o.verbosity.n > maxVerbosity {
		errs = append(errs, fmt.Errorf("-v %d must be within 0-%d", o.verbosity.n, maxVerbosity))
	}
	if o.saLookupTimeout <= 0 || o.saLookupTimeout > 10*time.Second {
		errs = append(errs, fmt.Errorf("--service-account-lookup-timeout %s must be within (0, 10s]: it delays pod creation", o.saLookupTimeout))
	}
	if o.shutdownGrace < 0 || o.shutdownDelay < 0 {
		errs = append(errs, fmt.Errorf("--shutdown-grace-period %s and --shutdown-delay %s must not be negative", o.shutdownGrace, o.shutdownDelay))
	}
	if o.profiling && !o.metricsSecure && !isLoopback(o.metricsAddress) {
		errs = append(errs, fmt.Errorf("--enable-profiling with --metrics-secure=false needs a loopback --metrics-bind-address, not %q: profiles are served only behind authentication", o.metricsAddress))
	}
	if !o.mutatePods && o.trust.mode == serviceaccount.Off {
		errs = append(errs, errors.New("--mutate-pods=false with --trust-check=off leaves nothing to serve"))
	}
	if !o.mutatePods && o.cert.mode == certModeSelfManaged && o.cert.mutatingWebhookCfg != "" {
		errs = append(errs, fmt.Errorf("--mutate-pods=false: --mutating-webhook-configuration %q would register a pod webhook this process does not serve", o.cert.mutatingWebhookCfg))
	}
	errs = append(errs, o.trust.validate()...)
	errs = append(errs, o.cert.validate()...)
	errs = append(errs, o.mapping.validate()...)
	errs = append(errs, extra...)
	return joinProblems(errs)
}

// isLoopback reports whether a bind address (host:port) listens on loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func tlsVersion(v string) (uint16, error) {
	switch v {
	case "1.2", "VersionTLS12": // the second spelling is the reference webhook's
		return tls.VersionTLS12, nil
	case "1.3", "VersionTLS13":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("--tls-min-version %q must be 1.2 or 1.3", v)
}

// cipherSuites maps Go cipher-suite names to IDs, refusing the ones Go lists as insecure.
func cipherSuites(names []string) ([]uint16, error) {
	secure := map[string]uint16{}
	for _, s := range tls.CipherSuites() {
		secure[s.Name] = s.ID
	}
	var ids []uint16
	var bad []string
	for _, n := range names {
		id, ok := secure[n]
		if !ok {
			bad = append(bad, n)
			continue
		}
		ids = append(ids, id)
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("--tls-cipher-suites: %v are unknown or insecure", bad)
	}
	return ids, nil
}
