package chart_test

import (
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

// TestMappingConfigMapRBAC: watching the mapping ConfigMap grants get, list and watch on that
// one ConfigMap in the release namespace, and nothing when it is off.
func TestMappingConfigMapRBAC(t *testing.T) {
	if r := render(t, values{}); r.has("Role", fullname+"-mapping") || r.has("RoleBinding", fullname+"-mapping") {
		t.Error("Role for the mapping ConfigMap rendered while injection.configMap.enabled is false")
	}
	r := render(t, values{"injection": values{"configMap": values{"enabled": true, "name": "kops-mapping"}}})
	var role rbacv1.Role
	r.get(t, "Role", fullname+"-mapping", &role)
	equal(t, "Role namespace", role.Namespace, namespace)
	equal(t, "Role rules", role.Rules, []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"kops-mapping"}, Verbs: []string{"get", "list", "watch"}}})
	var rb rbacv1.RoleBinding
	r.get(t, "RoleBinding", fullname+"-mapping", &rb)
	equal(t, "RoleBinding roleRef", rb.RoleRef, rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: fullname + "-mapping"})
	equal(t, "RoleBinding subjects", rb.Subjects, []rbacv1.Subject{{Kind: "ServiceAccount", Name: fullname, Namespace: namespace}})
}
