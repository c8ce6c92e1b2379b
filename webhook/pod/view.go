package pod

import (
	corev1 "k8s.io/api/core/v1"
)

// Pod is the part of a Pod the webhook reads, decoded straight from the AdmissionReview.
// Decoding a whole corev1.Pod parses resources, probes and every other field only to
// throw them away; these few types let encoding/json skip all of that, which is most of
// the cost of a pod admission. Nothing is lost: the webhook answers with a patch, never
// with a re-serialized pod.
type Pod struct {
	Metadata struct {
		Name         string            `json:"name"`
		GenerateName string            `json:"generateName"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		ServiceAccountName       string            `json:"serviceAccountName"`
		DeprecatedServiceAccount string            `json:"serviceAccount"`
		NodeSelector             map[string]string `json:"nodeSelector"`
		OS                       *corev1.PodOS     `json:"os"`
		Affinity                 *struct {
			NodeAffinity *corev1.NodeAffinity `json:"nodeAffinity"`
		} `json:"affinity"`
		Volumes        []named     `json:"volumes"`
		InitContainers []container `json:"initContainers"`
		Containers     []container `json:"containers"`
	} `json:"spec"`
}

type named struct {
	Name string `json:"name"`
}

type container struct {
	Name         string               `json:"name"`
	Env          []named              `json:"env"`
	VolumeMounts []corev1.VolumeMount `json:"volumeMounts"`
}

// PodSpec returns a corev1.PodSpec holding every field Mutate reads.
func (p *Pod) PodSpec() *corev1.PodSpec {
	s := &p.Spec
	spec := &corev1.PodSpec{
		ServiceAccountName:       s.ServiceAccountName,
		DeprecatedServiceAccount: s.DeprecatedServiceAccount,
		NodeSelector:             s.NodeSelector,
		OS:                       s.OS,
		InitContainers:           containers(s.InitContainers),
		Containers:               containers(s.Containers),
	}
	if s.Affinity != nil && s.Affinity.NodeAffinity != nil {
		spec.Affinity = &corev1.Affinity{NodeAffinity: s.Affinity.NodeAffinity}
	}
	if len(s.Volumes) > 0 {
		spec.Volumes = make([]corev1.Volume, len(s.Volumes))
		for i, v := range s.Volumes {
			spec.Volumes[i].Name = v.Name
		}
	}
	return spec
}

func containers(cs []container) []corev1.Container {
	if len(cs) == 0 {
		return nil
	}
	out := make([]corev1.Container, len(cs))
	for i, c := range cs {
		out[i] = corev1.Container{Name: c.Name, VolumeMounts: c.VolumeMounts}
		if len(c.Env) > 0 {
			out[i].Env = make([]corev1.EnvVar, len(c.Env))
			for j, e := range c.Env {
				out[i].Env[j].Name = e.Name
			}
		}
	}
	return out
}
