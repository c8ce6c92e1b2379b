package mapping

import (
	"strings"
	"testing"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// FuzzParse: any document either is refused as a whole or yields a bounded mapping whose
// every entry, read through irsa.ConfigFor as a mapped ServiceAccount, is either "no role" or
// a valid configuration with no warning (everything a tenant could be warned about was
// checked here, for the admin's log), and whose problems stay short.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		kopsDoc,
		`{}`, ``, `null`, `[]`, `{"ns/sa":null}`, `{"ns/sa":{}}`,
		`{"*/sa":{"RoleARN":"` + roleA + `"},"team-*/sa":{"RoleARN":"` + roleB + `","TokenExpiration":60}}`,
		`{"ns/sa":{"RoleARN":"` + roleA + `","Audience":"a","UseRegionalSTS":true,"TokenExpiration":86401}}`,
		`{"ns/sa":{"RoleARN":""},"ns/sa":{"RoleARN":"x"},"a":{"b":{"c":[1,2,{}]}}}`,
		`{"ns/sa":{"rolearn":"` + roleC + `","TOKENEXPIRATION":1e3}}`,
	} {
		f.Add(s)
	}
	d := irsa.NewDefaults()
	f.Fuzz(func(t *testing.T, doc string) {
		m, problems, err := Parse(doc)
		if err != nil {
			if m != nil || problems != nil {
				t.Fatalf("a refused document returned a mapping or problems")
			}
			if len(err.Error()) > 1024 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			return
		}
		if m.Len() > MaxEntries {
			t.Fatalf("%d entries", m.Len())
		}
		if len(problems) > MaxEntries+1 {
			t.Fatalf("%d problems", len(problems))
		}
		for _, p := range problems {
			if len(p.String()) > 1024 {
				t.Fatalf("problem of %d bytes: %.200s", len(p.String()), p)
			}
		}
		n := 0
		check := func(ns, name string, e Entry) {
			n++
			if got, ok := m.Lookup(ns, name); !ok || got != e {
				t.Fatalf("Lookup(%q, %q) does not find its own entry", ns, name)
			}
			sa, mapped := m.Resolve(irsa.Object{Namespace: ns, Name: name}, d.AnnotationPrefix)
			if !mapped {
				t.Fatalf("Resolve(%q, %q) not mapped", ns, name)
			}
			cfg, decision, warnings := irsa.ConfigFor(sa, irsa.Object{Namespace: ns, Name: "p"}, d)
			switch {
			case e.RoleARN == "" && decision != irsa.NoRole:
				t.Fatalf("entry without a role: decision %s", decision)
			case e.RoleARN != "" && (decision != irsa.Inject || len(warnings) > 0 || cfg.RoleARN != e.RoleARN):
				t.Fatalf("entry %+v: decision %s, warnings %v, config %+v", e, decision, warnings, cfg)
			}
		}
		for k, e := range m.exact {
			ns, name, _ := strings.Cut(k, "/")
			check(ns, name, e)
		}
		for name, ws := range m.wildcards {
			for i, w := range ws {
				if i > 0 && len(ws[i-1].prefix) < len(w.prefix) {
					t.Fatalf("wildcards of %q not longest first", name)
				}
				// Namespace "<prefix>" matches w and, among the wildcards, only shorter
				// prefixes: w must win unless an exact entry shadows it.
				if _, shadowed := m.exact[w.prefix+"/"+name]; !shadowed {
					if got, _ := m.Lookup(w.prefix, name); got != w.entry {
						t.Fatalf("Lookup(%q, %q) does not find the wildcard entry", w.prefix, name)
					}
				}
				n++
			}
		}
		if n != m.Len() {
			t.Fatalf("Len %d, but %d entries stored", m.Len(), n)
		}
	})
}
