// Package manifest applies the webhook's pod mutation to a manifest offline: a Pod or the
// pod template of a workload, in YAML or JSON. It decodes the pod with the webhook's own
// decoder (admission.Unmarshal), computes the same add operations the webhook sends and
// applies them to the document itself, so the output is exactly what the API server would
// store, including fields this program's types do not know.
package manifest

import (
	"bytes"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"fmt"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/irsa-webhook/irsa-webhook/webhook/admission"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/pod"
)

// templatePaths maps each supported kind to the JSON pointer of its pod template ("" for a Pod).
var templatePaths = map[string]string{
	"Pod":         "",
	"Deployment":  "/spec/template",
	"StatefulSet": "/spec/template",
	"DaemonSet":   "/spec/template",
	"ReplicaSet":  "/spec/template",
	"Job":         "/spec/template",
	"CronJob":     "/spec/jobTemplate/spec/template",
}

// Format is an output format.
type Format string

const (
	YAML Format = "yaml"
	JSON Format = "json"
)

// ErrInput marks input the command cannot work with (exit 2).
var ErrInput = errors.New("bad input")

// Result is a mutated manifest.
type Result struct {
	Object   []byte   // the mutated document, in the requested format
	Changed  bool     // whether anything was injected
	Warnings []string // what the webhook would send as admission warnings
}

// ServiceAccount parses a ServiceAccount manifest (YAML or JSON) into the view IRSA reads.
func ServiceAccount(doc []byte) (irsa.Object, error) {
	js, err := toJSON(doc)
	if err != nil {
		return irsa.Object{}, err
	}
	var sa corev1.ServiceAccount
	if err := admission.Unmarshal(js, &sa); err != nil {
		return irsa.Object{}, fmt.Errorf("%w: decode ServiceAccount: %w", ErrInput, err)
	}
	if sa.Kind != "ServiceAccount" {
		return irsa.Object{}, fmt.Errorf("%w: want kind ServiceAccount, got %q", ErrInput, sa.Kind)
	}
	if sa.Name == "" {
		return irsa.Object{}, fmt.Errorf("%w: ServiceAccount has no metadata.name", ErrInput)
	}
	return irsa.Object{Namespace: sa.Namespace, Name: sa.Name, Annotations: sa.Annotations, Labels: sa.Labels}, nil
}

// Mutate injects the ServiceAccount's role into the manifest's pod template, as the webhook
// started with the same defaults and excluded namespaces would. A pod template in an
// excluded namespace, or that runs as another ServiceAccount, is left unchanged, with a
// warning.
func Mutate(doc []byte, sa irsa.Object, d irsa.Defaults, excluded admission.ExcludedNamespaces, out Format) (Result, error) {
	js, err := toJSON(doc)
	if err != nil {
		return Result{}, err
	}
	if js, err = canonical(js); err != nil {
		return Result{}, err
	}
	var head struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
	}
	if err := admission.Unmarshal(js, &head); err != nil {
		return Result{}, fmt.Errorf("%w: decode manifest: %w", ErrInput, err)
	}
	path, ok := templatePaths[head.Kind]
	if !ok {
		return Result{}, fmt.Errorf("%w: kind %q is not supported (want Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob)", ErrInput, head.Kind)
	}
	tmpl, err := podTemplate(js, head.Kind)
	if err != nil {
		return Result{}, err
	}
	ns := head.Metadata.Namespace
	if ns == "" {
		ns = sa.Namespace
	}
	var res Result
	podSA := pod.ServiceAccountName(&tmpl.Spec)
	switch {
	case excluded.Excludes(ns): // the webhook's first check too
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s %s is in namespace %q, which the webhook leaves alone (--excluded-namespaces): nothing injected", head.Kind, head.Metadata.Name, ns))
	case podSA != sa.Name:
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s %s runs as serviceaccount %q, not %q: nothing injected", head.Kind, head.Metadata.Name, podSA, sa.Name))
	case sa.Namespace != "" && ns != sa.Namespace:
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s %s is in namespace %q, serviceaccount %s in %q: nothing injected", head.Kind, head.Metadata.Name, ns, sa.Name, sa.Namespace))
	case pod.CheckSize(&tmpl.Spec) != nil: // the webhook's own bound, before any loop over the containers
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s %s: %v: nothing injected", head.Kind, head.Metadata.Name, pod.CheckSize(&tmpl.Spec)))
	default:
		podObj := irsa.Object{Namespace: ns, Name: head.Metadata.Name, Annotations: tmpl.Metadata.Annotations, Labels: tmpl.Metadata.Labels}
		cfg, decision, warnings := irsa.ConfigFor(sa, podObj, d)
		res.Warnings = append(res.Warnings, warnings...)
		if decision == irsa.Inject {
			ops, ws := pod.Mutate(&tmpl.Spec, cfg, path+"/spec")
			res.Warnings = append(res.Warnings, ws...)
			if len(ops) > 0 {
				if js, err = apply(js, ops); err != nil {
					return Result{}, err
				}
				res.Changed = true
			}
		}
	}
	res.Object, err = render(js, out)
	return res, err
}

// podTemplate decodes the part of the manifest's pod template the mutation reads.
func podTemplate(js []byte, kind string) (*pod.Pod, error) {
	var t pod.Pod
	var err error
	switch kind {
	case "Pod":
		err = admission.Unmarshal(js, &t)
	case "CronJob":
		var cj struct {
			Spec struct {
				JobTemplate struct {
					Spec struct {
						Template pod.Pod `json:"template"`
					} `json:"spec"`
				} `json:"jobTemplate"`
			} `json:"spec"`
		}
		err = admission.Unmarshal(js, &cj)
		t = cj.Spec.JobTemplate.Spec.Template
	default:
		var w struct {
			Spec struct {
				Template pod.Pod `json:"template"`
			} `json:"spec"`
		}
		err = admission.Unmarshal(js, &w)
		t = w.Spec.Template
	}
	if err != nil {
		return nil, fmt.Errorf("%w: decode %s pod template: %w", ErrInput, kind, err)
	}
	if len(t.Spec.Containers) == 0 {
		return nil, fmt.Errorf("%w: %s has no containers in its pod template", ErrInput, kind)
	}
	return &t, nil
}

func apply(js []byte, ops []pod.Op) ([]byte, error) {
	raw, err := pod.MarshalPatch(ops)
	if err != nil {
		return nil, err
	}
	patch, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		return nil, fmt.Errorf("decode patch: %w", err)
	}
	out, err := patch.Apply(js)
	if err != nil {
		return nil, fmt.Errorf("apply patch: %w", err)
	}
	return out, nil
}

// canonical resolves the duplicate member names of a JSON document as the webhook's decoder
// does (admission.Unmarshal: the last value of a name wins, objects merge), so that the patch
// is applied to the very pod the mutation was computed from. The API server resolves them
// before the webhook sees the pod. A document without duplicates is returned as it is, its
// members in their order.
func canonical(js []byte) ([]byte, error) {
	if jsontext.Value(js).IsValid() {
		return js, nil
	}
	var v any
	if err := admission.Unmarshal(js, &v); err != nil {
		return nil, fmt.Errorf("%w: the manifest is not valid JSON: %w", ErrInput, err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("re-encode the manifest: %w", err)
	}
	return out, nil
}

func toJSON(doc []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(doc)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: the manifest is empty", ErrInput)
	}
	if trimmed[0] == '{' {
		if !json.Valid(trimmed) {
			return nil, fmt.Errorf("%w: the manifest is not valid JSON", ErrInput)
		}
		return trimmed, nil
	}
	if bytes.Contains(trimmed, []byte("\n---")) && len(bytes.TrimSpace(bytes.SplitN(trimmed, []byte("\n---"), 2)[1])) > 0 {
		return nil, fmt.Errorf("%w: the manifest holds several YAML documents; give one object", ErrInput)
	}
	js, err := yaml.YAMLToJSON(trimmed)
	if err != nil {
		return nil, fmt.Errorf("%w: the manifest is neither JSON nor YAML: %w", ErrInput, err)
	}
	if len(js) == 0 || js[0] != '{' {
		return nil, fmt.Errorf("%w: the manifest is not an object", ErrInput)
	}
	return js, nil
}

func render(js []byte, f Format) ([]byte, error) {
	switch f {
	case JSON:
		var buf bytes.Buffer
		if err := json.Indent(&buf, js, "", "  "); err != nil {
			return nil, fmt.Errorf("format JSON: %w", err)
		}
		buf.WriteByte('\n')
		return buf.Bytes(), nil
	case YAML, "":
		out, err := yaml.JSONToYAML(js)
		if err != nil {
			return nil, fmt.Errorf("format YAML: %w", err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: output format %q must be yaml or json", ErrInput, f)
}
