package main

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"
	"time"
)

// deploymentBaseArgs is the command of the reference's deploy/deployment-base.yaml, after
// the binary's name.
var deploymentBaseArgs = []string{"--in-cluster=false", "--namespace=default", "--service-name=pod-identity-webhook",
	"--annotation-prefix=eks.amazonaws.com", "--token-audience=sts.amazonaws.com", "--logtostderr"}

// parseReference parses args as serve's flags (with the reference's defaults when bare) and
// applies the reference's flags.
func parseReference(t *testing.T, bare bool, args ...string) (*serveOptions, []error) {
	t.Helper()
	o := newServeOptions()
	if bare {
		o.useReferenceDefaults()
	}
	cmd := newServeCommand(o)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return o, o.reference.apply(o)
}

func noticeFlags(o *serveOptions) []string {
	var flags []string
	for _, n := range o.reference.notices {
		flags = append(flags, n.flag)
	}
	return flags
}

// TestReferenceFlagsParse: every flag of the reference's main.go, and the klog flags it adds,
// parses as serve's flag, in the forms the reference accepts.
func TestReferenceFlagsParse(t *testing.T) {
	every := []string{
		"--port=8443", "--metrics-port=9999", "--kubeconfig=/k", "--kube-api=https://api:6443",
		"--tls-key=/k.pem", "--tls-cert=/c.pem", "--tls-cipher-suites=TLS_AES_128_GCM_SHA256", "--tls-min-version=1.2",
		"--in-cluster=false", "--service-name=pod-identity-webhook", "--namespace=eks", "--tls-secret=pod-identity-webhook",
		"--annotation-prefix=eks.amazonaws.com", "--token-audience=sts.amazonaws.com",
		"--token-mount-path=/var/run/secrets/eks.amazonaws.com/serviceaccount", "--token-expiration=86400",
		"--aws-default-region=us-west-2", "--sts-regional-endpoint=true", "--watch-config-map=false", "--compose-role-arn=false",
		"--watch-container-credentials-config=", "--container-credentials-audience=pods.eks.amazonaws.com",
		"--container-credentials-token-mount-path=/var/run/secrets/pods.eks.amazonaws.com/serviceaccount",
		"--container-credentials-token-volume-name=eks-pod-identity-token", "--container-credentials-token-path=eks-pod-identity-token",
		"--container-credentials-full-uri=http://169.254.170.23/v1/credentials", "--version=false",
		"--enable-debugging-handlers=false", "--service-account-lookup-grace-period=100ms", "--resync-period=60s",
		// klog's, as pflag gives them to the reference: -v with its shorthand.
		"--log_dir=/tmp", "--log_file=/tmp/x", "--log_file_max_size=1800", "--logtostderr", "--alsologtostderr=false",
		"--legacy_stderr_threshold_behavior=true", "-v=4", "--v=4", "--add_dir_header", "--skip_headers", "--one_output",
		"--skip_log_headers", "--stderrthreshold=ERROR", "--alsologtostderrthreshold=INFO", "--vmodule=x=2", "--log_backtrace_at=x.go:1",
	}
	o, errs := parseReference(t, true, every...)
	if len(errs) != 0 {
		t.Fatalf("apply: %v", errs)
	}
	if err := o.validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	// A bool flag of klog's without a value does not swallow the next argument.
	o, _ = parseReference(t, true, "--logtostderr", "--port=1234")
	if o.port != 1234 {
		t.Errorf("--logtostderr --port=1234: port %d", o.port)
	}
}

// TestReferenceFlagsMapped: a flag with an equivalent sets it, with a deprecation line naming
// it; one that tunes what this binary does its own way is ignored with a warning line; one
// asking for what it lacks is refused with a pointer to the migration guide.
func TestReferenceFlagsMapped(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		check       func(*serveOptions) bool
		wantNotices []string
		wantErr     string
	}{
		{name: "tls files", args: []string{"--tls-cert=/c", "--tls-key=/k"},
			check:       func(o *serveOptions) bool { return o.tlsCertFile == "/c" && o.tlsKeyFile == "/k" },
			wantNotices: []string{"--tls-cert", "--tls-key"}},
		{name: "metrics port", args: []string{"--metrics-port=9998"},
			check: func(o *serveOptions) bool { return o.metricsAddress == ":9998" }, wantNotices: []string{"--metrics-port"}},
		{name: "kube-api", args: []string{"--kube-api=https://10.0.0.1:6443"},
			check: func(o *serveOptions) bool { return o.kubeAPI == "https://10.0.0.1:6443" }, wantNotices: []string{"--kube-api"}},
		{name: "namespace", args: []string{"--namespace=kube-system"},
			check: func(o *serveOptions) bool {
				return o.cert.namespace == "kube-system" && o.mapping.namespace == "kube-system"
			}, wantNotices: []string{"--namespace"}},
		{name: "lookup grace period", args: []string{"--service-account-lookup-grace-period=2s"},
			check: func(o *serveOptions) bool { return o.saLookupTimeout == 2*time.Second }, wantNotices: []string{"--service-account-lookup-grace-period"}},
		{name: "lookup grace period 0 keeps the bounded lookup", args: []string{"--service-account-lookup-grace-period=0"},
			check: func(o *serveOptions) bool { return o.saLookupTimeout == time.Second }, wantNotices: []string{"--service-account-lookup-grace-period=0", "--service-account-lookup-grace-period"}},
		{name: "in-cluster=false is certificate files", args: []string{"--in-cluster=false"},
			check: func(o *serveOptions) bool { return o.cert.mode == certModeFile }, wantNotices: []string{"--in-cluster"}},
		{name: "in-cluster=true is self-managed, with the reference's names", args: []string{"--in-cluster", "--namespace=eks", "--mutating-webhook-configuration=pod-identity-webhook"},
			check: func(o *serveOptions) bool {
				return o.cert.mode == certModeSelfManaged && o.cert.serviceName == "pod-identity-webhook" && o.cert.secretName == "pod-identity-webhook" && o.cert.namespace == "eks"
			}, wantNotices: []string{"--namespace", "--in-cluster"}},
		{name: "in-cluster=true needs the configuration to write the CA into", args: []string{"--in-cluster=true"},
			wantErr: "--in-cluster=true (a certificate the webhook obtains itself) needs --mutating-webhook-configuration"},
		{name: "ignored with a warning", args: []string{"--logtostderr", "--resync-period=30s", "--enable-debugging-handlers", "--container-credentials-audience=x"},
			check:       func(o *serveOptions) bool { return true },
			wantNotices: []string{"--resync-period", "--enable-debugging-handlers", "--logtostderr", "--container-credentials-audience"}},
		{name: "container credentials refused", args: []string{"--watch-container-credentials-config=/etc/eks/pod-identity.json"},
			wantErr: "EKS Pod Identity's container-credentials mode is not supported by irsa-webhook, and the pods it lists would start without credentials"},
		{name: "old and new flag together", args: []string{"--tls-cert=/a", "--tls-cert-file=/b"}, wantErr: "--tls-cert and --tls-cert-file both given: keep --tls-cert-file"},
		{name: "bad metrics port", args: []string{"--metrics-port=0"}, wantErr: "--metrics-port 0 must be within 1-65535"},
		{name: "compose-role-arn parses", args: []string{"--compose-role-arn"}, check: func(o *serveOptions) bool { return o.compose.enabled }},
		{name: "the reference's spelling of a TLS version", args: []string{"--tls-min-version=VersionTLS13"}, check: func(o *serveOptions) bool {
			v, err := tlsVersion(o.tlsMinVersion)
			return err == nil && v == tls.VersionTLS13
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, errs := parseReference(t, false, tc.args...)
			if tc.wantErr != "" {
				if err := joinProblems(errs); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("errors %v, want %q", errs, tc.wantErr)
				}
				if strings.Contains(tc.wantErr, "container-credentials") && !strings.Contains(joinProblems(errs).Error(), migratingDoc) {
					t.Errorf("the refusal does not point to %s", migratingDoc)
				}
				return
			}
			if len(errs) > 0 {
				t.Fatalf("errors: %v", errs)
			}
			if !tc.check(o) {
				t.Errorf("options not set as the flags say: %+v", o)
			}
			if got := noticeFlags(o); !slices.Equal(got, tc.wantNotices) {
				t.Errorf("notices for %v, want %v", got, tc.wantNotices)
			}
		})
	}
}

// TestBareInvocationIsServe: flags without a subcommand are serve's, with the reference's
// defaults; --version and --help alone keep their meaning.
func TestBareInvocationIsServe(t *testing.T) {
	o, errs := parseReference(t, true, deploymentBaseArgs...)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if o.port != 443 || o.tlsCertFile != "/etc/webhook/certs/tls.crt" || o.tlsKeyFile != "/etc/webhook/certs/tls.key" ||
		o.metricsAddress != ":9999" || o.healthAddress != "0" || o.cert.mode != certModeFile {
		t.Errorf("not the reference's defaults: port %d, cert %s, key %s, metrics %s, probes %s, cert mode %s",
			o.port, o.tlsCertFile, o.tlsKeyFile, o.metricsAddress, o.healthAddress, o.cert.mode)
	}
	if got, want := noticeFlags(o), []string{"--service-name", "--namespace", "--in-cluster", "--logtostderr"}; !slices.Equal(got, want) {
		t.Errorf("notices for %v, want %v", got, want)
	}

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{name: "bad flags are serve's", args: []string{"--in-cluster=false", "--port=0", "--token-expiration=1"}, wantCode: exitUsage, wantErr: "--port 0 must be within 1-65535"},
		{name: "refusal", args: []string{"--watch-container-credentials-config=/x"}, wantCode: exitUsage, wantErr: migratingDoc},
		{name: "version among the flags", args: []string{"--in-cluster=false", "--version"}, wantOut: "irsa-webhook dev"},
		{name: "version alone", args: []string{"--version"}, wantOut: "irsa-webhook dev"},
		{name: "help alone is the top help", args: []string{"--help"}, wantOut: "Available Commands:"},
		{name: "help with flags is serve's", args: []string{"--port=1", "--help"}, wantOut: "irsa-webhook serve [flags]"},
		{name: "unknown flag", args: []string{"--in-cluster=false", "--frob"}, wantCode: exitUsage, wantErr: "unknown flag: --frob"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, "", tc.args...)
			if code != tc.wantCode {
				t.Fatalf("code %d, want %d; stderr %q", code, tc.wantCode, errOut)
			}
			if !strings.Contains(out, tc.wantOut) || !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("stdout %q (want %q), stderr %q (want %q)", out, tc.wantOut, errOut, tc.wantErr)
			}
		})
	}
}
