// Package pod injects IRSA credentials into a pod spec. Mutate is pure: it reads a pod
// spec and returns the JSON Patch "add" operations that inject what is missing. The
// webhook sends those operations; the offline mutate command applies them to the input
// document. Only adds are emitted, at precise paths, so fields this webhook's Kubernetes
// types do not know (from a newer API server) survive untouched.
package pod

import (
	"fmt"
	"path"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// Mutate returns the add operations that give every container of spec the role's
// credentials (spec decoded from the pod's JSON into the Spec view), with paths rooted at
// specPath ("/spec" for a Pod, "/spec/template/spec" for a Deployment), and a warning for
// each container left without them because it mounts another volume at the token mount path.
// It never changes spec. Applying its result and calling it again returns nothing
// (idempotent).
func Mutate(spec *Spec, cfg irsa.Config, specPath string) (ops []Op, warnings []string) {
	windows := IsWindows(spec)
	tokenVolumes := tokenVolumesAtMountPath(spec, cfg)
	needVolume := false // some container mounts (or is given a mount of) the webhook's volume
	for _, set := range []struct {
		field, kind string
		containers  []Container
	}{{"initContainers", "init container", spec.InitContainers}, {"containers", "container", spec.Containers}} {
		for i := range set.containers {
			c := &set.containers[i]
			if cfg.Skips(c.Name) {
				continue
			}
			dir, mounted, conflict := tokenDir(c, cfg, tokenVolumes)
			if conflict != nil {
				warnings = append(warnings, fmt.Sprintf("%s %.64q mounts volume %.64q at %s, the token mount path: no AWS credentials injected into it "+
					"(mount it elsewhere; only a whole projected serviceAccountToken volume with audience %q and path %q is used there as is)",
					set.kind, c.Name, conflict.Name, cfg.MountPath, cfg.Audience, irsa.TokenFileName))
				continue
			}
			base := specPath + "/" + set.field + "/" + strconv.Itoa(i)
			switch {
			case !mounted:
				ops = appendTo(ops, base+"/volumeMounts", len(c.VolumeMounts) == 0,
					corev1.VolumeMount{Name: irsa.VolumeName, MountPath: cfg.MountPath, ReadOnly: true})
				needVolume = true
			case mountsVolume(c, irsa.VolumeName):
				needVolume = true
			}
			ops = appendEnv(ops, c, cfg, tokenFile(dir, cfg, windows), base)
		}
	}
	if needVolume && !hasVolume(spec, irsa.VolumeName) {
		ops = appendTo(ops, specPath+"/volumes", len(spec.Volumes) == 0, tokenVolume(cfg))
	}
	return ops, warnings
}

// tokenDir is the directory where container c finds the token: its own mount of the
// webhook's volume (by name, wherever it is), else the token mount path. mounted reports that
// c needs no mount from us: it mounts the webhook's volume, or a volume holding the token at
// the token mount path. conflict is c's mount at the token mount path of a volume that does
// not hold the token (see tokenVolumesAtMountPath), or of a part of it (subPath): variables
// pointing there would name a file that is not the token, and our mount would collide with it.
func tokenDir(c *Container, cfg irsa.Config, tokenVolumes map[string]bool) (dir string, mounted bool, conflict *VolumeMount) {
	dir = cfg.MountPath
	for _, m := range c.VolumeMounts {
		if m.Name == irsa.VolumeName {
			mounted = true
			if m.MountPath != cfg.MountPath {
				dir = m.MountPath
			}
		}
	}
	if mounted {
		return dir, true, nil
	}
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		if !samePath(m.MountPath, cfg.MountPath) {
			continue
		}
		if !tokenVolumes[m.Name] || m.SubPath != "" || m.SubPathExpr != "" {
			return "", false, m
		}
		mounted = true
	}
	return dir, mounted, nil
}

// tokenVolumesAtMountPath maps the name of every volume a container mounts at the token
// mount path (other than the webhook's own) to whether it holds the token the variables name:
// a projected volume with a serviceAccountToken source of the configured audience at path
// "token". One pass over the volumes, only when some container mounts one there, so the cost
// stays linear in the pod's size whatever the numbers of containers and volumes.
func tokenVolumesAtMountPath(spec *Spec, cfg irsa.Config) map[string]bool {
	var at map[string]bool
	for _, cs := range [][]Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			for _, m := range cs[i].VolumeMounts {
				if m.Name != irsa.VolumeName && samePath(m.MountPath, cfg.MountPath) {
					if at == nil {
						at = map[string]bool{}
					}
					at[m.Name] = false
				}
			}
		}
	}
	if at == nil {
		return nil
	}
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		if _, ok := at[v.Name]; ok {
			at[v.Name] = holdsToken(v, cfg.Audience)
		}
	}
	return at
}

// holdsToken reports whether v projects a service-account token for audience at path "token".
func holdsToken(v *Volume, audience string) bool {
	if v.Projected == nil {
		return false
	}
	for _, s := range v.Projected.Sources {
		if t := s.ServiceAccountToken; t != nil && t.Audience == audience && path.Clean(t.Path) == irsa.TokenFileName {
			return true
		}
	}
	return false
}

// samePath reports whether two mount paths name the same directory ("/a/b/" is "/a/b").
func samePath(a, b string) bool { return a == b || path.Clean(a) == path.Clean(b) }

// tokenFile is the token's path in a container that finds it in dir.
func tokenFile(dir string, cfg irsa.Config, windows bool) string {
	cfg.MountPath = dir
	if windows {
		return cfg.WindowsTokenFile()
	}
	return cfg.TokenFile()
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

func mountsVolume(c *Container, name string) bool {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].Name == name {
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
