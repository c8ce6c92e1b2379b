package chart_test

import (
	"encoding/base64"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// testCA is a self-signed CA certificate (no key kept) for provided mode.
const testCA = `-----BEGIN CERTIFICATE-----
MIIBoDCCAUWgAwIBAgIUfjFDh6/laOl2uA1PTfDoanxLYQAwCgYIKoZIzj0EAwIw
JTEjMCEGA1UEAwwaaXJzYS13ZWJob29rIGNoYXJ0IHRlc3QgQ0EwHhcNMjYxMTI3
MTUxNzAwWhcNMzYxMTI0MTUxNzAwWjAlMSMwIQYDVQQDDBppcnNhLXdlYmhvb2sg
Y2hhcnQgdGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABGs3YYr+TYmh
FI57ygZU/M+FUYO4a4j60mcPy/0QhRbjfPBRVQMdq5z7ou+LroTibayJtSHPgoqJ
JWP4J7wS/52jUzBRMB0GA1UdDgQWBBT9bAGUTZDKoAdG/hpagnO+FCDiFDAfBgNV
HSMEGDAWgBT9bAGUTZDKoAdG/hpagnO+FCDiFDAPBgNVHRMBAf8EBTADAQH/MAoG
CCqGSM49BAMCA0kAMEYCIQDxNzOzaFdICPpTexUKTgdx0cgk2jtvJYeG/FzBXoyg
mwIhAPuMJkPM+NsjVuralq2yRZ7PMNi0HAFXCMRYg9QjGGNj
-----END CERTIFICATE-----
`

// valueSet is a named set of chart values the tests render.
type valueSet struct {
	name   string
	values values
}

// valueSets are the configurations every invariant is checked against.
func valueSets() []valueSet {
	return []valueSet{
		{"defaults", values{}},
		{"cert-manager", values{"certs": values{"mode": "cert-manager"}}},
		{"cert-manager with issuer", values{"certs": values{"mode": "cert-manager", "certManager": values{"issuerRef": values{"name": "corp-ca", "kind": "ClusterIssuer"}}}}},
		{"provided", values{"certs": values{"mode": "provided", "secretName": "corp-tls", "caBundle": testCA}}},
		{"opt-in", values{"webhook": values{"namespaceOptIn": values{"enabled": true, "labelValue": "yes"}}}},
		{"failurePolicy Fail", values{"webhook": values{"mutating": values{"failurePolicy": "Fail", "timeoutSeconds": 4}}}},
		{"trust check off", values{"trustCheck": values{"mode": "off"}}},
		{"IRSA role", values{"serviceAccount": values{"roleArn": "arn:aws:iam::123456789012:role/irsa-webhook"}}},
		{"everything set", everythingSet()},
		{"optional objects", values{"networkPolicy": values{"enabled": true}, "metrics": values{"serviceMonitor": values{"enabled": true}}}},
		{"trust check only", trustOnly},
	}
}

// trustOnly runs the trust check only, next to another pod-identity webhook (EKS's).
var trustOnly = values{"webhook": values{"mutating": values{"enabled": false}}}

// everythingSet sets every value that becomes a flag to something other than its default.
func everythingSet() values {
	return values{
		"injection": values{
			"annotationPrefix":    "irsa.example.com",
			"tokenAudience":       "sts.example.com",
			"tokenMountPath":      "/var/run/secrets/irsa",
			"tokenExpiration":     3600,
			"awsDefaultRegion":    "eu-west-1",
			"stsRegionalEndpoint": true,
			"allowedRoleAccounts": []string{"111111111111", "222222222222"},
			"configMap":           values{"enabled": true, "name": "kops-mapping"},
			"composeRoleArn":      true,
		},
		"webhook": values{
			"port":                        10250,
			"bindAddress":                 "0.0.0.0",
			"tlsCertFile":                 "/tls/serving.crt",
			"tlsKeyFile":                  "/tls/serving.key",
			"tlsMinVersion":               "1.3",
			"tlsCipherSuites":             []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
			"enableHTTP2":                 true,
			"excludedNamespaces":          []string{"kube-system", "monitoring"},
			"serviceAccountLookupTimeout": "2s",
			"shutdownGracePeriod":         "15s",
		},
		"logging":     values{"format": "console", "level": "debug"},
		"metrics":     values{"port": 9090, "secure": false},
		"healthProbe": values{"port": 9091},
		"trustCheck": values{
			"mode":                "enforce",
			"failClosed":          true,
			"detailedWarnings":    true,
			"timeout":             "2s",
			"oidcIssuerURL":       "https://oidc.example.com/id/ABC",
			"policyDir":           "/etc/irsa-webhook/policies",
			"iamCacheTTL":         "5m",
			"iamNegativeCacheTTL": "30s",
			"iamMaxConcurrency":   4,
			"iamRateLimit":        0.5,
			"iamRateBurst":        20,
		},
		"certs": values{
			"secretName":  "serving-tls",
			"dnsNames":    []string{"webhook.example.internal"},
			"validity":    "2160h",
			"renewBefore": "360h",
		},
		"extraArgs": []string{"--log-level=warn"},
	}
}

func TestLint(t *testing.T) {
	for _, vs := range valueSets() {
		t.Run(vs.name, func(t *testing.T) {
			if _, err := runHelm(t, "lint", "--strict", chartDir(t), "--namespace", namespace, "-f", valuesFile(t, vs.values)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestInvariants checks what must hold whatever the values.
func TestInvariants(t *testing.T) {
	for _, vs := range valueSets() {
		t.Run(vs.name, func(t *testing.T) {
			r := render(t, vs.values)
			for _, o := range r.Objects {
				if o.Kind == "ServiceMonitor" {
					continue // may live in another namespace
				}
				clusterScoped := slices.Contains([]string{"ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}, o.Kind)
				if want := namespace; !clusterScoped && o.Namespace != want {
					t.Errorf("%s/%s: namespace %q, want %q", o.Kind, o.Name, o.Namespace, want)
				}
				if clusterScoped && o.Namespace != "" {
					t.Errorf("%s/%s is cluster-scoped but has namespace %q", o.Kind, o.Name, o.Namespace)
				}
			}

			d := deployment(t, r)
			pod := d.Spec.Template
			if *d.Spec.Replicas != 2 {
				t.Errorf("replicas = %d, want 2", *d.Spec.Replicas)
			}
			sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
			if err != nil {
				t.Fatal(err)
			}
			if !sel.Matches(labelSet(pod.Labels)) {
				t.Errorf("Deployment selector %v does not match its pod labels %v", d.Spec.Selector, pod.Labels)
			}
			if pod.Spec.PriorityClassName != "system-cluster-critical" {
				t.Errorf("priorityClassName = %q", pod.Spec.PriorityClassName)
			}
			wantAffinity := &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
					Weight: 100,
					PodAffinityTerm: corev1.PodAffinityTerm{
						TopologyKey:   "kubernetes.io/hostname",
						LabelSelector: d.Spec.Selector,
					},
				}},
			}}
			equal(t, "affinity", pod.Spec.Affinity, wantAffinity)
			if pod.Spec.ServiceAccountName != fullname || !r.has("ServiceAccount", fullname) {
				t.Errorf("serviceAccountName = %q; want the rendered ServiceAccount %q", pod.Spec.ServiceAccountName, fullname)
			}
			wantPodSC := &corev1.PodSecurityContext{
				RunAsNonRoot:   ptrTo(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			}
			equal(t, "pod securityContext", pod.Spec.SecurityContext, wantPodSC)

			c := webhookContainer(t, r)
			wantSC := &corev1.SecurityContext{
				RunAsNonRoot:             ptrTo(true),
				ReadOnlyRootFilesystem:   ptrTo(true),
				AllowPrivilegeEscalation: ptrTo(false),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			}
			equal(t, "container securityContext", c.SecurityContext, wantSC)
			if c.Image != "ghcr.io/irsa-webhook/irsa-webhook:v0.1.0" {
				t.Errorf("image = %q, want the chart's appVersion as tag", c.Image)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("resources %v: want cpu and memory requests and a memory limit", c.Resources)
			}

			healthPort := containerPort(t, c, "healthz")
			if want := flagValues(t, c.Args)["health-probe-bind-address"]; want != ":"+itoa(healthPort) {
				t.Errorf("health port %d does not match --health-probe-bind-address=%s", healthPort, want)
			}
			for _, p := range []struct {
				name  string
				probe *corev1.Probe
				path  string
			}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
				if p.probe == nil || p.probe.HTTPGet == nil {
					t.Errorf("%s probe: want an HTTP GET", p.name)
					continue
				}
				if p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port != intstr.FromString("healthz") {
					t.Errorf("%s probe: GET %s on %s, want %s on healthz", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path)
				}
			}
			if c.Lifecycle != nil {
				t.Errorf("lifecycle = %+v; the binary drains itself (--shutdown-delay), no preStop hook is needed", c.Lifecycle)
			}
			e, ok := env(c, "POD_NAMESPACE")
			if !ok || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
				t.Errorf("env POD_NAMESPACE = %+v, want the downward API's metadata.namespace", e)
			}
			tlsDir := strings.TrimSuffix(flagValues(t, c.Args)["tls-cert-file"], "/"+lastElem(flagValues(t, c.Args)["tls-cert-file"]))
			if m := mount(t, c, "tls"); m.MountPath != tlsDir {
				t.Errorf("tls volume mounted at %q, want %q (the directory of --tls-cert-file)", m.MountPath, tlsDir)
			}

			var pdb policyv1.PodDisruptionBudget
			r.get(t, "PodDisruptionBudget", fullname, &pdb)
			equal(t, "PodDisruptionBudget minAvailable", pdb.Spec.MinAvailable, ptrTo(intstr.FromInt32(1)))
			equal(t, "PodDisruptionBudget selector", pdb.Spec.Selector, d.Spec.Selector)

			var svc corev1.Service
			r.get(t, "Service", fullname, &svc)
			if !labelSet(svc.Spec.Selector).AsSelector().Matches(labelSet(pod.Labels)) {
				t.Errorf("Service selector %v does not select the pods %v", svc.Spec.Selector, pod.Labels)
			}
			https := servicePort(t, svc, "https")
			if https.Port != 443 || https.TargetPort != intstr.FromString("webhook") {
				t.Errorf("Service port https = %d -> %s, want 443 -> webhook", https.Port, https.TargetPort.String())
			}
			if got, want := containerPort(t, c, "webhook"), flagValues(t, c.Args)["port"]; itoa(got) != want {
				t.Errorf("container port webhook = %d, --port=%s", got, want)
			}
			metricsPort := servicePort(t, svc, "metrics")
			if got := flagValues(t, c.Args)["metrics-bind-address"]; got != ":"+itoa(metricsPort.Port) {
				t.Errorf("Service metrics port %d does not match --metrics-bind-address=%s", metricsPort.Port, got)
			}

			var clientConfigs []admissionregistrationv1.WebhookClientConfig
			if r.has("MutatingWebhookConfiguration", fullname) {
				clientConfigs = append(clientConfigs, mutating(t, r).ClientConfig)
			}
			if r.has("ValidatingWebhookConfiguration", fullname) {
				clientConfigs = append(clientConfigs, validating(t, r).ClientConfig)
			}
			if len(clientConfigs) == 0 {
				t.Error("no webhook configuration rendered")
			}
			for _, cc := range clientConfigs {
				if cc.Service == nil || cc.Service.Name != svc.Name || cc.Service.Namespace != namespace || *cc.Service.Port != https.Port {
					t.Errorf("webhook clientConfig %+v does not call Service %s/%s port %d", cc.Service, namespace, svc.Name, https.Port)
				}
			}
		})
	}
}

func TestArgs(t *testing.T) {
	// The arguments with default values, each checked against the binary's own default or its
	// chartSpecific value by TestChartDefaultsMatchBinary: the cases below say what values
	// change in them.
	defaults := args(t, render(t, values{}))
	if len(defaults) < 2 || defaults[0] != "serve" || len(flagValues(t, defaults)) != len(defaults)-1 {
		t.Fatalf("default args are not serve followed by each flag once: %q", defaults)
	}
	without := func(prefixes ...string) []string {
		return slices.DeleteFunc(slices.Clone(defaults), func(a string) bool {
			return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(a, p) })
		})
	}
	tests := []struct {
		name   string
		values values
		want   []string
	}{
		{
			name:   "everything set",
			values: everythingSet(),
			want: []string{
				"serve",
				"--annotation-prefix=irsa.example.com",
				"--token-audience=sts.example.com",
				"--token-mount-path=/var/run/secrets/irsa",
				"--token-expiration=3600",
				"--aws-default-region=eu-west-1",
				"--sts-regional-endpoint=true",
				"--allowed-role-accounts=111111111111,222222222222",
				"--watch-config-map=true",
				"--config-map-name=kops-mapping",
				"--config-map-namespace=" + namespace,
				"--compose-role-arn=true",
				"--mutate-pods=true",
				"--port=10250",
				"--bind-address=0.0.0.0",
				"--tls-cert-file=/tls/serving.crt",
				"--tls-key-file=/tls/serving.key",
				"--tls-min-version=1.3",
				"--tls-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
				"--enable-http2=true",
				"--metrics-bind-address=:9090",
				"--metrics-secure=false",
				"--enable-profiling=false",
				"--health-probe-bind-address=:9091",
				"--log-format=console",
				"--log-level=debug",
				"--excluded-namespaces=kube-system,monitoring," + namespace,
				"--service-account-lookup-timeout=2s",
				"--shutdown-grace-period=15s",
				"--shutdown-delay=5s",
				"--trust-check=enforce",
				"--trust-check-fail-closed=true",
				"--trust-check-detailed-warnings=true",
				"--trust-check-timeout=2s",
				"--oidc-issuer-url=https://oidc.example.com/id/ABC",
				"--trust-policy-dir=/etc/irsa-webhook/policies",
				"--iam-cache-ttl=5m",
				"--iam-negative-cache-ttl=30s",
				"--iam-max-concurrency=4",
				"--iam-rate-limit=0.5",
				"--iam-rate-burst=20",
				"--cert-mode=self-managed",
				"--cert-secret-name=serving-tls",
				"--cert-namespace=" + namespace,
				"--cert-service-name=" + fullname,
				"--cert-dns-names=webhook.example.internal",
				"--mutating-webhook-configuration=" + fullname,
				"--validating-webhook-configuration=" + fullname,
				"--cert-validity=2160h",
				"--cert-renew-before=360h",
				"--log-level=warn", // extraArgs come last, so they win
			},
		},
		{
			name:   "release namespace listed already",
			values: values{"webhook": values{"excludedNamespaces": []string{namespace, "kube-system"}}},
			want:   replaced(t, defaults, "--excluded-namespaces="+namespace, "--excluded-namespaces="+namespace+",kube-system"),
		},
		{
			name:   "kube-system excluded on request",
			values: values{"webhook": values{"excludedNamespaces": []string{"kube-system"}}},
			want:   replaced(t, defaults, "--excluded-namespaces="+namespace, "--excluded-namespaces=kube-system,"+namespace),
		},
		{
			name:   "trust check off",
			values: values{"trustCheck": values{"mode": "off", "failClosed": true}},
			want:   replaced(t, without("--trust-check-", "--iam-", "--validating-webhook-configuration="), "--trust-check=warn", "--trust-check=off"),
		},
		{
			name:   "cert-manager",
			values: values{"certs": values{"mode": "cert-manager"}},
			want:   append(without("--cert-", "--mutating-webhook-configuration=", "--validating-webhook-configuration="), "--cert-mode=file"),
		},
		{
			name:   "provided",
			values: values{"certs": values{"mode": "provided", "secretName": "corp-tls", "caBundle": testCA}},
			want:   append(without("--cert-", "--mutating-webhook-configuration=", "--validating-webhook-configuration="), "--cert-mode=file"),
		},
		{
			name:   "metrics off",
			values: values{"metrics": values{"enabled": false}},
			want:   replaced(t, defaults, "--metrics-bind-address=:8080", "--metrics-bind-address=0"),
		},
		{
			name:   "trust check only",
			values: values{"webhook": values{"mutating": values{"enabled": false}}},
			want:   replaced(t, without("--mutating-webhook-configuration="), "--mutate-pods=true", "--mutate-pods=false"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			equal(t, "args", args(t, render(t, tt.values)), tt.want)
		})
	}
}

func TestWebhookConfigurations(t *testing.T) {
	excluded := func(ns ...string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: ns}
	}
	skipLabel := func(prefix string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: prefix + "/skip-pod-identity-webhook", Operator: metav1.LabelSelectorOpDoesNotExist}}}
	}
	tests := []struct {
		name              string
		values            values
		namespaceSelector *metav1.LabelSelector
		objectSelector    *metav1.LabelSelector
		failurePolicy     admissionregistrationv1.FailurePolicyType
		timeoutSeconds    int32
		validating        bool
	}{
		{
			name:              "defaults",
			values:            values{},
			namespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{excluded(namespace)}},
			objectSelector:    skipLabel("eks.amazonaws.com"),
			failurePolicy:     admissionregistrationv1.Ignore,
			timeoutSeconds:    10,
			validating:        true,
		},
		{
			name:   "opt-in",
			values: values{"webhook": values{"namespaceOptIn": values{"enabled": true}}},
			namespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				excluded(namespace),
				{Key: "irsa-webhook.io/inject", Operator: metav1.LabelSelectorOpIn, Values: []string{"enabled"}},
			}},
			objectSelector: skipLabel("eks.amazonaws.com"),
			failurePolicy:  admissionregistrationv1.Ignore,
			timeoutSeconds: 10,
			validating:     true,
		},
		{
			name:   "opt-in with own label",
			values: values{"webhook": values{"namespaceOptIn": values{"enabled": true, "labelKey": "example.com/aws", "labelValue": "true"}}},
			namespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				excluded(namespace),
				{Key: "example.com/aws", Operator: metav1.LabelSelectorOpIn, Values: []string{"true"}},
			}},
			objectSelector: skipLabel("eks.amazonaws.com"),
			failurePolicy:  admissionregistrationv1.Ignore,
			timeoutSeconds: 10,
			validating:     true,
		},
		{
			name:              "failurePolicy Fail",
			values:            values{"webhook": values{"mutating": values{"failurePolicy": "Fail", "timeoutSeconds": 4}}},
			namespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{excluded(namespace)}},
			objectSelector:    skipLabel("eks.amazonaws.com"),
			failurePolicy:     admissionregistrationv1.Fail,
			timeoutSeconds:    4,
			validating:        true,
		},
		{
			name:              "trust check off",
			values:            values{"trustCheck": values{"mode": "off"}},
			namespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{excluded(namespace)}},
			objectSelector:    skipLabel("eks.amazonaws.com"),
			failurePolicy:     admissionregistrationv1.Ignore,
			timeoutSeconds:    10,
			validating:        false,
		},
		{
			name:              "kube-system excluded on request",
			values:            values{"webhook": values{"excludedNamespaces": []string{"kube-system"}}},
			namespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{excluded("kube-system", namespace)}},
			objectSelector:    skipLabel("eks.amazonaws.com"),
			failurePolicy:     admissionregistrationv1.Ignore,
			timeoutSeconds:    10,
			validating:        true,
		},
		{
			name:              "own prefix and namespaces",
			values:            values{"injection": values{"annotationPrefix": "irsa.example.com"}, "webhook": values{"excludedNamespaces": []string{"kube-system", "monitoring"}}},
			namespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{excluded("kube-system", "monitoring", namespace)}},
			objectSelector:    skipLabel("irsa.example.com"),
			failurePolicy:     admissionregistrationv1.Ignore,
			timeoutSeconds:    10,
			validating:        true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := render(t, tt.values)
			m := mutating(t, r)
			wantRules := []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
					Scope: ptrTo(admissionregistrationv1.NamespacedScope),
				},
			}}
			equal(t, "pod webhook rules", m.Rules, wantRules)
			equal(t, "pod webhook service", m.ClientConfig.Service, &admissionregistrationv1.ServiceReference{
				Namespace: namespace, Name: fullname, Path: ptrTo("/mutate-v1-pod"), Port: ptrTo(int32(443)),
			})
			equal(t, "pod webhook admissionReviewVersions", m.AdmissionReviewVersions, []string{"v1"})
			equal(t, "pod webhook sideEffects", m.SideEffects, ptrTo(admissionregistrationv1.SideEffectClassNone))
			equal(t, "pod webhook reinvocationPolicy", m.ReinvocationPolicy, ptrTo(admissionregistrationv1.IfNeededReinvocationPolicy))
			equal(t, "pod webhook failurePolicy", m.FailurePolicy, &tt.failurePolicy)
			equal(t, "pod webhook timeoutSeconds", m.TimeoutSeconds, &tt.timeoutSeconds)
			equal(t, "pod webhook namespaceSelector", m.NamespaceSelector, tt.namespaceSelector)
			equal(t, "pod webhook objectSelector", m.ObjectSelector, tt.objectSelector)

			if !tt.validating {
				if r.has("ValidatingWebhookConfiguration", fullname) {
					t.Fatal("ValidatingWebhookConfiguration rendered with the trust check off")
				}
				return
			}
			v := validating(t, r)
			equal(t, "trust check rules", v.Rules, []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"serviceaccounts"},
					Scope: ptrTo(admissionregistrationv1.NamespacedScope),
				},
			}})
			equal(t, "trust check service", v.ClientConfig.Service, &admissionregistrationv1.ServiceReference{
				Namespace: namespace, Name: fullname, Path: ptrTo("/validate-v1-serviceaccount"), Port: ptrTo(int32(443)),
			})
			equal(t, "trust check admissionReviewVersions", v.AdmissionReviewVersions, []string{"v1"})
			equal(t, "trust check sideEffects", v.SideEffects, ptrTo(admissionregistrationv1.SideEffectClassNoneOnDryRun))
			equal(t, "trust check failurePolicy", v.FailurePolicy, ptrTo(admissionregistrationv1.Ignore))
			equal(t, "trust check timeoutSeconds", v.TimeoutSeconds, ptrTo(int32(5)))
			equal(t, "trust check namespaceSelector", v.NamespaceSelector, tt.namespaceSelector)
		})
	}
}

func TestCertModes(t *testing.T) {
	tests := []struct {
		name   string
		values values
		// secret is the Secret the pods read or the webhook manages.
		secret string
		// caBundle is what both webhook configurations carry; annotation is their
		// cert-manager.io/inject-ca-from.
		caBundle   []byte
		annotation string
		// certManager lists the cert-manager objects, as Kind/name.
		certManager []string
		issuer      string // issuerRef kind/name of the serving Certificate
	}{
		{name: "self-managed", values: values{}, secret: fullname + "-tls"},
		{name: "self-managed with own secret", values: values{"certs": values{"secretName": "serving"}}, secret: "serving"},
		{
			name:        "cert-manager",
			values:      values{"certs": values{"mode": "cert-manager"}},
			secret:      fullname + "-tls",
			annotation:  namespace + "/" + fullname + "-serving",
			certManager: []string{"Certificate/" + fullname + "-ca", "Certificate/" + fullname + "-serving", "Issuer/" + fullname + "-ca", "Issuer/" + fullname + "-selfsigned"},
			issuer:      "Issuer/" + fullname + "-ca",
		},
		{
			name:        "cert-manager with issuer",
			values:      values{"certs": values{"mode": "cert-manager", "certManager": values{"issuerRef": values{"name": "corp-ca", "kind": "ClusterIssuer"}}}},
			secret:      fullname + "-tls",
			annotation:  namespace + "/" + fullname + "-serving",
			certManager: []string{"Certificate/" + fullname + "-serving"},
			issuer:      "ClusterIssuer/corp-ca",
		},
		{
			name:     "provided PEM",
			values:   values{"certs": values{"mode": "provided", "secretName": "corp-tls", "caBundle": testCA}},
			secret:   "corp-tls",
			caBundle: []byte(testCA),
		},
		{
			name:     "provided base64",
			values:   values{"certs": values{"mode": "provided", "secretName": "corp-tls", "caBundle": base64.StdEncoding.EncodeToString([]byte(testCA))}},
			secret:   "corp-tls",
			caBundle: []byte(testCA),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := render(t, tt.values)
			certValues, _ := tt.values["certs"].(values)
			mode, _ := certValues["mode"].(string)
			if mode == "" {
				mode = "self-managed"
			}
			d := deployment(t, r)
			c := webhookContainer(t, r)
			tls := volume(t, d, "tls")
			flags := flagValues(t, c.Args)
			if mode == "self-managed" {
				if tls.EmptyDir == nil || mount(t, c, "tls").ReadOnly {
					t.Errorf("tls volume %+v: want a writable emptyDir for the certificate the webhook writes", tls.VolumeSource)
				}
				if flags["cert-mode"] != "self-managed" || flags["cert-secret-name"] != tt.secret {
					t.Errorf("--cert-mode=%s --cert-secret-name=%s, want self-managed and %s", flags["cert-mode"], flags["cert-secret-name"], tt.secret)
				}
				var s corev1.Secret
				r.get(t, "Secret", tt.secret, &s)
				if len(s.Data) != 0 || len(s.StringData) != 0 || s.Type != corev1.SecretTypeOpaque {
					t.Errorf("placeholder Secret has type %q and data %v: want an empty Opaque Secret, so that upgrades keep what the webhook wrote", s.Type, s.Data)
				}
			} else {
				want := &corev1.SecretVolumeSource{SecretName: tt.secret, Items: []corev1.KeyToPath{{Key: "tls.crt", Path: "tls.crt"}, {Key: "tls.key", Path: "tls.key"}}}
				equal(t, "tls volume", tls.Secret, want)
				if !mount(t, c, "tls").ReadOnly {
					t.Error("tls volume mounted writable")
				}
				if flags["cert-mode"] != "file" {
					t.Errorf("--cert-mode=%s, want file", flags["cert-mode"])
				}
				if r.has("Secret", tt.secret) {
					t.Errorf("Secret %s rendered; in %s mode it is not the chart's", tt.secret, mode)
				}
			}
			if got := r.has("Role", fullname+"-certs"); got != (mode == "self-managed") {
				t.Errorf("Role for the certificate Secret rendered = %v in %s mode", got, mode)
			}

			var mwc admissionregistrationv1.MutatingWebhookConfiguration
			r.get(t, "MutatingWebhookConfiguration", fullname, &mwc)
			var vwc admissionregistrationv1.ValidatingWebhookConfiguration
			r.get(t, "ValidatingWebhookConfiguration", fullname, &vwc)
			for _, cfg := range []struct {
				kind        string
				annotations map[string]string
				caBundle    []byte
			}{
				{"MutatingWebhookConfiguration", mwc.Annotations, mwc.Webhooks[0].ClientConfig.CABundle},
				{"ValidatingWebhookConfiguration", vwc.Annotations, vwc.Webhooks[0].ClientConfig.CABundle},
			} {
				if !reflect.DeepEqual(cfg.caBundle, tt.caBundle) {
					t.Errorf("%s caBundle = %q, want %q", cfg.kind, cfg.caBundle, tt.caBundle)
				}
				if got := cfg.annotations["cert-manager.io/inject-ca-from"]; got != tt.annotation {
					t.Errorf("%s inject-ca-from = %q, want %q", cfg.kind, got, tt.annotation)
				}
			}

			var got []string
			for _, o := range r.Objects {
				if strings.HasPrefix(o.APIVersion, "cert-manager.io/") {
					got = append(got, o.Kind+"/"+o.Name)
				}
			}
			slices.Sort(got)
			equal(t, "cert-manager objects", got, tt.certManager)
			if tt.issuer != "" {
				var cert struct {
					Spec struct {
						SecretName  string   `json:"secretName"`
						DNSNames    []string `json:"dnsNames"`
						Duration    string   `json:"duration"`
						RenewBefore string   `json:"renewBefore"`
						IssuerRef   struct {
							Kind string `json:"kind"`
							Name string `json:"name"`
						} `json:"issuerRef"`
					} `json:"spec"`
				}
				o, _ := r.find("Certificate", fullname+"-serving")
				if err := yaml.Unmarshal(o.Doc, &cert); err != nil {
					t.Fatal(err)
				}
				s := cert.Spec
				if s.SecretName != tt.secret || s.Duration != "8760h" || s.RenewBefore != "720h" || s.IssuerRef.Kind+"/"+s.IssuerRef.Name != tt.issuer {
					t.Errorf("serving Certificate spec %+v: want secret %s, 8760h, 720h, issuer %s", s, tt.secret, tt.issuer)
				}
				equal(t, "serving Certificate dnsNames", s.DNSNames, []string{fullname, fullname + "." + namespace, fullname + "." + namespace + ".svc"})
			}
		})
	}
}

func TestRBAC(t *testing.T) {
	serviceAccounts := rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"get", "list", "watch"}}
	events := rbacv1.PolicyRule{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}}
	// The discovery document only: the webhook never reads the signing keys (/openid/v1/jwks).
	discovery := rbacv1.PolicyRule{NonResourceURLs: []string{"/.well-known/openid-configuration"}, Verbs: []string{"get"}}
	// The caBundle is written with a JSON patch: no update.
	mwc := rbacv1.PolicyRule{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations"}, ResourceNames: []string{fullname}, Verbs: []string{"get", "patch"}}
	vwc := rbacv1.PolicyRule{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingwebhookconfigurations"}, ResourceNames: []string{fullname}, Verbs: []string{"get", "patch"}}
	// controller-runtime's metrics filter authenticates and authorizes each /metrics caller.
	tokenReviews := rbacv1.PolicyRule{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}}
	accessReviews := rbacv1.PolicyRule{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}}
	secret := func(name string) []rbacv1.PolicyRule {
		return []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{name}, Verbs: []string{"get", "update"}}}
	}
	tests := []struct {
		name        string
		values      values
		serviceAcct string
		clusterRole []rbacv1.PolicyRule
		role        []rbacv1.PolicyRule // nil: no Role
	}{
		{name: "defaults", values: values{}, serviceAcct: fullname, clusterRole: []rbacv1.PolicyRule{serviceAccounts, events, discovery, tokenReviews, accessReviews, mwc, vwc}, role: secret(fullname + "-tls")},
		{name: "trust check off", values: values{"trustCheck": values{"mode": "off"}}, serviceAcct: fullname, clusterRole: []rbacv1.PolicyRule{serviceAccounts, events, tokenReviews, accessReviews, mwc}, role: secret(fullname + "-tls")},
		{name: "issuer given", values: values{"trustCheck": values{"oidcIssuerURL": "https://oidc.example.com"}}, serviceAcct: fullname, clusterRole: []rbacv1.PolicyRule{serviceAccounts, events, tokenReviews, accessReviews, mwc, vwc}, role: secret(fullname + "-tls")},
		{name: "cert-manager", values: values{"certs": values{"mode": "cert-manager"}}, serviceAcct: fullname, clusterRole: []rbacv1.PolicyRule{serviceAccounts, events, discovery, tokenReviews, accessReviews}},
		{name: "provided", values: values{"certs": values{"mode": "provided", "secretName": "corp-tls", "caBundle": testCA}}, serviceAcct: fullname, clusterRole: []rbacv1.PolicyRule{serviceAccounts, events, discovery, tokenReviews, accessReviews}},
		{name: "existing ServiceAccount", values: values{"serviceAccount": values{"create": false, "name": "platform-sa"}, "certs": values{"secretName": "serving"}}, serviceAcct: "platform-sa", clusterRole: []rbacv1.PolicyRule{serviceAccounts, events, discovery, tokenReviews, accessReviews, mwc, vwc}, role: secret("serving")},
		{name: "metrics over plain HTTP", values: values{"metrics": values{"secure": false}}, serviceAcct: fullname, clusterRole: []rbacv1.PolicyRule{serviceAccounts, events, discovery, mwc, vwc}, role: secret(fullname + "-tls")},
		{name: "metrics off", values: values{"metrics": values{"enabled": false}}, serviceAcct: fullname, clusterRole: []rbacv1.PolicyRule{serviceAccounts, events, discovery, mwc, vwc}, role: secret(fullname + "-tls")},
		{name: "trust check only", values: trustOnly, serviceAcct: fullname, clusterRole: []rbacv1.PolicyRule{serviceAccounts, events, discovery, tokenReviews, accessReviews, vwc}, role: secret(fullname + "-tls")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := render(t, tt.values)
			equal(t, "ClusterRole rules", clusterRole(t, r).Rules, tt.clusterRole)
			subjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: tt.serviceAcct, Namespace: namespace}}
			var crb rbacv1.ClusterRoleBinding
			r.get(t, "ClusterRoleBinding", fullname, &crb)
			equal(t, "ClusterRoleBinding roleRef", crb.RoleRef, rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: fullname})
			equal(t, "ClusterRoleBinding subjects", crb.Subjects, subjects)
			if got := deployment(t, r).Spec.Template.Spec.ServiceAccountName; got != tt.serviceAcct {
				t.Errorf("pods run as %q, want %q", got, tt.serviceAcct)
			}
			if got := r.has("ServiceAccount", tt.serviceAcct); got != (tt.serviceAcct == fullname) {
				t.Errorf("ServiceAccount %s rendered = %v", tt.serviceAcct, got)
			}
			if tt.role == nil {
				if r.has("Role", fullname+"-certs") || r.has("RoleBinding", fullname+"-certs") {
					t.Error("Role for the certificate Secret rendered outside self-managed mode")
				}
				return
			}
			var role rbacv1.Role
			r.get(t, "Role", fullname+"-certs", &role)
			equal(t, "Role rules", role.Rules, tt.role)
			var rb rbacv1.RoleBinding
			r.get(t, "RoleBinding", fullname+"-certs", &rb)
			equal(t, "RoleBinding roleRef", rb.RoleRef, rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: fullname + "-certs"})
			equal(t, "RoleBinding subjects", rb.Subjects, subjects)
		})
	}
}

// TestMetricsAccess: with secure metrics (the default) the chart renders a ClusterRole that
// lets its subjects `get` /metrics, and the ServiceMonitor scrapes over HTTPS with a bearer
// token, verifying the webhook's certificate with the chart's CA; with metrics.secure=false
// there is no reader role and the scrape is plain HTTP.
func TestMetricsAccess(t *testing.T) {
	type endpoint struct {
		Port            string         `json:"port"`
		Scheme          string         `json:"scheme"`
		BearerTokenFile string         `json:"bearerTokenFile"`
		TLSConfig       map[string]any `json:"tlsConfig"`
	}
	defaultTLS := map[string]any{
		"serverName": fullname + "." + namespace + ".svc",
		"ca":         map[string]any{"secret": map[string]any{"name": fullname + "-tls", "key": "ca.crt"}},
	}
	tests := []struct {
		name   string
		values values
		reader bool
		want   endpoint
	}{
		{"defaults: https with a token", values{"metrics": values{"serviceMonitor": values{"enabled": true}}}, true,
			endpoint{Port: "metrics", Scheme: "https", BearerTokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token", TLSConfig: defaultTLS}},
		{"own tlsConfig", values{"metrics": values{"serviceMonitor": values{"enabled": true, "tlsConfig": values{"insecureSkipVerify": true}}}}, true,
			endpoint{Port: "metrics", Scheme: "https", BearerTokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token", TLSConfig: map[string]any{"insecureSkipVerify": true}}},
		{"plain HTTP", values{"metrics": values{"secure": false, "serviceMonitor": values{"enabled": true}}}, false,
			endpoint{Port: "metrics", Scheme: "http"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := render(t, tt.values)
			if got := r.has("ClusterRole", fullname+"-metrics-reader"); got != tt.reader {
				t.Fatalf("ClusterRole %s-metrics-reader rendered = %v, want %v", fullname, got, tt.reader)
			}
			if tt.reader {
				var reader rbacv1.ClusterRole
				r.get(t, "ClusterRole", fullname+"-metrics-reader", &reader)
				equal(t, "metrics reader rules", reader.Rules, []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}})
			}
			o, ok := r.find("ServiceMonitor", fullname)
			if !ok {
				t.Fatal("no ServiceMonitor")
			}
			var sm struct {
				Spec struct {
					Endpoints []endpoint `json:"endpoints"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal(o.Doc, &sm); err != nil {
				t.Fatal(err)
			}
			if len(sm.Spec.Endpoints) != 1 {
				t.Fatalf("ServiceMonitor endpoints %+v, want one", sm.Spec.Endpoints)
			}
			equal(t, "ServiceMonitor endpoint", sm.Spec.Endpoints[0], tt.want)
		})
	}
}

func TestOwnIRSARole(t *testing.T) {
	const role = "arn:aws:iam::123456789012:role/irsa-webhook"
	tests := []struct {
		name    string
		values  values
		prefix  string
		wantEnv []corev1.EnvVar // besides POD_NAMESPACE
	}{
		{
			name:   "role",
			values: values{"serviceAccount": values{"roleArn": role, "annotations": values{"team": "platform"}}},
			prefix: "eks.amazonaws.com",
			wantEnv: []corev1.EnvVar{
				{Name: "AWS_ROLE_ARN", Value: role},
				{Name: "AWS_WEB_IDENTITY_TOKEN_FILE", Value: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"},
			},
		},
		{
			name: "role, prefix, region and regional STS",
			values: values{
				"serviceAccount": values{"roleArn": role},
				"injection":      values{"annotationPrefix": "irsa.example.com", "tokenMountPath": "/var/run/aws", "awsDefaultRegion": "eu-west-1", "stsRegionalEndpoint": true},
			},
			prefix: "irsa.example.com",
			wantEnv: []corev1.EnvVar{
				{Name: "AWS_ROLE_ARN", Value: role},
				{Name: "AWS_WEB_IDENTITY_TOKEN_FILE", Value: "/var/run/aws/token"},
				{Name: "AWS_REGION", Value: "eu-west-1"},
				{Name: "AWS_DEFAULT_REGION", Value: "eu-west-1"},
				{Name: "AWS_STS_REGIONAL_ENDPOINTS", Value: "regional"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := render(t, tt.values)
			var sa corev1.ServiceAccount
			r.get(t, "ServiceAccount", fullname, &sa)
			if got := sa.Annotations[tt.prefix+"/role-arn"]; got != role {
				t.Errorf("ServiceAccount annotation %s/role-arn = %q, want %q (annotations %v)", tt.prefix, got, role, sa.Annotations)
			}
			d := deployment(t, r)
			if got := d.Spec.Template.Labels[tt.prefix+"/skip-pod-identity-webhook"]; got != "true" {
				t.Errorf("pod label %s/skip-pod-identity-webhook = %q, want \"true\"", tt.prefix, got)
			}
			c := webhookContainer(t, r)
			equal(t, "env", c.Env[1:], tt.wantEnv)
			token := volume(t, d, "aws-iam-token")
			wantToken := &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: "sts.amazonaws.com", ExpirationSeconds: ptrTo(int64(86400)), Path: "token",
			}}}}
			equal(t, "token volume", token.Projected, wantToken)
			m := mount(t, c, "aws-iam-token")
			if want := strings.TrimSuffix(tt.wantEnv[1].Value, "/token"); m.MountPath != want || !m.ReadOnly {
				t.Errorf("token mount %+v, want read-only at %s", m, want)
			}
		})
	}

	t.Run("no role", func(t *testing.T) {
		r := render(t, values{})
		var sa corev1.ServiceAccount
		r.get(t, "ServiceAccount", fullname, &sa)
		if len(sa.Annotations) != 0 {
			t.Errorf("ServiceAccount annotations = %v, want none", sa.Annotations)
		}
		c := webhookContainer(t, r)
		if len(c.Env) != 1 {
			t.Errorf("env = %v, want only POD_NAMESPACE", c.Env)
		}
		if _, ok := deployment(t, r).Spec.Template.Labels["eks.amazonaws.com/skip-pod-identity-webhook"]; ok {
			t.Error("pod labelled to skip pod identity without a role of its own")
		}
	})
}

func TestOptionalObjects(t *testing.T) {
	tests := []struct {
		name           string
		values         values
		networkPolicy  bool
		serviceMonitor string // namespace; empty: none
		metricsPort    bool
	}{
		{name: "defaults", values: values{}, metricsPort: true},
		{name: "network policy", values: values{"networkPolicy": values{"enabled": true}}, networkPolicy: true, metricsPort: true},
		{name: "service monitor", values: values{"metrics": values{"serviceMonitor": values{"enabled": true}}}, serviceMonitor: namespace, metricsPort: true},
		{name: "service monitor elsewhere", values: values{"metrics": values{"serviceMonitor": values{"enabled": true, "namespace": "monitoring"}}}, serviceMonitor: "monitoring", metricsPort: true},
		{name: "metrics off", values: values{"metrics": values{"enabled": false, "serviceMonitor": values{"enabled": true}}, "networkPolicy": values{"enabled": true}}, networkPolicy: true},
		{name: "no PodDisruptionBudget", values: values{"podDisruptionBudget": values{"enabled": false}}, metricsPort: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := render(t, tt.values)
			if got := r.has("NetworkPolicy", fullname); got != tt.networkPolicy {
				t.Fatalf("NetworkPolicy rendered = %v, want %v", got, tt.networkPolicy)
			}
			if tt.networkPolicy {
				var np networkingv1.NetworkPolicy
				r.get(t, "NetworkPolicy", fullname, &np)
				ports := []networkingv1.NetworkPolicyPort{{Port: ptrTo(intstr.FromInt32(9443)), Protocol: ptrTo(corev1.ProtocolTCP)}}
				if tt.metricsPort {
					ports = append(ports, networkingv1.NetworkPolicyPort{Port: ptrTo(intstr.FromInt32(8080)), Protocol: ptrTo(corev1.ProtocolTCP)})
				}
				equal(t, "NetworkPolicy ingress", np.Spec.Ingress, []networkingv1.NetworkPolicyIngressRule{{Ports: ports}})
				if len(np.Spec.Egress) != 2 || len(np.Spec.PolicyTypes) != 2 {
					t.Errorf("NetworkPolicy egress %v, policyTypes %v: want the two default egress rules and both policy types", np.Spec.Egress, np.Spec.PolicyTypes)
				}
			}
			sm, ok := r.find("ServiceMonitor", fullname)
			if ok != (tt.serviceMonitor != "") || (ok && sm.Namespace != tt.serviceMonitor) {
				t.Errorf("ServiceMonitor rendered = %v in %q, want namespace %q", ok, sm.Namespace, tt.serviceMonitor)
			}
			var svc corev1.Service
			r.get(t, "Service", fullname, &svc)
			hasMetrics := slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "metrics" })
			if hasMetrics != tt.metricsPort {
				t.Errorf("Service metrics port = %v, want %v", hasMetrics, tt.metricsPort)
			}
			_, pdb := tt.values["podDisruptionBudget"]
			if r.has("PodDisruptionBudget", fullname) == pdb {
				t.Errorf("PodDisruptionBudget rendered = %v", !pdb)
			}
		})
	}
}

// TestPodSettings checks the values that go straight into the pod spec.
func TestPodSettings(t *testing.T) {
	r := render(t, values{
		"replicaCount":      3,
		"image":             values{"repository": "registry.example.com/irsa", "digest": "sha256:" + strings.Repeat("ab", 32), "pullPolicy": "Always"},
		"imagePullSecrets":  []values{{"name": "registry"}},
		"podAnnotations":    values{"example.com/a": "1"},
		"podLabels":         values{"team": "platform"},
		"priorityClassName": "",
		"nodeSelector":      values{"node-role": "infra"},
		"tolerations":       []values{{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}},
		"affinity":          values{"nodeAffinity": values{"requiredDuringSchedulingIgnoredDuringExecution": values{"nodeSelectorTerms": []values{{"matchExpressions": []values{{"key": "zone", "operator": "In", "values": []string{"a"}}}}}}}},
		"hostNetwork":       true,
		"extraEnv":          []values{{"name": "AWS_REGION", "value": "eu-west-1"}},
		"extraVolumes":      []values{{"name": "policies", "configMap": values{"name": "trust-policies"}}},
		"extraVolumeMounts": []values{{"name": "policies", "mountPath": "/etc/irsa-webhook/policies", "readOnly": true}},
	})
	d := deployment(t, r)
	p := d.Spec.Template.Spec
	c := webhookContainer(t, r)
	checks := []struct {
		what      string
		got, want any
	}{
		{"replicas", *d.Spec.Replicas, int32(3)},
		{"image", c.Image, "registry.example.com/irsa@sha256:" + strings.Repeat("ab", 32)},
		{"imagePullPolicy", c.ImagePullPolicy, corev1.PullAlways},
		{"imagePullSecrets", p.ImagePullSecrets, []corev1.LocalObjectReference{{Name: "registry"}}},
		{"podAnnotations", d.Spec.Template.Annotations, map[string]string{"example.com/a": "1"}},
		{"podLabels", d.Spec.Template.Labels["team"], "platform"},
		{"priorityClassName", p.PriorityClassName, ""},
		{"nodeSelector", p.NodeSelector, map[string]string{"kubernetes.io/os": "linux", "node-role": "infra"}}, // Helm merges maps
		{"tolerations", p.Tolerations, []corev1.Toleration{{Key: "infra", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}},
		{"affinity replaces the default", p.Affinity.PodAntiAffinity == nil && p.Affinity.NodeAffinity != nil, true},
		{"hostNetwork", p.HostNetwork, true},
		{"dnsPolicy", p.DNSPolicy, corev1.DNSClusterFirstWithHostNet},
		{"extraEnv", c.Env[len(c.Env)-1], corev1.EnvVar{Name: "AWS_REGION", Value: "eu-west-1"}},
		{"extraVolumes", volume(t, d, "policies").ConfigMap.Name, "trust-policies"},
		{"extraVolumeMounts", mount(t, c, "policies").MountPath, "/etc/irsa-webhook/policies"},
	}
	for _, c := range checks {
		equal(t, c.what, c.got, c.want)
	}

	var pdb policyv1.PodDisruptionBudget
	r.get(t, "PodDisruptionBudget", fullname, &pdb)
	equal(t, "PodDisruptionBudget", pdb.Spec.MinAvailable, ptrTo(intstr.FromInt32(1)))
}

func equal(t testing.TB, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := yaml.Marshal(got)
		w, _ := yaml.Marshal(want)
		t.Errorf("%s differs\ngot:\n%s\nwant:\n%s", what, g, w)
	}
}
