package manifest_test

import (
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	jsonv2 "encoding/json/v2"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"

	"github.com/irsa-webhook/irsa-webhook/webhook/admission"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/manifest"
	"github.com/irsa-webhook/irsa-webhook/webhook/pod"
)

// oneServiceAccount is the pod handler's ServiceAccount source holding sa only.
type oneServiceAccount struct{ sa irsa.Object }

func (o oneServiceAccount) ServiceAccount(_ context.Context, namespace, name string) (irsa.Object, bool, error) {
	if namespace == o.sa.Namespace && name == o.sa.Name {
		return o.sa, true, nil
	}
	return irsa.Object{}, false, nil
}

// TestMutateReadsPodsAsTheWebhook: the mutate command and the webhook are given the same pod
// and must do the same to it. The pods have keys in other cases than the API's (a decoder
// that matches names case-insensitively takes them for the fields they resemble) and
// duplicate keys; mutate gets them as JSON and as YAML, the webhook as the JSON kubectl would
// send for that file.
func TestMutateReadsPodsAsTheWebhook(t *testing.T) {
	sa := irsa.Object{Namespace: "production", Name: "s3-writer", Annotations: map[string]string{
		"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/S3WriterRole"}}
	const (
		meta = `"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"production"}`
		app  = `"containers":[{"name":"app","image":"app:1"}]`
	)
	tests := []struct {
		name string
		doc  string
		want []string // containers that get credentials
	}{
		{name: "json: ServiceAccountName is not serviceAccountName",
			doc: `{` + meta + `,"spec":{"ServiceAccountName":"s3-writer",` + app + `}}`, want: nil},
		{name: "yaml: ServiceAccountName is not serviceAccountName",
			doc: "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: production}\nspec:\n  ServiceAccountName: s3-writer\n  containers: [{name: app, image: 'app:1'}]\n", want: nil},
		{name: "json: InitContainers is not initContainers",
			doc:  `{` + meta + `,"spec":{"serviceAccountName":"s3-writer",` + app + `,"InitContainers":[{"name":"init","image":"init:1"}]}}`,
			want: []string{"app"}},
		{name: "json: Annotations is not annotations",
			doc:  `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"production","Annotations":{"eks.amazonaws.com/skip-containers":"app"}},"spec":{"serviceAccountName":"s3-writer",` + app + `}}`,
			want: []string{"app"}},
		{name: "yaml: Annotations is not annotations",
			doc:  "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: production\n  Annotations: {eks.amazonaws.com/skip-containers: app}\nspec:\n  serviceAccountName: s3-writer\n  containers: [{name: app, image: 'app:1'}]\n",
			want: []string{"app"}},
		{name: "json: Env is not env",
			doc:  `{` + meta + `,"spec":{"serviceAccountName":"s3-writer","containers":[{"name":"app","image":"app:1","Env":[{"name":"AWS_ROLE_ARN","value":"arn:aws:iam::123456789012:role/Other"}]}]}}`,
			want: []string{"app"}},
		{name: "json: duplicate serviceAccountName, the last one counts",
			doc:  `{` + meta + `,"spec":{"serviceAccountName":"other","serviceAccountName":"s3-writer",` + app + `}}`,
			want: []string{"app"}},
		{name: "json: duplicate containers, the last one counts",
			doc:  `{` + meta + `,"spec":{"serviceAccountName":"s3-writer","containers":[{"name":"first","image":"a"},{"name":"second","image":"a"}],` + app + `}}`,
			want: []string{"app"}},
		{name: "json: duplicate spec objects merge, as the API server merges them",
			doc:  `{` + meta + `,"spec":{` + app + `},"spec":{"serviceAccountName":"s3-writer"}}`,
			want: []string{"app"}},
		{name: "json: duplicate annotations merge",
			doc:  `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"production","annotations":{"eks.amazonaws.com/skip-containers":"app"},"annotations":{"a":"b"}},"spec":{"serviceAccountName":"s3-writer","containers":[{"name":"app","image":"a"},{"name":"sidecar","image":"s"}]}}`,
			want: []string{"sidecar"}},
		{name: "yaml: duplicate serviceAccountName, the last one counts",
			doc:  "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: production}\nspec:\n  serviceAccountName: other\n  serviceAccountName: s3-writer\n  containers: [{name: app, image: 'app:1'}]\n",
			want: []string{"app"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			object := []byte(tc.doc)
			if !strings.HasPrefix(tc.doc, "{") {
				var err error
				if object, err = yaml.YAMLToJSON(object); err != nil { // what kubectl sends for the file
					t.Fatalf("YAML to JSON: %v", err)
				}
			}
			byWebhook := webhookResult(t, sa, object)
			res, err := manifest.Mutate([]byte(tc.doc), sa, irsa.NewDefaults(), nil, manifest.JSON)
			if err != nil {
				t.Fatalf("mutate: %v; the webhook gave credentials to %v", err, credentialed(t, byWebhook))
			}
			if got := credentialed(t, res.Object); !slices.Equal(got, tc.want) {
				t.Errorf("mutate gave credentials to %v, want %v", got, tc.want)
			}
			if got := credentialed(t, byWebhook); !slices.Equal(got, tc.want) {
				t.Errorf("the webhook gave credentials to %v, want %v", got, tc.want)
			}
			// Beyond the credentials: the same pod, as the webhook reads pods.
			if a, b := view(t, res.Object), view(t, byWebhook); !reflect.DeepEqual(a, b) {
				t.Errorf("mutate and the webhook disagree:\nmutate:  %s\nwebhook: %s", res.Object, byWebhook)
			}
		})
	}
}

// webhookResult sends object to the pod handler in an AdmissionReview and returns the pod the
// API server would store: object as the API server decodes it (apimachinery's JSON into a
// corev1.Pod: names matched exactly, duplicates resolved, unknown keys dropped) with the
// answer's patch applied.
func webhookResult(t *testing.T, sa irsa.Object, object []byte) []byte {
	t.Helper()
	body := fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1",`+
		`"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},`+
		`"namespace":%q,"operation":"CREATE","object":%s}}`, sa.Namespace, object)
	rv, err := admission.DecodeReview[pod.Pod]([]byte(body))
	if err != nil {
		t.Fatalf("decode review: %v", err)
	}
	h := &pod.Handler{Defaults: irsa.NewDefaults(), ServiceAccounts: oneServiceAccount{sa},
		Metrics: pod.NewMetrics(prometheus.NewRegistry()), Log: logr.Discard()}
	resp := h.Handle(context.Background(), rv.Request)
	if !resp.Allowed {
		t.Fatalf("the webhook denied the pod: %v", resp.Result)
	}
	var stored corev1.Pod
	if err := utiljson.Unmarshal(object, &stored); err != nil {
		t.Fatalf("decode the pod as the API server: %v", err)
	}
	if object, err = json.Marshal(&stored); err != nil {
		t.Fatal(err)
	}
	if len(resp.Patch) == 0 {
		return object
	}
	patch, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatalf("decode the webhook's patch: %v", err)
	}
	out, err := patch.Apply(object)
	if err != nil {
		t.Fatalf("apply the webhook's patch %s: %v", resp.Patch, err)
	}
	return out
}

// credentialed lists the containers of a pod document that have AWS_ROLE_ARN set to the
// injected role (the API's own field names, matched exactly: what the kubelet would run).
func credentialed(t *testing.T, doc []byte) []string {
	t.Helper()
	var p struct {
		Spec struct {
			InitContainers []container `json:"initContainers"`
			Containers     []container `json:"containers"`
		} `json:"spec"`
	}
	if err := jsonv2.Unmarshal(doc, &p, jsontext.AllowDuplicateNames(true)); err != nil {
		t.Fatalf("decode %s: %v", doc, err)
	}
	var names []string
	for _, c := range slices.Concat(p.Spec.InitContainers, p.Spec.Containers) {
		for _, e := range c.Env {
			if e.Name == irsa.EnvRoleARN && e.Value == "arn:aws:iam::123456789012:role/S3WriterRole" {
				names = append(names, c.Name)
			}
		}
	}
	return names
}

// view is the pod of a document as the webhook reads it (pod.Pod, exact names).
func view(t *testing.T, doc []byte) pod.Pod {
	t.Helper()
	var p pod.Pod
	if err := jsonv2.Unmarshal(doc, &p, jsontext.AllowDuplicateNames(true)); err != nil {
		t.Fatalf("decode %s: %v", doc, err)
	}
	return p
}

type container struct {
	Name string `json:"name"`
	Env  []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"env"`
}
