// Package mapping reads the ServiceAccount-to-role map that kOps and other installers write
// for the AWS reference webhook (aws/amazon-eks-pod-identity-webhook, flag
// --watch-config-map): ConfigMap "pod-identity-webhook", key "config", a JSON object
//
//	{"<namespace>/<serviceaccount>": {"RoleARN": "...", "Audience": "...", "UseRegionalSTS": true, "TokenExpiration": 0}}
//
// The format is the reference's: its field names (matched case-insensitively, as Go's
// encoding/json matched them there) and types (RoleARN and Audience strings,
// UseRegionalSTS a boolean, TokenExpiration an integer number of seconds, 0 meaning the
// default).
//
// Where this package differs from the reference, on purpose:
//   - Namespace wildcards work as the reference's README shows them: "test-*/sa" maps sa in
//     every namespace whose name starts with "test-", and "*/sa" in every namespace. (The
//     reference only ever matched the literal "*".) See [Mapping.Lookup] for precedence.
//   - One malformed entry is skipped with a [Problem]; the other entries still apply. (The
//     reference dropped the whole update on any error, and crashed on a key without "/".)
//   - An absent field takes the webhook's default (flags), including UseRegionalSTS; a
//     present one is used as written. An empty Audience means the default audience, not an
//     empty one. TokenExpiration outside [600, 86400] is clamped, with a Problem.
//   - An entry without a RoleARN field is malformed; an explicit "RoleARN": "" is kept and
//     means "no role" (it shadows wildcard entries for that ServiceAccount, as it did there).
//
// Everything is bounded: the document's size, the number of entries and each key and
// value. Parse is pure; the watcher that feeds it lives in package mappingcache.
package mapping

import (
	"bytes"
	"encoding/json/jsontext"
	jsonv2 "encoding/json/v2"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// Names the reference webhook uses, and the bounds of what is read.
const (
	// DefaultConfigMapName is the ConfigMap the reference webhook watches (not configurable there).
	DefaultConfigMapName = "pod-identity-webhook"
	// DataKey is the ConfigMap data key holding the JSON document.
	DataKey = "config"
	// MaxConfigBytes bounds the document: the API server refuses ConfigMaps over 1 MiB anyway.
	MaxConfigBytes = 1 << 20
	// MaxEntries bounds the entries kept (further ones are skipped with one Problem). kOps
	// writes one entry per ServiceAccount with a role: dozens, rarely hundreds.
	MaxEntries = 10000
	// maxKeyLen is a namespace (DNS label, 63) + "/" + a ServiceAccount name (DNS subdomain, 253).
	maxKeyLen = validation.DNS1123LabelMaxLength + 1 + validation.DNS1123SubdomainMaxLength
	// maxRoleARNLen is IAM's limit for an ARN.
	maxRoleARNLen = 2048
	// maxAudienceLen matches the audience annotation's bound in package irsa.
	maxAudienceLen = 256
)

// Entry is one ServiceAccount's settings. Zero values mean "the webhook's default".
type Entry struct {
	// RoleARN is the role to inject; empty means no role (credentials are not injected).
	RoleARN string
	// Audience of the token; empty means the default (--token-audience).
	Audience string
	// UseRegionalSTS: nil means the default (--sts-regional-endpoint).
	UseRegionalSTS *bool
	// TokenExpiration in seconds, within the irsa bounds; 0 means the default.
	TokenExpiration int64
}

// Annotations renders the entry as the ServiceAccount annotations under prefix that mean the
// same, so that the one function interpreting annotations (irsa.ForServiceAccount) interprets
// mapped ServiceAccounts too. An entry without a role renders no role annotation.
func (e Entry) Annotations(prefix string) map[string]string {
	a := make(map[string]string, 4)
	if e.RoleARN != "" {
		a[irsa.Key(prefix, irsa.RoleARNAnnotation)] = e.RoleARN
	}
	if e.Audience != "" {
		a[irsa.Key(prefix, irsa.AudienceAnnotation)] = e.Audience
	}
	if e.UseRegionalSTS != nil {
		a[irsa.Key(prefix, irsa.STSRegionalEndpointsAnnotation)] = strconv.FormatBool(*e.UseRegionalSTS)
	}
	if e.TokenExpiration != 0 {
		a[irsa.Key(prefix, irsa.TokenExpirationAnnotation)] = strconv.FormatInt(e.TokenExpiration, 10)
	}
	return a
}

// Problem is something wrong with one entry (Key) or with the document (Key empty).
// Skipped says whether the entry was left out; otherwise it applies, adjusted as Reason says.
type Problem struct {
	Key     string // the entry's key, shortened for logs
	Reason  string
	Skipped bool
}

func (p Problem) String() string {
	what := "adjusted"
	if p.Skipped {
		what = "skipped"
	}
	if p.Key == "" {
		return fmt.Sprintf("%s: %s", what, p.Reason)
	}
	return fmt.Sprintf("entry %s %s: %s", p.Key, what, p.Reason)
}

// Options change how entries are read.
type Options struct {
	// RoleNames accepts a role name or "path/name" as RoleARN (--compose-role-arn): it is
	// kept as written, and completed with the webhook's account where annotations are read
	// (irsa.ForServiceAccount). Without it, such an entry is skipped.
	RoleNames bool
}

// FromConfigMap parses the "config" key of a ConfigMap's data. A missing or blank key is an
// empty mapping (the ConfigMap maps nothing). err is set only when the whole document is
// unusable (not a JSON object, too large): then no entry applies.
func FromConfigMap(data map[string]string) (*Mapping, []Problem, error) {
	return Options{}.FromConfigMap(data)
}

// FromConfigMap is the package's FromConfigMap, with these options.
func (o Options) FromConfigMap(data map[string]string) (*Mapping, []Problem, error) {
	return o.Parse(data[DataKey])
}

// Parse parses the JSON document. See the package documentation for the format.
func Parse(doc string) (*Mapping, []Problem, error) { return Options{}.Parse(doc) }

// Parse is the package's Parse, with these options.
func (o Options) Parse(doc string) (*Mapping, []Problem, error) {
	if len(doc) > MaxConfigBytes {
		return nil, nil, fmt.Errorf("parse %s: %d bytes, more than the %d allowed", DataKey, len(doc), MaxConfigBytes)
	}
	if strings.TrimSpace(doc) == "" {
		return &Mapping{}, nil, nil
	}
	// Duplicate keys are allowed by the decoder so that they can be reported per entry
	// (the reference, through encoding/json, silently kept the last one).
	dec := jsontext.NewDecoder(strings.NewReader(doc), jsontext.AllowDuplicateNames(true))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, nil, fmt.Errorf("parse %s: want a JSON object of \"<namespace>/<serviceaccount>\" entries: %v", DataKey, describe(tok, err))
	}
	b := newBuilder()
	var problems []Problem
	overflow := 0
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, nil, fmt.Errorf("parse %s: %w", DataKey, err)
		}
		key := tok.String()
		val, err := dec.ReadValue()
		if err != nil {
			return nil, nil, fmt.Errorf("parse %s: entry %s: %w", DataKey, short(key), err)
		}
		if b.len() >= MaxEntries {
			overflow++
			continue
		}
		k, err := parseKey(key)
		if err != nil {
			problems = append(problems, Problem{Key: short(key), Reason: err.Error(), Skipped: true})
			continue
		}
		e, notes, err := o.parseEntry(val)
		if err != nil {
			problems = append(problems, Problem{Key: short(key), Reason: err.Error(), Skipped: true})
			continue
		}
		for _, n := range notes {
			problems = append(problems, Problem{Key: short(key), Reason: n})
		}
		if b.add(k, e) {
			problems = append(problems, Problem{Key: short(key), Reason: "duplicate key: this later entry replaces the earlier one"})
		}
	}
	if _, err := dec.ReadToken(); err != nil { // the closing '}'
		return nil, nil, fmt.Errorf("parse %s: %w", DataKey, err)
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("parse %s: unexpected data after the JSON object", DataKey)
	}
	if overflow > 0 {
		problems = append(problems, Problem{Reason: fmt.Sprintf("%d entries beyond the first %d", overflow, MaxEntries), Skipped: true})
	}
	return b.build(), problems, nil
}

func describe(tok jsontext.Token, err error) string {
	if err != nil {
		return err.Error()
	}
	return "found " + tok.Kind().String()
}

// key is a parsed "<namespace>/<name>" entry key. A namespace ending in "*" is a prefix.
type key struct {
	namespace string // the exact namespace, or the prefix before "*"
	wildcard  bool
	name      string
}

func parseKey(s string) (key, error) {
	if len(s) > maxKeyLen {
		return key{}, fmt.Errorf("key is longer than %d characters", maxKeyLen)
	}
	ns, name, ok := strings.Cut(s, "/")
	if !ok {
		return key{}, errors.New(`key must be "<namespace>/<serviceaccount>"`)
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return key{}, fmt.Errorf("serviceaccount name %s is invalid: %s", short(name), errs[0])
	}
	if prefix, wild := strings.CutSuffix(ns, "*"); wild {
		if !validNamespacePrefix(prefix) {
			return key{}, fmt.Errorf(`namespace pattern %s is invalid: only a trailing "*" after the start of a namespace name (lowercase letters, digits, "-") is supported`, short(ns))
		}
		return key{namespace: prefix, wildcard: true, name: name}, nil
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return key{}, fmt.Errorf("namespace %s is invalid: %s", short(ns), errs[0])
	}
	return key{namespace: ns, name: name}, nil
}

// validNamespacePrefix accepts "" and the starts of DNS-1123 labels: "test-", "team1".
func validNamespacePrefix(p string) bool {
	if len(p) >= validation.DNS1123LabelMaxLength {
		return false
	}
	for i, c := range []byte(p) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0:
		default:
			return false
		}
	}
	return true
}

// parseEntry reads one entry object. notes are adjustments that still let it apply.
func (o Options) parseEntry(val jsontext.Value) (e Entry, notes []string, err error) {
	dec := jsontext.NewDecoder(bytes.NewReader(val), jsontext.AllowDuplicateNames(true))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return Entry{}, nil, fmt.Errorf("entry must be a JSON object, %s", describe(tok, err))
	}
	hasRole := false
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return Entry{}, nil, err
		}
		field := tok.String()
		v, err := dec.ReadValue()
		if err != nil {
			return Entry{}, nil, err
		}
		switch {
		case strings.EqualFold(field, "RoleARN"):
			if err := unmarshalField(v, "RoleARN", "a string", &e.RoleARN); err != nil {
				return Entry{}, nil, err
			}
			hasRole = true
		case strings.EqualFold(field, "Audience"):
			if err := unmarshalField(v, "Audience", "a string", &e.Audience); err != nil {
				return Entry{}, nil, err
			}
		case strings.EqualFold(field, "UseRegionalSTS"):
			var b bool
			if err := unmarshalField(v, "UseRegionalSTS", "true or false", &b); err != nil {
				return Entry{}, nil, err
			}
			e.UseRegionalSTS = &b
		case strings.EqualFold(field, "TokenExpiration"):
			if err := unmarshalField(v, "TokenExpiration", "a whole number of seconds", &e.TokenExpiration); err != nil {
				return Entry{}, nil, err
			}
		default:
			notes = append(notes, fmt.Sprintf("unknown field %s ignored", short(field)))
		}
	}
	if !hasRole {
		return Entry{}, nil, errors.New(`no "RoleARN" field (write "RoleARN": "" to map the ServiceAccount to no role)`)
	}
	if err := o.validateEntry(&e, &notes); err != nil {
		return Entry{}, nil, err
	}
	return e, notes, nil
}

func unmarshalField(v jsontext.Value, name, want string, dst any) error {
	if v.Kind() == 'n' {
		return fmt.Errorf("field %s is null, want %s", name, want)
	}
	if err := jsonv2.Unmarshal(v, dst); err != nil {
		return fmt.Errorf("field %s must be %s, got %s", name, want, short(string(v)))
	}
	return nil
}

func (o Options) validateEntry(e *Entry, notes *[]string) error {
	if e.RoleARN != "" {
		if len(e.RoleARN) > maxRoleARNLen {
			return fmt.Errorf("RoleARN is longer than %d characters", maxRoleARNLen)
		}
		if o.RoleNames && irsa.IsRoleName(e.RoleARN) {
			if err := irsa.ValidRoleName(e.RoleARN); err != nil {
				return fmt.Errorf("field RoleARN: %w", err)
			}
			return validateRest(e, notes)
		}
		arn, err := irsa.ParseRoleARN(e.RoleARN)
		if err != nil {
			return fmt.Errorf("field RoleARN: %w", err)
		}
		e.RoleARN = arn.String()
	}
	return validateRest(e, notes)
}

// validateRest checks and adjusts the fields other than RoleARN.
func validateRest(e *Entry, notes *[]string) error {
	if e.Audience != "" {
		if len(e.Audience) > maxAudienceLen {
			return fmt.Errorf("field Audience is longer than %d characters", maxAudienceLen)
		}
		for _, c := range []byte(e.Audience) {
			if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
				return fmt.Errorf("field Audience %s contains a space, quote, control or non-ASCII character", short(e.Audience))
			}
		}
	}
	switch t := e.TokenExpiration; {
	case t < 0:
		return fmt.Errorf("TokenExpiration %d is negative", t)
	case t == 0:
	case t < irsa.MinTokenExpiration:
		*notes = append(*notes, fmt.Sprintf("TokenExpiration %d raised to the minimum of %d seconds", t, irsa.MinTokenExpiration))
		e.TokenExpiration = irsa.MinTokenExpiration
	case t > irsa.MaxTokenExpiration:
		*notes = append(*notes, fmt.Sprintf("TokenExpiration %d lowered to the maximum of %d seconds", t, irsa.MaxTokenExpiration))
		e.TokenExpiration = irsa.MaxTokenExpiration
	}
	return nil
}

// short quotes a value from the document for a log line, cut to a readable length.
func short(v string) string {
	const max = 64
	if len(v) > max {
		return strconv.Quote(v[:max]) + "…"
	}
	return strconv.Quote(v)
}
