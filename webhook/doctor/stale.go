package doctor

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// StalePod is a running pod whose credentials are not those its ServiceAccount names now:
// the webhook injects only at creation, so it must be restarted.
type StalePod struct {
	Namespace       string `json:"namespace"`
	Name            string `json:"pod"`
	ServiceAccount  string `json:"serviceAccount"`
	InjectedRoleARN string `json:"injectedRoleArn"` // "" when it got none
	CurrentRoleARN  string `json:"currentRoleArn"`
	Reason          string `json:"reason"`
	Action          string `json:"action"` // always "restart"
}

// LastChanged is the last time any manager wrote the object (from its managedFields; zero
// when it has none).
func LastChanged(m metav1.ObjectMeta) time.Time {
	var last time.Time
	for _, f := range m.ManagedFields {
		if f.Time != nil && f.Time.After(last) {
			last = f.Time.Time
		}
	}
	return last
}

// Stale reports whether pod, running as sa, carries another role than the one sa names now
// (s, from irsa.ForServiceAccount, with outcome Mutated), or none although it was created
// before sa last changed (or when that time is unknown). A pod without credentials created
// after that is not reported:
// the webhook chose not to inject it (skip label, excluded namespace), and doctor explains
// why. Finished pods and pods with the skip label are never stale.
func Stale(pod *corev1.Pod, sa *corev1.ServiceAccount, s irsa.Settings, d irsa.Defaults) (StalePod, bool) {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || d.SkipsPod(pod.Labels) || s.RoleARN == "" {
		return StalePod{}, false
	}
	cfg, _, _ := irsa.ConfigFor(saObject(sa), irsa.Object{Namespace: pod.Namespace, Name: pod.Name, Annotations: pod.Annotations}, d)
	got := injected(pod, cfg).roleARN
	sp := StalePod{Namespace: pod.Namespace, Name: pod.Name, ServiceAccount: sa.Name, InjectedRoleARN: got, CurrentRoleARN: s.RoleARN, Action: "restart"}
	switch changed := LastChanged(sa.ObjectMeta); {
	case got == s.RoleARN:
		return StalePod{}, false
	case got != "":
		sp.Reason = fmt.Sprintf("injected with role %s at creation; its ServiceAccount now names %s", got, s.RoleARN)
	case !changed.IsZero() && pod.CreationTimestamp.Time.Before(changed.Truncate(time.Second)):
		sp.Reason = fmt.Sprintf("created at %s, before its ServiceAccount named role %s (changed %s): it has no AWS credentials",
			pod.CreationTimestamp.UTC().Format(time.RFC3339), s.RoleARN, changed.UTC().Format(time.RFC3339))
	case changed.IsZero():
		// No managedFields (stripped, or an API server that keeps none): no time to compare.
		sp.Reason = fmt.Sprintf("has no AWS credentials although its ServiceAccount names role %s: created before the annotation (unless the webhook excludes its namespace)", s.RoleARN)
	default:
		return StalePod{}, false
	}
	return sp, true
}
