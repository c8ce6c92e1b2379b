package chart_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// passThrough lists the values whose content is a Kubernetes object or a free-form map, handed
// to the manifests as they are: the schema checks their type, not their keys (the API server
// checks those), and values.yaml documents them as a whole.
func passThrough() map[string]string {
	return map[string]string{
		"global":                           "Helm's values shared with parent charts",
		"resources":                        "corev1.ResourceRequirements",
		"nodeSelector":                     "map of node labels",
		"affinity":                         "corev1.Affinity",
		"podSecurityContext":               "corev1.PodSecurityContext",
		"containerSecurityContext":         "corev1.SecurityContext",
		"serviceAccount.annotations":       "map of annotations",
		"podAnnotations":                   "map of annotations",
		"podLabels":                        "map of labels",
		"metrics.serviceMonitor.labels":    "map of labels",
		"metrics.serviceMonitor.tlsConfig": "prometheus-operator SafeTLSConfig",
		"tolerations":                      "[]corev1.Toleration",
		"topologySpreadConstraints":        "[]corev1.TopologySpreadConstraint",
		"extraEnv":                         "[]corev1.EnvVar",
		"extraVolumes":                     "[]corev1.Volume",
		"extraVolumeMounts":                "[]corev1.VolumeMount",
		"networkPolicy.ingressFrom":        "[]networkingv1.NetworkPolicyPeer",
		"networkPolicy.egress":             "[]networkingv1.NetworkPolicyEgressRule",
		"imagePullSecrets":                 "[]corev1.LocalObjectReference",
		"extraArgs":                        "list of flags",
		"injection.allowedRoleAccounts":    "list of account IDs",
		"webhook.tlsCipherSuites":          "list of cipher suite names",
		"webhook.excludedNamespaces":       "list of namespaces",
		"certs.dnsNames":                   "list of DNS names",
		"podDisruptionBudget.minAvailable": "integer or percentage",
	}
}

func readChartFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestValuesDocumentedAndSchemaComplete walks values.yaml and values.schema.json together: every
// key of values.yaml has a comment and a schema property, every schema property has a default
// in values.yaml, and every object of the chart's own structure rejects unknown keys.
func TestValuesDocumentedAndSchemaComplete(t *testing.T) {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(readChartFile(t, "values.yaml"), &doc); err != nil {
		t.Fatalf("parse values.yaml: %v", err)
	}
	var schema map[string]any
	if err := json.Unmarshal(readChartFile(t, "values.schema.json"), &schema); err != nil {
		t.Fatalf("parse values.schema.json: %v", err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yamlv3.MappingNode {
		t.Fatal("values.yaml is not a mapping")
	}
	passThrough := passThrough()
	seenPassThrough := map[string]bool{}
	var walk func(path string, node *yamlv3.Node, s map[string]any)
	walk = func(path string, node *yamlv3.Node, s map[string]any) {
		if s["additionalProperties"] != false {
			t.Errorf("schema of %q does not set additionalProperties: false, so typos in it would pass", or(path, "the root"))
		}
		props, _ := s["properties"].(map[string]any)
		inValues := map[string]bool{}
		for i := 0; i+1 < len(node.Content); i += 2 {
			key, value := node.Content[i], node.Content[i+1]
			p := join(path, key.Value)
			inValues[key.Value] = true
			if strings.TrimSpace(key.HeadComment) == "" {
				t.Errorf("values.yaml: %s (line %d) has no comment above it", p, key.Line)
			}
			ps, ok := props[key.Value].(map[string]any)
			if !ok {
				t.Errorf("values.schema.json has no property %s", p)
				continue
			}
			if _, ok := passThrough[p]; ok {
				seenPassThrough[p] = true
				if _, has := ps["properties"]; has {
					t.Errorf("%s is listed as pass-through but its schema lists properties", p)
				}
				continue
			}
			if _, has := ps["properties"]; has {
				if value.Kind != yamlv3.MappingNode {
					t.Errorf("values.yaml: %s is not a mapping but its schema has properties", p)
					continue
				}
				walk(p, value, ps)
				continue
			}
			if value.Kind == yamlv3.MappingNode || value.Kind == yamlv3.SequenceNode {
				t.Errorf("%s holds a structure but is neither described property by property in the schema nor listed as pass-through", p)
			}
		}
		for name := range props {
			p := join(path, name)
			if !inValues[name] && p != "global" {
				t.Errorf("values.schema.json property %s has no default in values.yaml", p)
			}
		}
	}
	walk("", doc.Content[0], schema)
	for p := range passThrough {
		if !seenPassThrough[p] && p != "global" {
			t.Errorf("pass-through value %s is not in values.yaml", p)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// TestSchemaRejects checks that values.schema.json turns typos and wrong types into errors
// naming the value.
func TestSchemaRejects(t *testing.T) {
	tests := []struct {
		name   string
		values values
		want   string // in helm's error
	}{
		{"unknown top-level key", values{"replicas": 3}, "replicas"},
		{"misspelt nested key", values{"webhook": values{"mutating": values{"failurepolicy": "Fail"}}}, "failurepolicy"},
		{"unknown key deep down", values{"certs": values{"certManager": values{"issuerRef": values{"namespace": "x"}}}}, "namespace"},
		{"string for an integer", values{"replicaCount": "two"}, "/replicaCount"},
		{"string for a boolean", values{"injection": values{"stsRegionalEndpoint": "yes"}}, "/injection/stsRegionalEndpoint"},
		{"number for a string", values{"webhook": values{"tlsMinVersion": 1.2}}, "/webhook/tlsMinVersion"},
		{"number for a duration", values{"trustCheck": values{"timeout": 3}}, "/trustCheck/timeout"},
		{"bad duration", values{"trustCheck": values{"timeout": "3 seconds"}}, "/trustCheck/timeout"},
		{"string for a list", values{"webhook": values{"excludedNamespaces": "kube-system"}}, "/webhook/excludedNamespaces"},
		{"number in a string map", values{"podAnnotations": values{"a": 1}}, "/podAnnotations/a"},
		{"unknown failurePolicy", values{"webhook": values{"mutating": values{"failurePolicy": "Sometimes"}}}, "/webhook/mutating/failurePolicy"},
		{"timeout above 30s", values{"webhook": values{"validating": values{"timeoutSeconds": 60}}}, "/webhook/validating/timeoutSeconds"},
		{"unknown trust check mode", values{"trustCheck": values{"mode": "strict"}}, "/trustCheck/mode"},
		{"unknown cert mode", values{"certs": values{"mode": "vault"}}, "/certs/mode"},
		{"token lifetime below the kubelet's minimum", values{"injection": values{"tokenExpiration": 100}}, "/injection/tokenExpiration"},
		{"account ID not 12 digits", values{"injection": values{"allowedRoleAccounts": []string{"12345"}}}, "/injection/allowedRoleAccounts/0"},
		{"role name instead of ARN", values{"serviceAccount": values{"roleArn": "S3WriterRole"}}, "/serviceAccount/roleArn"},
		{"digest without algorithm", values{"image": values{"digest": "latest"}}, "/image/digest"},
		{"issuer URL without https", values{"trustCheck": values{"oidcIssuerURL": "http://oidc.example.com"}}, "/trustCheck/oidcIssuerURL"},
		{"IAM concurrency above 100", values{"trustCheck": values{"iamMaxConcurrency": 1000}}, "/trustCheck/iamMaxConcurrency"},
		{"IAM rate limit of zero", values{"trustCheck": values{"iamRateLimit": 0}}, "/trustCheck/iamRateLimit"},
		{"IAM rate limit as a string", values{"trustCheck": values{"iamRateLimit": "5/s"}}, "/trustCheck/iamRateLimit"},
		{"IAM burst of zero", values{"trustCheck": values{"iamRateBurst": 0}}, "/trustCheck/iamRateBurst"},
		{"IAM burst above 10000", values{"trustCheck": values{"iamRateBurst": 100000}}, "/trustCheck/iamRateBurst"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := renderErr(t, tt.values)
			if err == nil {
				t.Fatalf("values %v accepted", tt.values)
			}
			if msg := err.Error(); !strings.Contains(msg, "schema") || !strings.Contains(msg, tt.want) {
				t.Errorf("error does not come from the schema or does not name %q:\n%s", tt.want, msg)
			}
		})
	}
}

// TestTemplateChecks checks the combinations the schema cannot express: all problems are
// reported at once, each saying what to change.
func TestTemplateChecks(t *testing.T) {
	tests := []struct {
		name   string
		values values
		want   []string
	}{
		{
			name:   "provided without secret or CA",
			values: values{"certs": values{"mode": "provided"}},
			want:   []string{"certs.mode=provided needs certs.secretName", "certs.mode=provided needs certs.caBundle"},
		},
		{
			name:   "provided with a CA that is not PEM",
			values: values{"certs": values{"mode": "provided", "secretName": "corp-tls", "caBundle": "not a certificate"}},
			want:   []string{"certs.caBundle must be a PEM certificate"},
		},
		{
			name:   "everything at once",
			values: values{"serviceAccount": values{"create": false}, "webhook": values{"tlsKeyFile": "/keys/tls.key"}, "metrics": values{"port": 9443}, "replicaCount": 1},
			want: []string{
				"serviceAccount.create=false needs serviceAccount.name",
				"must be in the same directory",
				"webhook.port, healthProbe.port and metrics.port must differ",
				"podDisruptionBudget.minAvailable (1) must be below replicaCount (1)",
			},
		},
		{
			name:   "nothing to do",
			values: values{"webhook": values{"mutating": values{"enabled": false}}, "trustCheck": values{"mode": "off"}},
			want:   []string{"webhook.mutating.enabled=false with trustCheck.mode=off"},
		},
		{
			name:   "opt-in on the namespace name",
			values: values{"webhook": values{"namespaceOptIn": values{"enabled": true, "labelKey": "kubernetes.io/metadata.name"}}},
			want:   []string{"webhook.namespaceOptIn.labelKey must not be kubernetes.io/metadata.name"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := renderErr(t, tt.values)
			if err == nil {
				t.Fatalf("values %v accepted", tt.values)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}

	t.Run("replicaCount 1 without a PodDisruptionBudget", func(t *testing.T) {
		render(t, values{"replicaCount": 1, "podDisruptionBudget": values{"enabled": false}})
	})
}

// TestInjectionDefaultsMatchWebhook compares the chart's injection defaults with the constants
// the binary's flags use.
func TestInjectionDefaultsMatchWebhook(t *testing.T) {
	var v struct {
		Injection struct {
			AnnotationPrefix string `json:"annotationPrefix"`
			TokenAudience    string `json:"tokenAudience"`
			TokenMountPath   string `json:"tokenMountPath"`
			TokenExpiration  int64  `json:"tokenExpiration"`
		} `json:"injection"`
	}
	if err := yaml.Unmarshal(readChartFile(t, "values.yaml"), &v); err != nil {
		t.Fatal(err)
	}
	equal(t, "injection.annotationPrefix", v.Injection.AnnotationPrefix, irsa.DefaultAnnotationPrefix)
	equal(t, "injection.tokenAudience", v.Injection.TokenAudience, irsa.DefaultTokenAudience)
	equal(t, "injection.tokenMountPath", v.Injection.TokenMountPath, irsa.DefaultTokenMountPath)
	equal(t, "injection.tokenExpiration", v.Injection.TokenExpiration, irsa.DefaultTokenExpiration)

	var schema struct {
		Properties struct {
			Injection struct {
				Properties struct {
					TokenExpiration struct {
						Minimum int64 `json:"minimum"`
						Maximum int64 `json:"maximum"`
					} `json:"tokenExpiration"`
				} `json:"properties"`
			} `json:"injection"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(readChartFile(t, "values.schema.json"), &schema); err != nil {
		t.Fatal(err)
	}
	b := schema.Properties.Injection.Properties.TokenExpiration
	equal(t, "schema bounds of injection.tokenExpiration", [2]int64{b.Minimum, b.Maximum}, [2]int64{irsa.MinTokenExpiration, irsa.MaxTokenExpiration})
}

// TestManifestsUpToDate fails when deploy/manifests/irsa-webhook.yaml is not what the chart
// renders now (make generate rewrites it).
func TestManifestsUpToDate(t *testing.T) {
	cmd := exec.Command("bash", filepath.Join(mustRoot(t), "test", "tools", "render-manifests.sh"), "--check")
	cmd.Env = append(os.Environ(), envHelm+"="+tools.helm.get(t))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestManifestsAreTheDefaults checks what kubectl users get: the chart's defaults in namespace
// irsa-webhook, after the Namespace itself.
func TestManifestsAreTheDefaults(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(mustRoot(t), "deploy", "manifests", "irsa-webhook.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r := parseRendered(t, string(data))
	if len(r.Objects) == 0 || r.Objects[0].Kind != "Namespace" || r.Objects[0].Name != "irsa-webhook" {
		t.Fatalf("first object is %v, want Namespace irsa-webhook", r.names()[:1])
	}
	kinds := map[string]bool{}
	for _, o := range r.Objects[1:] {
		kinds[o.Kind] = true
		if o.Namespace != "" && o.Namespace != "irsa-webhook" {
			t.Errorf("%s/%s in namespace %q", o.Kind, o.Name, o.Namespace)
		}
	}
	want := []string{"ClusterRole", "ClusterRoleBinding", "Deployment", "MutatingWebhookConfiguration", "PodDisruptionBudget", "Role", "RoleBinding", "Secret", "Service", "ServiceAccount", "ValidatingWebhookConfiguration"}
	var got []string
	for k := range kinds {
		got = append(got, k)
	}
	slices.Sort(got)
	equal(t, "kinds", got, want)
}
