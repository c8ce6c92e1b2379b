package admission

import "slices"

// ExcludedNamespaces are the namespaces of --excluded-namespaces. Every webhook answers a
// request in one of them at once, untouched (the pod is not mutated, the ServiceAccount
// not checked and no Event written), whatever the webhook configuration's selectors send:
// the one check both handlers share.
type ExcludedNamespaces []string

// Excludes reports whether requests in namespace are left alone.
func (e ExcludedNamespaces) Excludes(namespace string) bool {
	return slices.Contains(e, namespace)
}
