package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-logr/zapr"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	crzap "sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/irsa-webhook/irsa-webhook/webhook/admission"
	"github.com/irsa-webhook/irsa-webhook/webhook/awsiam"
	"github.com/irsa-webhook/irsa-webhook/webhook/pod"
	"github.com/irsa-webhook/irsa-webhook/webhook/sacache"
	"github.com/irsa-webhook/irsa-webhook/webhook/serviceaccount"
	"github.com/irsa-webhook/irsa-webhook/webhook/serving"
)

func newLogger(format string, lvl zapcore.Level) *zap.Logger {
	opts := []crzap.Opts{crzap.Level(lvl), crzap.StacktraceLevel(zapcore.PanicLevel)}
	if format == "console" {
		opts = append(opts, crzap.ConsoleEncoder())
	} else {
		opts = append(opts, crzap.JSONEncoder())
	}
	return crzap.NewRaw(opts...)
}

// restConfig is the API client's configuration: the kubeconfig's, with the server at
// masterURL when set; both empty means in-cluster.
func restConfig(masterURL, kubeconfig string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags(masterURL, kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %q: %w", kubeconfig, err)
	}
	cfg.UserAgent = "irsa-webhook/" + version
	return cfg, nil
}

// newServeCommand is serve with the options o (their values are the flags' defaults).
func newServeCommand(o *serveOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "Run the admission webhook",
		Long: `Runs the admission webhook: pod mutation on ` + podWebhookPath + ` (and on ` + referencePodWebhookPath + `, the
reference webhook's path) and the ServiceAccount trust check on ` + serviceAccountWebhookPath + `,
over HTTPS; /metrics and the /healthz and /readyz probes on their own addresses (the probes on
the webhook's port too). Bad flag values are reported together and exit 2.

The reference webhook's flags are accepted too (hidden here; see ` + migratingDoc + `): those
with an equivalent set it and log a deprecation line, those that tune what this binary does
its own way are ignored with a warning, and those asking for what it lacks stop start-up.
Invoked with flags and no subcommand, as the reference's Deployments do, irsa-webhook runs
serve with the reference's defaults: --port ` + strconv.Itoa(referencePort) + `, --tls-cert-file ` + referenceTLSCertFile + `,
--tls-key-file ` + referenceTLSKeyFile + `, metrics on :` + strconv.Itoa(referenceMetricsPort) + `, no separate probe port.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.reference.version {
				fmt.Fprintf(cmd.OutOrStdout(), "irsa-webhook %s (commit %s)\n", version, commit)
				return nil
			}
			return runServe(cmd.Context(), o)
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

func runServe(ctx context.Context, o *serveOptions) error {
	if err := o.validate(o.reference.apply(o)...); err != nil {
		return err
	}
	raw := newLogger(o.logFormat, o.zapLevel())
	log := zapr.NewLogger(raw)
	ctrl.SetLogger(log)
	if o.referenceDefaults {
		log.Info("no subcommand: serving with the reference webhook's defaults", "port", o.port, "tlsCertFile", o.tlsCertFile, "metricsBindAddress", o.metricsAddress)
	}
	o.reference.logNotices(raw)
	if o.compose.enabled {
		// Before anything copies the defaults: the pod path, the trust check and the mapping
		// all read role names the same way.
		o.defaults.ComposeAccount = o.compose.known
		o.mapping.roleNames = true
	}
	cfg, err := restConfig(o.kubeAPI, o.kubeconfig)
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
	sas, err := sacache.NewForConfig(cfg, o.defaults.AnnotationPrefix, o.saLookupTimeout)
	if err != nil {
		return err
	}
	grace := o.shutdownGrace
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Logger:                  log,
		Metrics:                 o.metricsOptions(getCertificate, minVersion, suites),
		HealthProbeBindAddress:  o.healthAddress,
		GracefulShutdownTimeout: &grace,
		// Timeouts, a header cap and HTTP/1.1 unless --enable-http2: see package serving.
		WebhookServer: serving.New(serving.Options{
			Host:        o.bindAddress,
			Port:        o.port,
			EnableHTTP2: o.enableHTTP2,
			Log:         log.WithName("webhook-server"),
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
	// Every readiness check is served on the webhook's port too (see readyChecks).
	ready := &readyChecks{Manager: mgr, checks: map[string]healthz.Checker{}}
	mgr = ready
	if err := mgr.Add(certSource); err != nil {
		return fmt.Errorf("add serving certificate source: %w", err)
	}
	if err := mgr.Add(sas); err != nil {
		return fmt.Errorf("add serviceaccount cache: %w", err)
	}
	m := admission.NewMetrics(metrics.Registry)
	// Registered whether or not the trust check runs, so that /metrics has the same
	// families either way.
	trustMetrics := serviceaccount.NewMetrics(metrics.Registry)
	podSAs, err := o.mapping.serviceAccounts(mgr, cfg, sas, o.defaults.AnnotationPrefix, metrics.Registry, log.WithName("mapping"))
	if err != nil {
		return err
	}
	srv := mgr.GetWebhookServer()
	if o.mutatePods {
		podHandler := &pod.Handler{
			Defaults:           o.defaults,
			ServiceAccounts:    podSAs,
			ExcludedNamespaces: admission.ExcludedNamespaces(o.excludedNamespaces),
			Metrics:            pod.NewMetrics(metrics.Registry),
			Log:                log.WithName("pod"),
		}
		podServer := admission.NewServer[pod.Pod]("pod", podHandler, log, m)
		srv.Register(podWebhookPath, podServer)
		srv.Register(referencePodWebhookPath, podServer)
	} else {
		log.Info("pod mutation off (--mutate-pods=false): serving the ServiceAccount trust check only")
	}
	// The webhook's AWS identity (STS GetCallerIdentity), shared by the trust check (its
	// account) and --compose-role-arn, and the trust check's issuer, are looked up by deps.
	var ident *awsIdentity
	if (o.trust.mode != serviceaccount.Off && o.trust.policyDir == "") || o.compose.enabled {
		acfg, err := awsiam.LoadConfig(ctx, "")
		if err != nil {
			return fmt.Errorf("AWS configuration for STS and IAM: %w", err)
		}
		ident = &awsIdentity{cfg: acfg}
		if o.compose.enabled {
			ident.onKnown = append(ident.onKnown, o.compose.set)
		}
	}
	var deps *serviceaccount.Dependencies
	if o.trust.mode != serviceaccount.Off || ident != nil {
		if deps, err = serviceaccount.NewDependencies(metrics.Registry, log.WithName("trust")); err != nil {
			return err
		}
	}
	if o.trust.mode != serviceaccount.Off {
		saHandler, err := o.trust.handler(ctx, cfg, ident, o.defaults, trustMetrics, deps, log.WithName("trust"))
		if err != nil {
			return err
		}
		events := serviceaccount.NewDeferredEvents(mgr.GetEventRecorder("irsa-webhook"), sas, trustMetrics.EventsDropped, log.WithName("trust"))
		if err := mgr.Add(events); err != nil {
			return fmt.Errorf("add trust check events: %w", err)
		}
		saHandler.Events = events
		saHandler.ExcludedNamespaces = admission.ExcludedNamespaces(o.excludedNamespaces)
		o.mapping.checkTrust(ctx, saHandler, mgr.GetEventRecorder("irsa-webhook"), sas, log.WithName("mapping"))
		srv.Register(serviceAccountWebhookPath, admission.NewServer[corev1.ServiceAccount]("serviceaccount", saHandler, log, m).
			SetOnInternalError(saHandler.OnInternalError()))
	}
	if ident != nil {
		ident.lookup(deps)
	}
	if deps != nil {
		if err := o.trust.addDependencies(mgr, deps); err != nil {
			return err
		}
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
	// As the reference, which has no probe port, the probes are on the webhook's port too.
	srv.Register("/healthz", http.StripPrefix("/healthz", &healthz.Handler{Checks: map[string]healthz.Checker{"ping": healthz.Ping}}))
	srv.Register("/readyz", http.StripPrefix("/readyz", &healthz.Handler{Checks: ready.checks}))
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
	log.Info("starting irsa-webhook", "version", version, "port", o.port, "annotationPrefix", o.defaults.AnnotationPrefix)
	if err := mgr.Start(runCtx); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stopped")
	return nil
}

// readyChecks is the manager, keeping a copy of the readiness checks added to it so that they
// can be served on the webhook's port as well as on the probe port. Checks are added before
// the manager starts; the map is only read after.
type readyChecks struct {
	manager.Manager
	checks map[string]healthz.Checker
}

func (r *readyChecks) AddReadyzCheck(name string, check healthz.Checker) error {
	r.checks[name] = check
	return r.Manager.AddReadyzCheck(name, check)
}

// metricsOptions serve /metrics (and pprof, when enabled) over HTTPS behind Kubernetes
// authentication and authorization, the pattern kubebuilder scaffolds: a caller needs a
// bearer token the API server accepts (TokenReview) whose identity may `get` the path
// (SubjectAccessReview; the chart's <fullname>-metrics-reader ClusterRole grants /metrics).
// The certificate is the webhook's own, so a scraper can verify it with the same CA.
// --metrics-secure=false serves plain HTTP without the filter, for local runs only.
func (o *serveOptions) metricsOptions(getCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error), minVersion uint16, suites []uint16) metricsserver.Options {
	opts := metricsserver.Options{BindAddress: o.metricsAddress, ExtraHandlers: profilingHandlers(o.profiling)}
	if !o.metricsSecure {
		return opts
	}
	opts.SecureServing = true
	opts.FilterProvider = filters.WithAuthenticationAndAuthorization
	opts.TLSOpts = []func(*tls.Config){func(c *tls.Config) {
		c.MinVersion = minVersion
		c.CipherSuites = suites
		c.GetCertificate = getCertificate
		c.NextProtos = []string{"http/1.1"} // as on the webhook port (see package serving)
		if o.enableHTTP2 {
			c.NextProtos = []string{"h2", "http/1.1"}
		}
	}}
	return opts
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
