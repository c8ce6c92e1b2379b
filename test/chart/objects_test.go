package chart_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Typed accessors for the objects every rendering has.

func deployment(t testing.TB, r rendered) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	r.get(t, "Deployment", fullname, &d)
	return &d
}

// webhookContainer is the Deployment's only container.
func webhookContainer(t testing.TB, r rendered) corev1.Container {
	t.Helper()
	d := deployment(t, r)
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("Deployment has %d containers, want 1", n)
	}
	return d.Spec.Template.Spec.Containers[0]
}

func args(t testing.TB, r rendered) []string {
	t.Helper()
	return webhookContainer(t, r).Args
}

// flagValues maps each --flag=value of args to its value (the last one wins, as in the binary).
func flagValues(t testing.TB, args []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range args[1:] {
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !ok || !strings.HasPrefix(a, "--") {
			t.Fatalf("argument %q is not of the form --flag=value", a)
		}
		out[name] = value
	}
	return out
}

func mutating(t testing.TB, r rendered) admissionregistrationv1.MutatingWebhook {
	t.Helper()
	var c admissionregistrationv1.MutatingWebhookConfiguration
	r.get(t, "MutatingWebhookConfiguration", fullname, &c)
	if len(c.Webhooks) != 1 {
		t.Fatalf("MutatingWebhookConfiguration has %d webhooks, want 1", len(c.Webhooks))
	}
	return c.Webhooks[0]
}

func validating(t testing.TB, r rendered) admissionregistrationv1.ValidatingWebhook {
	t.Helper()
	var c admissionregistrationv1.ValidatingWebhookConfiguration
	r.get(t, "ValidatingWebhookConfiguration", fullname, &c)
	if len(c.Webhooks) != 1 {
		t.Fatalf("ValidatingWebhookConfiguration has %d webhooks, want 1", len(c.Webhooks))
	}
	return c.Webhooks[0]
}

func clusterRole(t testing.TB, r rendered) rbacv1.ClusterRole {
	t.Helper()
	var c rbacv1.ClusterRole
	r.get(t, "ClusterRole", fullname, &c)
	return c
}

func volume(t testing.TB, d *appsv1.Deployment, name string) corev1.Volume {
	t.Helper()
	i := slices.IndexFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == name })
	if i < 0 {
		t.Fatalf("Deployment has no volume %q", name)
	}
	return d.Spec.Template.Spec.Volumes[i]
}

func mount(t testing.TB, c corev1.Container, name string) corev1.VolumeMount {
	t.Helper()
	i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == name })
	if i < 0 {
		t.Fatalf("container has no volume mount %q", name)
	}
	return c.VolumeMounts[i]
}

func env(c corev1.Container, name string) (corev1.EnvVar, bool) {
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
	if i < 0 {
		return corev1.EnvVar{}, false
	}
	return c.Env[i], true
}

func ptrTo[T any](v T) *T { return &v }

func labelSet(m map[string]string) labels.Set { return labels.Set(m) }

func itoa[T ~int32 | ~int](v T) string { return strconv.Itoa(int(v)) }

// lastElem is the part of a slash-separated path after the last slash.
func lastElem(p string) string { return p[strings.LastIndex(p, "/")+1:] }

func containerPort(t testing.TB, c corev1.Container, name string) int32 {
	t.Helper()
	i := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == name })
	if i < 0 {
		t.Fatalf("container has no port %q", name)
	}
	return c.Ports[i].ContainerPort
}

func servicePort(t testing.TB, s corev1.Service, name string) corev1.ServicePort {
	t.Helper()
	i := slices.IndexFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == name })
	if i < 0 {
		t.Fatalf("Service has no port %q", name)
	}
	return s.Spec.Ports[i]
}

// replaced returns a copy of list with the element old replaced by new.
func replaced(t testing.TB, list []string, old, new string) []string {
	t.Helper()
	i := slices.Index(list, old)
	if i < 0 {
		t.Fatalf("%q is not in %v", old, list)
	}
	out := slices.Clone(list)
	out[i] = new
	return out
}
