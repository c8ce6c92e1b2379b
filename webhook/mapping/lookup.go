package mapping

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// Mapping is an immutable, parsed ConfigMap: safe for concurrent lookups. The nil and zero
// Mappings map nothing.
type Mapping struct {
	exact map[string]Entry // "<namespace>/<name>"
	// wildcards by ServiceAccount name, longest namespace prefix first.
	wildcards map[string][]wildcard
	n         int
}

type wildcard struct {
	prefix string
	entry  Entry
}

// Lookup returns the entry for ServiceAccount name in namespace. Precedence:
//  1. the exact entry "<namespace>/<name>";
//  2. otherwise the wildcard entry "<prefix>*/<name>" with the longest prefix that starts
//     namespace ("team-a-*" before "team-*" before "*").
//
// Wildcards never match across the "/": the ServiceAccount name is always exact.
func (m *Mapping) Lookup(namespace, name string) (Entry, bool) {
	if m == nil {
		return Entry{}, false
	}
	if e, ok := m.exact[namespace+"/"+name]; ok {
		return e, true
	}
	for _, w := range m.wildcards[name] {
		if strings.HasPrefix(namespace, w.prefix) {
			return w.entry, true
		}
	}
	return Entry{}, false
}

// Len is the number of entries, wildcards included.
func (m *Mapping) Len() int {
	if m == nil {
		return 0
	}
	return m.n
}

// Resolve returns the ServiceAccount as IRSA should read it, following the reference's
// precedence: a ServiceAccount that names a role in its own annotation is used as it is
// (annotations win, all of them); otherwise, if the mapping has an entry for it, the entry
// replaces its IRSA annotations (all of them, as in the reference: an audience annotation
// without a role annotation does not mix with a mapped role). mapped says whether the entry
// was used.
func (m *Mapping) Resolve(sa irsa.Object, prefix string) (out irsa.Object, mapped bool) {
	if _, has := sa.Annotations[irsa.Key(prefix, irsa.RoleARNAnnotation)]; has {
		return sa, false
	}
	e, ok := m.Lookup(sa.Namespace, sa.Name)
	if !ok {
		return sa, false
	}
	sa.Annotations = e.Annotations(prefix)
	return sa, true
}

// builder collects entries; later duplicates replace earlier ones.
type builder struct {
	exact     map[string]Entry
	wildcards map[string]map[string]Entry // name -> prefix -> entry
	n         int                         // entries stored
}

func newBuilder() *builder {
	return &builder{exact: map[string]Entry{}, wildcards: map[string]map[string]Entry{}}
}

func (b *builder) len() int { return b.n }

// add stores the entry and reports whether it replaced one with the same key.
func (b *builder) add(k key, e Entry) (replaced bool) {
	if !k.wildcard {
		id := k.namespace + "/" + k.name
		_, replaced = b.exact[id]
		b.exact[id] = e
		b.count(replaced)
		return replaced
	}
	w := b.wildcards[k.name]
	if w == nil {
		w = map[string]Entry{}
		b.wildcards[k.name] = w
	}
	_, replaced = w[k.namespace]
	w[k.namespace] = e
	b.count(replaced)
	return replaced
}

func (b *builder) count(replaced bool) {
	if !replaced {
		b.n++
	}
}

func (b *builder) build() *Mapping {
	m := &Mapping{exact: b.exact, n: b.n}
	if len(b.wildcards) > 0 {
		m.wildcards = make(map[string][]wildcard, len(b.wildcards))
		for name, byPrefix := range b.wildcards {
			ws := make([]wildcard, 0, len(byPrefix))
			for p, e := range byPrefix {
				ws = append(ws, wildcard{prefix: p, entry: e})
			}
			// Longest first; two different prefixes of one length cannot both match.
			slices.SortFunc(ws, func(a, b wildcard) int {
				return cmp.Or(cmp.Compare(len(b.prefix), len(a.prefix)), strings.Compare(a.prefix, b.prefix))
			})
			m.wildcards[name] = ws
		}
	}
	return m
}

// Change is a ServiceAccount whose mapped role or audience is new in a mapping.
type Change struct {
	Namespace, Name string
	Entry           Entry
}

// Changed returns the entry next gives the ServiceAccount ns/name when it maps it to a role
// and prev mapped it to no role, another role or another audience: when its trust is worth
// checking again.
func Changed(prev, next *Mapping, ns, name string) (Entry, bool) {
	e, ok := next.Lookup(ns, name)
	if !ok || e.RoleARN == "" {
		return Entry{}, false
	}
	if p, ok := prev.Lookup(ns, name); ok && p.RoleARN == e.RoleARN && p.Audience == e.Audience {
		return Entry{}, false
	}
	return e, true
}

// Changes lists the ServiceAccounts named by exact entries (of next, or of prev that next
// now maps through a wildcard) that Changed reports. The ServiceAccounts that only wildcard
// entries reach are not listed: which exist is known to the caller (WildcardNames). The list
// is sorted and holds at most max entries; more reports how many were left out.
func Changes(prev, next *Mapping, max int) (changes []Change, more int) {
	if next == nil {
		return nil, 0
	}
	add := func(id string) {
		ns, name, _ := strings.Cut(id, "/")
		if e, ok := Changed(prev, next, ns, name); ok {
			changes = append(changes, Change{Namespace: ns, Name: name, Entry: e})
		}
	}
	for id := range next.exact {
		add(id)
	}
	if prev != nil {
		for id := range prev.exact {
			if _, kept := next.exact[id]; !kept {
				add(id)
			}
		}
	}
	return sortAndBound(changes, max)
}

// WildcardNames lists, sorted, the ServiceAccount names for which next has a wildcard entry
// that prev does not have with the same role and audience, or prev had one that next does not
// (a narrower entry removed lets a wider one map its ServiceAccounts): ServiceAccounts of
// those names, in namespaces next's entries match, may be mapped anew (check each with Changed).
func WildcardNames(prev, next *Mapping) []string {
	if next == nil {
		return nil
	}
	names := map[string]bool{}
	differs := func(from, to *Mapping) {
		for name, ws := range from.wildcards {
			for _, w := range ws {
				if w.entry.RoleARN != "" && !to.hasWildcard(name, w) {
					names[name] = true
					break
				}
			}
		}
	}
	differs(next, prev)
	if prev != nil {
		differs(prev, next)
	}
	return slices.Sorted(maps.Keys(names))
}

// hasWildcard reports whether m has the wildcard entry w for name, with the same role and audience.
func (m *Mapping) hasWildcard(name string, w wildcard) bool {
	if m == nil {
		return false
	}
	for _, p := range m.wildcards[name] {
		if p.prefix == w.prefix {
			return p.entry.RoleARN == w.entry.RoleARN && p.entry.Audience == w.entry.Audience
		}
	}
	return false
}

// MatchesWildcard reports whether a wildcard entry of m could map a ServiceAccount called
// name in namespace ns.
func (m *Mapping) MatchesWildcard(ns, name string) bool {
	if m == nil {
		return false
	}
	for _, w := range m.wildcards[name] {
		if strings.HasPrefix(ns, w.prefix) {
			return true
		}
	}
	return false
}

func sortAndBound(changes []Change, max int) ([]Change, int) {
	slices.SortFunc(changes, func(a, b Change) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	if len(changes) > max {
		return changes[:max], len(changes) - max
	}
	return changes, 0
}
