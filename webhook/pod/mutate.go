// Package pod injects IRSA credentials into a pod spec. Mutate is pure: it reads a pod
// spec and returns the JSON Patch "add" operations that inject what is missing. The
// webhook sends those operations; the offline mutate command applies them to the input
// document. Only adds are emitted, at precise paths, so fields this webhook's Kubernetes
// types do not know (from a newer API server) survive untouched.
package pod

import (
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// Mutate returns the add operations that give every container of spec the role's
// credentials (spec decoded from the pod's JSON into the Spec view), with paths rooted at specPath ("/spec" for a Pod, "/spec/template/spec"
// for a Deployment). It never changes spec. Applying its result and calling it again
// returns nothing (idempotent).
func Mutate(spec *Spec, cfg irsa.Config, specPath string) []Op {
	var ops []Op
	windows := IsWindows(spec)
	injected := false
	for _, set := range []struct {
		field      string
		containers []Container
	}{{"initContainers", spec.InitContainers}, {"containers", spec.Containers}} {
		for i := range set.containers {
			c := &set.containers[i]
			if cfg.Skips(c.Name) {
				continue
			}
			injected = true
			base := specPath + "/" + set.field + "/" + strconv.Itoa(i)
			ops = appendMount(ops, c, cfg, base)
			ops = appendEnv(ops, c, cfg, tokenFile(c, cfg, windows), base)
		}
	}
	if injected && !hasVolume(spec, irsa.VolumeName) {
		ops = appendTo(ops, specPath+"/volumes", len(spec.Volumes) == 0, tokenVolume(cfg))
	}
	return ops
}

// tokenFile is where the container finds the token: under its own mount of the token
// volume when it already has one elsewhere, else under the configured mount path.
func tokenFile(c *Container, cfg irsa.Config, windows bool) string {
	for _, m := range c.VolumeMounts {
		if m.Name == irsa.VolumeName && m.MountPath != cfg.MountPath {
			cfg.MountPath = m.MountPath
		}
	}
	if windows {
		return cfg.WindowsTokenFile()
	}
	return cfg.TokenFile()
}

func appendMount(ops []Op, c *Container, cfg irsa.Config, base string) []Op {
	for _, m := range c.VolumeMounts {
		if m.Name == irsa.VolumeName || m.MountPath == cfg.MountPath {
			return ops
		}
	}
	return appendTo(ops, base+"/volumeMounts", len(c.VolumeMounts) == 0,
		corev1.VolumeMount{Name: irsa.VolumeName, MountPath: cfg.MountPath, ReadOnly: true})
}

// appendEnv adds the variables in pairs: a container that sets either variable of a pair
// gets neither, so a user's own setting is never mixed with ours.
func appendEnv(ops []Op, c *Container, cfg irsa.Config, tokenFile, base string) []Op {
	var add []corev1.EnvVar
	if !hasEnv(c, irsa.EnvRoleARN) && !hasEnv(c, irsa.EnvWebIdentityTokenFile) {
		add = append(add,
			corev1.EnvVar{Name: irsa.EnvRoleARN, Value: cfg.RoleARN},
			corev1.EnvVar{Name: irsa.EnvWebIdentityTokenFile, Value: tokenFile})
	}
	if cfg.Region != "" && !hasEnv(c, irsa.EnvRegion) && !hasEnv(c, irsa.EnvDefaultRegion) {
		add = append(add,
			corev1.EnvVar{Name: irsa.EnvRegion, Value: cfg.Region},
			corev1.EnvVar{Name: irsa.EnvDefaultRegion, Value: cfg.Region})
	}
	if cfg.STSRegional && !hasEnv(c, irsa.EnvSTSRegionalEndpoints) {
		add = append(add, corev1.EnvVar{Name: irsa.EnvSTSRegionalEndpoints, Value: "regional"})
	}
	if len(add) == 0 {
		return ops
	}
	if len(c.Env) == 0 {
		return append(ops, Op{Path: base + "/env", Value: add})
	}
	for _, e := range add {
		ops = append(ops, Op{Path: base + "/env/-", Value: e})
	}
	return ops
}

// appendTo adds one element to the array at path: creating the array when it is absent,
// appending with "/-" otherwise, so existing elements are never rewritten.
func appendTo[T any](ops []Op, path string, absent bool, v T) []Op {
	if absent {
		return append(ops, Op{Path: path, Value: []T{v}})
	}
	return append(ops, Op{Path: path + "/-", Value: v})
}

func tokenVolume(cfg irsa.Config) corev1.Volume {
	exp := cfg.ExpirationSeconds
	return corev1.Volume{
		Name: irsa.VolumeName,
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience:          cfg.Audience,
				ExpirationSeconds: &exp,
				Path:              irsa.TokenFileName,
			}}},
		}},
	}
}

func hasVolume(spec *Spec, name string) bool {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return true
		}
	}
	return false
}

func hasEnv(c *Container, name string) bool {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return true
		}
	}
	return false
}

// osLabels are the node labels for the operating system: the well-known one, and the beta
// one that older manifests (and the reference webhook) still select on.
var osLabels = []string{corev1.LabelOSStable, "beta.kubernetes.io/os"}

// IsWindows reports whether the pod can only run on Windows nodes: spec.os.name, else a
// kubernetes.io/os or beta.kubernetes.io/os node selector (windows if either says so), else a
// required node affinity whose every term pins one of them In [windows].
func IsWindows(spec *Spec) bool {
	if spec.OS != nil {
		return spec.OS.Name == corev1.Windows
	}
	selected := false
	for _, l := range osLabels {
		if os, ok := spec.NodeSelector[l]; ok {
			if os == string(corev1.Windows) {
				return true
			}
			selected = true
		}
	}
	if selected {
		return false
	}
	if spec.Affinity == nil || spec.Affinity.NodeAffinity == nil || spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return false
	}
	terms := spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) == 0 {
		return false
	}
	// Terms are ORed: the pod is Windows-only when every term requires Windows.
	for _, t := range terms {
		if !termRequiresWindows(t) {
			return false
		}
	}
	return true
}

func termRequiresWindows(t corev1.NodeSelectorTerm) bool {
	for _, r := range t.MatchExpressions {
		if slices.Contains(osLabels, r.Key) && r.Operator == corev1.NodeSelectorOpIn && len(r.Values) > 0 {
			for _, v := range r.Values {
				if v != string(corev1.Windows) {
					return false
				}
			}
			return true
		}
	}
	return false
}
