package mapping

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

const (
	roleA = "arn:aws:iam::123456789012:role/a"
	roleB = "arn:aws:iam::123456789012:role/b"
	roleC = "arn:aws-cn:iam::123456789012:role/team/c"
)

func ptr[T any](v T) *T { return &v }

// kopsDoc is the README's example of the reference webhook, as kOps writes it.
const kopsDoc = `{"default/myserviceaccount":{"RoleARN":"arn:aws:iam::123456789012:role/myserviceaccount.default.sa.minimal.example.com","Audience":"amazonaws.com","UseRegionalSTS":true,"TokenExpiration":0},` +
	`"myapp/myotherserviceaccount":{"RoleARN":"arn:aws:iam::123456789012:role/myotherserviceaccount.myapp.sa.minimal.example.com","Audience":"amazonaws.com","UseRegionalSTS":true,"TokenExpiration":0},` +
	`"test-*/myserviceaccount":{"RoleARN":"arn:aws:iam::123456789012:role/myserviceaccount.test-wildcard.sa.minimal.example.com","Audience":"amazonaws.com","UseRegionalSTS":true,"TokenExpiration":0}}`

func TestParse(t *testing.T) {
	type lookup struct {
		ns, name string
		want     *Entry // nil: not found
	}
	tests := []struct {
		name     string
		doc      string
		wantErr  string // the whole document is refused
		problems []string
		lookups  []lookup
	}{
		{name: "empty document maps nothing", doc: "  \n", lookups: []lookup{{"default", "sa", nil}}},
		{name: "empty object", doc: "{}", lookups: []lookup{{"default", "sa", nil}}},
		{
			name: "the reference README example",
			doc:  kopsDoc,
			lookups: []lookup{
				{"default", "myserviceaccount", &Entry{RoleARN: "arn:aws:iam::123456789012:role/myserviceaccount.default.sa.minimal.example.com", Audience: "amazonaws.com", UseRegionalSTS: ptr(true)}},
				{"myapp", "myotherserviceaccount", &Entry{RoleARN: "arn:aws:iam::123456789012:role/myotherserviceaccount.myapp.sa.minimal.example.com", Audience: "amazonaws.com", UseRegionalSTS: ptr(true)}},
				{"test-wildcard", "myserviceaccount", &Entry{RoleARN: "arn:aws:iam::123456789012:role/myserviceaccount.test-wildcard.sa.minimal.example.com", Audience: "amazonaws.com", UseRegionalSTS: ptr(true)}},
				{"test-", "myserviceaccount", &Entry{RoleARN: "arn:aws:iam::123456789012:role/myserviceaccount.test-wildcard.sa.minimal.example.com", Audience: "amazonaws.com", UseRegionalSTS: ptr(true)}},
				{"test", "myserviceaccount", nil},
				{"prod", "myserviceaccount", nil},
				{"test-wildcard", "other", nil},
			},
		},
		{
			name: "exact wins over wildcards, longest prefix wins, * matches every namespace",
			doc:  `{"*/sa":{"RoleARN":"` + roleA + `"},"team-*/sa":{"RoleARN":"` + roleB + `"},"team-a-*/sa":{"RoleARN":"` + roleC + `"},"team-a-1/sa":{"RoleARN":"` + roleA + `","TokenExpiration":3600}}`,
			lookups: []lookup{
				{"team-a-1", "sa", &Entry{RoleARN: roleA, TokenExpiration: 3600}},
				{"team-a-2", "sa", &Entry{RoleARN: roleC}},
				{"team-b", "sa", &Entry{RoleARN: roleB}},
				{"default", "sa", &Entry{RoleARN: roleA}},
				{"default", "sa2", nil},
			},
		},
		{
			name: "an explicit empty RoleARN maps to no role and shadows wildcards",
			doc:  `{"*/sa":{"RoleARN":"` + roleA + `"},"quiet/sa":{"RoleARN":""}}`,
			lookups: []lookup{
				{"quiet", "sa", &Entry{}},
				{"loud", "sa", &Entry{RoleARN: roleA}},
			},
		},
		{
			name: "field names match case-insensitively, as encoding/json did in the reference",
			doc:  `{"ns/sa":{"rolearn":"` + roleA + `","AUDIENCE":"x","useRegionalSts":false,"tokenexpiration":7200}}`,
			lookups: []lookup{
				{"ns", "sa", &Entry{RoleARN: roleA, Audience: "x", UseRegionalSTS: ptr(false), TokenExpiration: 7200}},
			},
		},
		{
			name: "one malformed entry is skipped, the others apply",
			doc: `{"ns/ok":{"RoleARN":"` + roleA + `"},` +
				`"no-slash":{"RoleARN":"` + roleA + `"},` +
				`"a/b/c":{"RoleARN":"` + roleA + `"},` +
				`"Upper/sa":{"RoleARN":"` + roleA + `"},` +
				`"ns/Upper":{"RoleARN":"` + roleA + `"},` +
				`"*test/sa":{"RoleARN":"` + roleA + `"},` +
				`"-*/sa":{"RoleARN":"` + roleA + `"},` +
				`"ns/*":{"RoleARN":"` + roleA + `"},` +
				`"ns/null":null,` +
				`"ns/list":[1,2],` +
				`"ns/norole":{"Audience":"sts.amazonaws.com"},` +
				`"ns/badarn":{"RoleARN":"arn:aws:s3:::bucket"},` +
				`"ns/rolename":{"RoleARN":"just-a-name"},` +
				`"ns/arnnum":{"RoleARN":42},` +
				`"ns/stsstring":{"RoleARN":"` + roleA + `","UseRegionalSTS":"true"},` +
				`"ns/expstring":{"RoleARN":"` + roleA + `","TokenExpiration":"3600"},` +
				`"ns/expfrac":{"RoleARN":"` + roleA + `","TokenExpiration":3600.5},` +
				`"ns/expneg":{"RoleARN":"` + roleA + `","TokenExpiration":-1},` +
				`"ns/expnull":{"RoleARN":"` + roleA + `","TokenExpiration":null},` +
				`"ns/badaud":{"RoleARN":"` + roleA + `","Audience":"a b"}}`,
			problems: []string{
				`entry "no-slash" skipped: key must be "<namespace>/<serviceaccount>"`,
				`entry "a/b/c" skipped: serviceaccount name "b/c" is invalid`,
				`entry "Upper/sa" skipped: namespace "Upper" is invalid`,
				`entry "ns/Upper" skipped: serviceaccount name "Upper" is invalid`,
				`entry "*test/sa" skipped: namespace "*test" is invalid`,
				`entry "-*/sa" skipped: namespace pattern "-*" is invalid`,
				`entry "ns/*" skipped: serviceaccount name "*" is invalid`,
				`entry "ns/null" skipped: entry must be a JSON object, found null`,
				`entry "ns/list" skipped: entry must be a JSON object, found [`,
				`entry "ns/norole" skipped: no "RoleARN" field`,
				`entry "ns/badarn" skipped: field RoleARN: role ARN "arn:aws:s3:::bucket" names service "s3", want iam`,
				`entry "ns/rolename" skipped: field RoleARN: role ARN "just-a-name" is not of the form`,
				`entry "ns/arnnum" skipped: field RoleARN must be a string, got "42"`,
				`entry "ns/stsstring" skipped: field UseRegionalSTS must be true or false, got "\"true\""`,
				`entry "ns/expstring" skipped: field TokenExpiration must be a whole number of seconds, got "\"3600\""`,
				`entry "ns/expfrac" skipped: field TokenExpiration must be a whole number of seconds, got "3600.5"`,
				`entry "ns/expneg" skipped: TokenExpiration -1 is negative`,
				`entry "ns/expnull" skipped: field TokenExpiration is null`,
				`entry "ns/badaud" skipped: field Audience "a b" contains a space`,
			},
			lookups: []lookup{
				{"ns", "ok", &Entry{RoleARN: roleA}},
				{"a", "b", nil},
				{"ns", "null", nil},
				{"ns", "norole", nil},
				{"ns", "badaud", nil},
			},
		},
		{
			name: "token expiration is clamped with a problem, the entry still applies",
			doc:  `{"ns/low":{"RoleARN":"` + roleA + `","TokenExpiration":60},"ns/high":{"RoleARN":"` + roleA + `","TokenExpiration":999999}}`,
			problems: []string{
				`entry "ns/low" adjusted: TokenExpiration 60 raised to the minimum of 600 seconds`,
				`entry "ns/high" adjusted: TokenExpiration 999999 lowered to the maximum of 86400 seconds`,
			},
			lookups: []lookup{
				{"ns", "low", &Entry{RoleARN: roleA, TokenExpiration: 600}},
				{"ns", "high", &Entry{RoleARN: roleA, TokenExpiration: 86400}},
			},
		},
		{
			name:     "unknown fields are ignored with a problem",
			doc:      `{"ns/sa":{"RoleARN":"` + roleA + `","RoleArm":"x"}}`,
			problems: []string{`entry "ns/sa" adjusted: unknown field "RoleArm" ignored`},
			lookups:  []lookup{{"ns", "sa", &Entry{RoleARN: roleA}}},
		},
		{
			name:     "a duplicate key: the later entry wins, as in the reference, and it is reported",
			doc:      `{"ns/sa":{"RoleARN":"` + roleA + `"},"ns/sa":{"RoleARN":"` + roleB + `"}}`,
			problems: []string{`entry "ns/sa" adjusted: duplicate key`},
			lookups:  []lookup{{"ns", "sa", &Entry{RoleARN: roleB}}},
		},
		{
			name:     "a malformed duplicate does not replace the earlier entry",
			doc:      `{"ns/sa":{"RoleARN":"` + roleA + `"},"ns/sa":{"RoleARN":"nope"}}`,
			problems: []string{`entry "ns/sa" skipped: field RoleARN`},
			lookups:  []lookup{{"ns", "sa", &Entry{RoleARN: roleA}}},
		},
		{name: "not JSON", doc: `{"ns/sa":`, wantErr: "parse config"},
		{name: "an array", doc: `[]`, wantErr: "want a JSON object"},
		{name: "a string", doc: `"ns/sa"`, wantErr: "want a JSON object"},
		{name: "trailing data", doc: `{} {}`, wantErr: "unexpected data after the JSON object"},
		{name: "invalid UTF-8", doc: "{\"ns/sa\xff\":{}}", wantErr: "parse config"},
		{name: "over 1 MiB", doc: `{"ns/sa":{"RoleARN":"` + strings.Repeat(" ", MaxConfigBytes) + `"}}`, wantErr: "more than the 1048576 allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, problems, err := Parse(tt.doc)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if m != nil {
					t.Errorf("a refused document must not yield a mapping")
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var got []string
			for _, p := range problems {
				got = append(got, p.String())
			}
			if len(got) != len(tt.problems) {
				t.Fatalf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.problems, "\n  "))
			}
			for i, want := range tt.problems {
				if !strings.HasPrefix(got[i], want) {
					t.Errorf("problem %d = %q, want prefix %q", i, got[i], want)
				}
			}
			for _, l := range tt.lookups {
				e, ok := m.Lookup(l.ns, l.name)
				switch {
				case l.want == nil && ok:
					t.Errorf("Lookup(%s, %s) = %+v, want nothing", l.ns, l.name, e)
				case l.want != nil && !ok:
					t.Errorf("Lookup(%s, %s) found nothing, want %+v", l.ns, l.name, *l.want)
				case l.want != nil && !sameEntry(e, *l.want):
					t.Errorf("Lookup(%s, %s) = %s, want %s", l.ns, l.name, show(e), show(*l.want))
				}
			}
		})
	}
}

func sameEntry(a, b Entry) bool {
	return a.RoleARN == b.RoleARN && a.Audience == b.Audience && a.TokenExpiration == b.TokenExpiration &&
		(a.UseRegionalSTS == nil) == (b.UseRegionalSTS == nil) && (a.UseRegionalSTS == nil || *a.UseRegionalSTS == *b.UseRegionalSTS)
}

func show(e Entry) string {
	sts := "nil"
	if e.UseRegionalSTS != nil {
		sts = fmt.Sprint(*e.UseRegionalSTS)
	}
	return fmt.Sprintf("{RoleARN:%q Audience:%q UseRegionalSTS:%s TokenExpiration:%d}", e.RoleARN, e.Audience, sts, e.TokenExpiration)
}

func TestParseBoundsEntries(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := range MaxEntries + 5 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"ns/sa-%d":{"RoleARN":""}`, i)
	}
	b.WriteString("}")
	m, problems, err := Parse(b.String())
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != MaxEntries {
		t.Errorf("Len = %d, want %d", m.Len(), MaxEntries)
	}
	if len(problems) != 1 || !problems[0].Skipped || !strings.Contains(problems[0].Reason, "5 entries beyond the first 10000") {
		t.Errorf("problems = %v", problems)
	}
	if _, ok := m.Lookup("ns", fmt.Sprintf("sa-%d", MaxEntries)); ok {
		t.Error("an entry beyond the cap was kept")
	}
}

func TestProblemKeysAreShortened(t *testing.T) {
	long := strings.Repeat("a", 5000)
	_, problems, err := Parse(`{"` + long + `":{}}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || len(problems[0].String()) > 200 {
		t.Errorf("problems = %v", problems)
	}
}

func TestFromConfigMap(t *testing.T) {
	m, problems, err := FromConfigMap(map[string]string{"other": "x"})
	if err != nil || len(problems) != 0 || m.Len() != 0 {
		t.Errorf("a ConfigMap without %q: %v %v %v", DataKey, m.Len(), problems, err)
	}
	m, _, err = FromConfigMap(map[string]string{DataKey: kopsDoc})
	if err != nil || m.Len() != 3 {
		t.Errorf("kOps document: %d entries, err %v", m.Len(), err)
	}
}

func TestResolve(t *testing.T) {
	const p = irsa.DefaultAnnotationPrefix
	m, _, err := Parse(`{"ns/mapped":{"RoleARN":"` + roleA + `","Audience":"aud","UseRegionalSTS":false,"TokenExpiration":3600},"ns/norole":{"RoleARN":""}}`)
	if err != nil {
		t.Fatal(err)
	}
	ann := func(kv ...string) map[string]string {
		a := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			a[irsa.Key(p, kv[i])] = kv[i+1]
		}
		return a
	}
	tests := []struct {
		name       string
		m          *Mapping
		sa         irsa.Object
		wantMapped bool
		wantAnn    map[string]string
	}{
		{
			name:       "a mapped ServiceAccount without annotations gets the entry's",
			m:          m,
			sa:         irsa.Object{Namespace: "ns", Name: "mapped"},
			wantMapped: true,
			wantAnn:    ann(irsa.RoleARNAnnotation, roleA, irsa.AudienceAnnotation, "aud", irsa.STSRegionalEndpointsAnnotation, "false", irsa.TokenExpirationAnnotation, "3600"),
		},
		{
			name:    "the role annotation wins, with all of the ServiceAccount's annotations",
			m:       m,
			sa:      irsa.Object{Namespace: "ns", Name: "mapped", Annotations: ann(irsa.RoleARNAnnotation, roleB)},
			wantAnn: ann(irsa.RoleARNAnnotation, roleB),
		},
		{
			name:       "without a role annotation, the entry replaces the other IRSA annotations (as in the reference)",
			m:          m,
			sa:         irsa.Object{Namespace: "ns", Name: "mapped", Annotations: ann(irsa.AudienceAnnotation, "mine")},
			wantMapped: true,
			wantAnn:    ann(irsa.RoleARNAnnotation, roleA, irsa.AudienceAnnotation, "aud", irsa.STSRegionalEndpointsAnnotation, "false", irsa.TokenExpirationAnnotation, "3600"),
		},
		{
			name:       "an entry without a role gives no role annotation",
			m:          m,
			sa:         irsa.Object{Namespace: "ns", Name: "norole"},
			wantMapped: true,
			wantAnn:    map[string]string{},
		},
		{name: "an unmapped ServiceAccount is unchanged", m: m, sa: irsa.Object{Namespace: "ns", Name: "other"}},
		{name: "a nil mapping maps nothing", sa: irsa.Object{Namespace: "ns", Name: "mapped"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, mapped := tt.m.Resolve(tt.sa, p)
			if mapped != tt.wantMapped {
				t.Errorf("mapped = %v, want %v", mapped, tt.wantMapped)
			}
			if got.Namespace != tt.sa.Namespace || got.Name != tt.sa.Name {
				t.Errorf("identity changed: %+v", got)
			}
			if !maps.Equal(got.Annotations, tt.wantAnn) {
				t.Errorf("annotations = %v, want %v", got.Annotations, tt.wantAnn)
			}
		})
	}
}

// TestResolvedConfig pins that a mapped ServiceAccount means, through irsa.ConfigFor, what
// the entry says, and that absent fields take the flags' defaults.
func TestResolvedConfig(t *testing.T) {
	d := irsa.NewDefaults()
	d.STSRegionalEndpoint = true
	m, _, err := Parse(`{"ns/full":{"RoleARN":"` + roleA + `","Audience":"aud","UseRegionalSTS":false,"TokenExpiration":3600},"ns/min":{"RoleARN":"` + roleB + `"}}`)
	if err != nil {
		t.Fatal(err)
	}
	pod := irsa.Object{Namespace: "ns", Name: "p"}
	for _, tc := range []struct {
		sa   string
		want irsa.Config
	}{
		{"full", irsa.Config{RoleARN: roleA, Audience: "aud", ExpirationSeconds: 3600, MountPath: d.TokenMountPath, STSRegional: false}},
		{"min", irsa.Config{RoleARN: roleB, Audience: d.TokenAudience, ExpirationSeconds: d.TokenExpiration, MountPath: d.TokenMountPath, STSRegional: true}},
	} {
		sa, _ := m.Resolve(irsa.Object{Namespace: "ns", Name: tc.sa}, d.AnnotationPrefix)
		cfg, decision, warnings := irsa.ConfigFor(sa, pod, d)
		if decision != irsa.Inject || len(warnings) != 0 {
			t.Errorf("%s: decision %s warnings %v", tc.sa, decision, warnings)
		}
		if cfg.RoleARN != tc.want.RoleARN || cfg.Audience != tc.want.Audience || cfg.ExpirationSeconds != tc.want.ExpirationSeconds ||
			cfg.STSRegional != tc.want.STSRegional || cfg.MountPath != tc.want.MountPath || !cfg.SkipContainers.Equal(tc.want.SkipContainers) {
			t.Errorf("%s: config %+v, want %+v", tc.sa, cfg, tc.want)
		}
	}
}

func TestChanges(t *testing.T) {
	parse := func(doc string) *Mapping {
		t.Helper()
		m, _, err := Parse(doc)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	prev := parse(`{"a/same":{"RoleARN":"` + roleA + `"},"a/role":{"RoleARN":"` + roleA + `"},"a/aud":{"RoleARN":"` + roleA + `"},"a/gone":{"RoleARN":"` + roleA + `"},"*/wild":{"RoleARN":"` + roleA + `"}}`)
	next := parse(`{"a/same":{"RoleARN":"` + roleA + `","TokenExpiration":3600},"a/role":{"RoleARN":"` + roleB + `"},"a/aud":{"RoleARN":"` + roleA + `","Audience":"x"},` +
		`"b/new":{"RoleARN":"` + roleC + `"},"b/none":{"RoleARN":""},"*/wild":{"RoleARN":"` + roleB + `"},"c/wild":{"RoleARN":"` + roleA + `"}}`)
	tests := []struct {
		name       string
		prev, next *Mapping
		max        int
		want       []string
		wantMore   int
	}{
		{name: "role or audience changed, new entries; not token settings, roles removed or wildcards", prev: prev, next: next, max: 10,
			want: []string{"a/aud", "a/role", "b/new"}},
		{name: "bounded", prev: prev, next: next, max: 2, want: []string{"a/aud", "a/role"}, wantMore: 1},
		{name: "from nothing", next: parse(`{"a/x":{"RoleARN":"` + roleA + `"}}`), max: 10, want: []string{"a/x"}},
		{name: "to nothing", prev: prev, max: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, more := Changes(tt.prev, tt.next, tt.max)
			var ids []string
			for _, c := range got {
				ids = append(ids, c.Namespace+"/"+c.Name)
			}
			if !slices.Equal(ids, tt.want) || more != tt.wantMore {
				t.Errorf("Changes = %v, %d more; want %v, %d more", ids, more, tt.want, tt.wantMore)
			}
		})
	}
}

// TestWildcardChanges: what a ConfigMap edit maps anew through wildcard entries, for the trust
// check of existing ServiceAccounts.
func TestWildcardChanges(t *testing.T) {
	parse := func(doc string) *Mapping {
		t.Helper()
		m, _, err := Parse(doc)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	prev := parse(`{"test-*/same":{"RoleARN":"` + roleA + `"},"test-*/role":{"RoleARN":"` + roleA + `"},"*/aud":{"RoleARN":"` + roleA + `"},"a/shadowed":{"RoleARN":"` + roleA + `"}}`)
	next := parse(`{"test-*/same":{"RoleARN":"` + roleA + `","TokenExpiration":3600},"test-*/role":{"RoleARN":"` + roleB + `"},"*/aud":{"RoleARN":"` + roleA + `","Audience":"x"},` +
		`"team-*/new":{"RoleARN":"` + roleC + `"},"*/none":{"RoleARN":""},"*/shadowed":{"RoleARN":"` + roleB + `"}}`)
	if got, want := WildcardNames(prev, next), []string{"aud", "new", "role", "shadowed"}; !slices.Equal(got, want) {
		t.Errorf("WildcardNames = %v, want %v", got, want)
	}
	if got := WildcardNames(next, next); len(got) != 0 {
		t.Errorf("WildcardNames of an unchanged mapping = %v, want none", got)
	}
	// A narrower wildcard removed: its ServiceAccounts fall through to a wider one's role.
	narrow := parse(`{"team-a-*/app":{"RoleARN":"` + roleA + `"},"team-*/app":{"RoleARN":"` + roleB + `"}}`)
	wide := parse(`{"team-*/app":{"RoleARN":"` + roleB + `"}}`)
	if got, want := WildcardNames(narrow, wide), []string{"app"}; !slices.Equal(got, want) {
		t.Errorf("WildcardNames after a wildcard entry was removed = %v, want %v", got, want)
	}
	if e, ok := Changed(narrow, wide, "team-a-1", "app"); !ok || e.RoleARN != roleB {
		t.Errorf("Changed(team-a-1/app) = %+v, %v; want the wider entry's role", e, ok)
	}
	tests := []struct {
		ns, name string
		want     string // "" = not changed
	}{
		{"test-1", "role", roleB},
		{"test-1", "same", ""},        // only the token lifetime changed
		{"other", "role", ""},         // the wildcard does not match
		{"any", "aud", roleA},         // audience changed
		{"team-x", "new", roleC},      // new entry
		{"x", "none", ""},             // maps to no role
		{"a", "shadowed", roleB},      // its exact entry is gone; the wildcard now applies
		{"b", "shadowed", roleB},      // new through the wildcard
		{"test-1", "unmapped", ""},    // no entry
		{"team-x", "role", ""},        // prefix of another name's wildcard
		{"test-1", "aud", roleA},      // "*" matches every namespace
		{"kube-system", "aud", roleA}, // exclusion is the checker's business, not the mapping's
	}
	for _, tc := range tests {
		t.Run(tc.ns+"/"+tc.name, func(t *testing.T) {
			e, ok := Changed(prev, next, tc.ns, tc.name)
			if ok != (tc.want != "") || e.RoleARN != tc.want {
				t.Errorf("Changed = %q, %v; want %q", e.RoleARN, ok, tc.want)
			}
			if tc.want != "" && !next.MatchesWildcard(tc.ns, tc.name) {
				t.Errorf("MatchesWildcard(%s, %s) = false", tc.ns, tc.name)
			}
		})
	}
	// The exact entry a/shadowed left; the wildcard that replaces it is listed with the exact changes.
	got, _ := Changes(prev, next, 10)
	if len(got) != 1 || got[0].Namespace != "a" || got[0].Name != "shadowed" || got[0].Entry.RoleARN != roleB {
		t.Errorf("Changes = %+v, want a/shadowed -> %s", got, roleB)
	}
}

// TestRoleNames: with --compose-role-arn an entry's RoleARN may be a role name or path/name,
// kept as written for irsa.ForServiceAccount to complete; without it such an entry is skipped.
func TestRoleNames(t *testing.T) {
	doc := `{"a/name":{"RoleARN":"app"},"a/path":{"RoleARN":"team/app"},"a/arn":{"RoleARN":"` + roleA + `"},"a/bad":{"RoleARN":"a b"}}`
	tests := []struct {
		name        string
		opts        Options
		want        map[string]string
		wantSkipped int
	}{
		{name: "role names accepted", opts: Options{RoleNames: true}, want: map[string]string{"name": "app", "path": "team/app", "arn": roleA}, wantSkipped: 1},
		{name: "role names skipped", want: map[string]string{"arn": roleA}, wantSkipped: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, problems, err := tc.opts.Parse(doc)
			if err != nil {
				t.Fatal(err)
			}
			skipped := 0
			for _, p := range problems {
				if p.Skipped {
					skipped++
				}
			}
			if skipped != tc.wantSkipped {
				t.Errorf("skipped %d entries, want %d: %v", skipped, tc.wantSkipped, problems)
			}
			for _, sa := range []string{"name", "path", "arn", "bad"} {
				e, ok := m.Lookup("a", sa)
				if want, mapped := tc.want[sa]; ok != mapped || e.RoleARN != want {
					t.Errorf("a/%s: %q, %v; want %q, %v", sa, e.RoleARN, ok, want, mapped)
				}
			}
			// Composed by the one reading of annotations.
			if e, ok := m.Lookup("a", "path"); ok {
				d := irsa.NewDefaults()
				d.ComposeAccount = func() (irsa.Account, bool) { return irsa.Account{Partition: "aws", ID: "123456789012"}, true }
				s, outcome, _ := irsa.ForServiceAccount(irsa.Object{Namespace: "a", Name: "path", Annotations: e.Annotations(d.AnnotationPrefix)}, d)
				if outcome != irsa.Inject || s.RoleARN != "arn:aws:iam::123456789012:role/team/app" {
					t.Errorf("composed: %s %q", outcome, s.RoleARN)
				}
			}
		})
	}
}
