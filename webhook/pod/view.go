package pod

import (
	corev1 "k8s.io/api/core/v1"
)

// Pod is the part of a Pod (or of a pod template) the webhook reads, decoded straight from
// the AdmissionReview or the manifest. Decoding a whole corev1.Pod parses resources, probes
// and every other field only to throw them away; these few types let encoding/json skip
// all of that, which is most of the cost of a pod admission. Nothing is lost: the webhook
// answers with a patch of additions, never with a re-serialized pod.
type Pod struct {
	Metadata Metadata `json:"metadata"`
	Spec     Spec     `json:"spec"`
}

// Metadata is the part of the pod's metadata the webhook reads.
type Metadata struct {
	Name         string            `json:"name"`
	GenerateName string            `json:"generateName"`
	Namespace    string            `json:"namespace"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
}

// Spec is the part of the pod spec the mutation reads.
type Spec struct {
	ServiceAccountName       string            `json:"serviceAccountName"`
	DeprecatedServiceAccount string            `json:"serviceAccount"`
	NodeSelector             map[string]string `json:"nodeSelector"`
	OS                       *corev1.PodOS     `json:"os"`
	Affinity                 *struct {
		NodeAffinity *corev1.NodeAffinity `json:"nodeAffinity"`
	} `json:"affinity"`
	Volumes        []Volume    `json:"volumes"`
	InitContainers []Container `json:"initContainers"`
	Containers     []Container `json:"containers"`
}

// Named is a list element the mutation only knows by name (an env var).
type Named struct {
	Name string `json:"name"`
}

// Volume is the part of a pod volume the mutation reads: its name, and for a projected
// volume its service-account-token sources (to tell whether a volume a container mounts at
// the token mount path holds the token the variables name).
type Volume struct {
	Name      string `json:"name"`
	Projected *struct {
		Sources []struct {
			ServiceAccountToken *TokenProjection `json:"serviceAccountToken"`
		} `json:"sources"`
	} `json:"projected"`
}

// TokenProjection is the part of a projected service-account token the mutation reads.
type TokenProjection struct {
	Audience string `json:"audience"`
	Path     string `json:"path"`
}

// Container is the part of a container the mutation reads.
type Container struct {
	Name         string        `json:"name"`
	Env          []Named       `json:"env"`
	VolumeMounts []VolumeMount `json:"volumeMounts"`
}

// VolumeMount is the part of a volume mount the mutation reads.
type VolumeMount struct {
	Name        string `json:"name"`
	MountPath   string `json:"mountPath"`
	SubPath     string `json:"subPath"`
	SubPathExpr string `json:"subPathExpr"`
}
