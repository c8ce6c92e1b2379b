package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/pprof"
	"slices"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	crzap "sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/irsa-webhook/irsa-webhook/webhook/admission"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/pod"
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
	defaultExcludedNamespace  = "kube-system"
)

type serveOptions struct {
	defaults           irsa.Defaults
	kubeconfig         string
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
	excludedNamespaces listFlag
	saLookupTimeout    time.Duration
	shutdownGrace      time.Duration
	shutdownDelay      time.Duration
	profiling          bool
	releasePages       bool
	trust              trustOptions
	cert               certOptions
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
		excludedNamespaces: listFlag{defaultExcludedNamespace},
		saLookupTimeout:    sacache.DefaultLiveLookupBudget,
		shutdownGrace:      defaultShutdownGrace,
		shutdownDelay:      defaultShutdownDelay,
		releasePages:       true,
		trust:              newTrustOptions(),
		cert:               newCertOptions(),
	}
}

func (o *serveOptions) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("irsa-webhook serve", flag.ContinueOnError)
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
	fs.Var(&o.excludedNamespaces, "excluded-namespaces", "comma-separated namespaces whose pods are never mutated, whatever the webhook configuration sends")
	fs.DurationVar(&o.saLookupTimeout, "service-account-lookup-timeout", o.saLookupTimeout, "budget of the live GET made when a pod's ServiceAccount is not in the cache yet")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace-period", o.shutdownGrace, "how long in-flight requests may take to finish on SIGTERM, after the shutdown delay (keep it at 5s or more: idle keep-alive connections count as busy for up to 5s)")
	fs.BoolVar(&o.profiling, "enable-profiling", o.profiling, "serve Go's pprof profiles under /debug/pprof/ on the metrics address")
	fs.BoolVar(&o.releasePages, "release-startup-pages", o.releasePages, "once ready, unmap the binary's read-only pages (Linux); those serving uses come back from the page cache, the rest no longer count in the resident set")
	fs.DurationVar(&o.shutdownDelay, "shutdown-delay", o.shutdownDelay, "on SIGTERM, report not ready but keep serving this long before stopping, so the API server stops sending requests first")
	o.trust.addFlags(fs)
	o.cert.addFlags(fs)
	return fs
}

// validate reports every problem at once.
func (o *serveOptions) validate() error {
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
	if o.saLookupTimeout <= 0 || o.saLookupTimeout > 10*time.Second {
		errs = append(errs, fmt.Errorf("--service-account-lookup-timeout %s must be within (0, 10s]: it delays pod creation", o.saLookupTimeout))
	}
	if o.shutdownGrace < 0 || o.shutdownDelay < 0 {
		errs = append(errs, fmt.Errorf("--shutdown-grace-period %s and --shutdown-delay %s must not be negative", o.shutdownGrace, o.shutdownDelay))
	}
	errs = append(errs, o.trust.validate()...)
	errs = append(errs, o.cert.validate()...)
	return joinProblems(errs)
}

func tlsVersion(v string) (uint16, error) {
	switch v {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
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

func newLogger(format, level string) (logr.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return logr.Logger{}, err
	}
	opts := []crzap.Opts{crzap.Level(lvl), crzap.StacktraceLevel(zapcore.PanicLevel)}
	if format == "console" {
		opts = append(opts, crzap.ConsoleEncoder())
	} else {
		opts = append(opts, crzap.JSONEncoder())
	}
	return crzap.New(opts...), nil
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %q: %w", kubeconfig, err)
	}
	cfg.UserAgent = "irsa-webhook/" + version
	return cfg, nil
}

func runServe(ctx context.Context, args []string, s streams) error {
	o := newServeOptions()
	if err := parseFlags(o.flagSet(), args, s.err); err != nil {
		return err
	}
	if err := o.validate(); err != nil {
		return err
	}
	log, err := newLogger(o.logFormat, o.logLevel)
	if err != nil {
		return err
	}
	ctrl.SetLogger(log)
	cfg, err := restConfig(o.kubeconfig)
	if err != nil {
		return err
	}
	minVersion, _ := tlsVersion(o.tlsMinVersion)
	suites, _ := cipherSuites(o.tlsCipherSuites)
	certSource, getCertificate, certReady, err := o.cert.servingCertificate(cfg, o.tlsCertFile, o.tlsKeyFile, log.WithName("certs"))
	if err != nil {
		return err
	}

	// The manager's scheme only has to name the objects events are recorded for
	// (ServiceAccounts): registering every built-in API group again would keep a second copy
	// of client-go's scheme on the heap for nothing.
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return fmt.Errorf("build scheme: %w", err)
	}
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("create metadata client: %w", err)
	}
	sas, err := sacache.New(mc, o.defaults.AnnotationPrefix, o.saLookupTimeout)
	if err != nil {
		return err
	}
	grace := o.shutdownGrace
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Logger:                  log,
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddress, ExtraHandlers: profilingHandlers(o.profiling)},
		HealthProbeBindAddress:  o.healthAddress,
		GracefulShutdownTimeout: &grace,
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: o.bindAddress,
			Port: o.port,
			TLSOpts: []func(*tls.Config){func(c *tls.Config) {
				c.MinVersion = minVersion
				c.CipherSuites = suites
				c.GetCertificate = getCertificate
			}},
		}),
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if err := mgr.Add(certSource); err != nil {
		return fmt.Errorf("add serving certificate source: %w", err)
	}
	if err := mgr.Add(sas); err != nil {
		return fmt.Errorf("add serviceaccount cache: %w", err)
	}
	m := admission.NewMetrics(metrics.Registry)
	podHandler := &pod.Handler{
		Defaults:           o.defaults,
		ServiceAccounts:    sas,
		ExcludedNamespaces: o.excludedNamespaces,
		Metrics:            m,
		Log:                log.WithName("pod"),
	}
	srv := mgr.GetWebhookServer()
	srv.Register(podWebhookPath, admission.NewServer[pod.Pod]("pod", podHandler, log, m))
	if o.trust.mode != serviceaccount.Off {
		saHandler, err := o.trust.handler(ctx, cfg, o.defaults, m, log.WithName("trust"))
		if err != nil {
			return err
		}
		saHandler.Events = mgr.GetEventRecorder("irsa-webhook")
		srv.Register(serviceAccountWebhookPath, admission.NewServer[corev1.ServiceAccount]("serviceaccount", saHandler, log, m))
	}

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook-server", srv.StartedChecker()); err != nil {
		return err
	}
	if certReady != nil {
		// Not ready until the Secret, every caBundle and the served certificate are in place.
		if err := mgr.AddReadyzCheck("serving-certificate", certReady); err != nil {
			return err
		}
	}
	if err := mgr.AddReadyzCheck("serviceaccount-cache", func(*http.Request) error {
		if !sas.HasSynced() {
			return errors.New("serviceaccount cache has not synced yet")
		}
		return nil
	}); err != nil {
		return err
	}
	// On SIGTERM: not ready at once, keep serving for the shutdown delay while endpoints
	// and the API server catch up, then stop (in-flight requests get the grace period).
	var draining atomic.Bool
	if err := mgr.AddReadyzCheck("shutdown", func(*http.Request) error {
		if draining.Load() {
			return errors.New("shutting down")
		}
		return nil
	}); err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	go func() {
		select {
		case <-ctx.Done():
		case <-runCtx.Done():
			return
		}
		draining.Store(true)
		log.Info("shutting down: not ready, still serving", "delay", o.shutdownDelay.String())
		select {
		case <-time.After(o.shutdownDelay):
		case <-runCtx.Done():
		}
		stop()
	}()
	// Once ready, give back the pages of the binary that only start-up used (see memory.go).
	if o.releasePages {
		webhookStarted := srv.StartedChecker()
		go releaseWhenReady(runCtx, func() bool {
			return sas.HasSynced() && (certReady == nil || certReady(nil) == nil) && webhookStarted(nil) == nil
		}, log)
	}
	log.Info("starting irsa-webhook", "version", version, "port", o.port, "annotationPrefix", o.defaults.AnnotationPrefix)
	if err := mgr.Start(runCtx); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stopped")
	return nil
}

// profilingHandlers are Go's pprof endpoints, when enabled.
func profilingHandlers(enabled bool) map[string]http.Handler {
	if !enabled {
		return nil
	}
	return map[string]http.Handler{
		"/debug/pprof/":        http.HandlerFunc(pprof.Index),
		"/debug/pprof/cmdline": http.HandlerFunc(pprof.Cmdline),
		"/debug/pprof/profile": http.HandlerFunc(pprof.Profile),
		"/debug/pprof/symbol":  http.HandlerFunc(pprof.Symbol),
		"/debug/pprof/trace":   http.HandlerFunc(pprof.Trace),
	}
}
